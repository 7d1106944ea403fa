//! Per-peer capacity and round-trip estimates, and the timeouts derived from them: geth's
//! `p2p/msgrate` (spec §3.5), with times as milliseconds supplied by the host.
//!
//! Timeouts differ from geth's on purpose. geth waits `3 · rtt / confidence` for every peer,
//! which is a minute at start-up (its target starts at 20 s, and confidence falls as peers
//! join): one silent first answer then costs a minute. Here each peer has its own timeout:
//! [`RateConfig::startup_timeout_ms`] until its first answer, then
//! [`RateConfig::timeout_rtts`] of its own recent round trips within
//! `[min_timeout_ms, max_timeout_ms]`. A late answer is still a round-trip sample, so a slow
//! peer's timeout grows to fit it.

/// How strongly one measurement moves a peer's estimates.
const MEASUREMENT_IMPACT: f64 = 0.1;
/// Headroom when turning throughput into a request size, so capacity can grow.
const CAPACITY_OVERESTIMATION: f64 = 1.01;
/// Share of the peers' median round trip mixed into the target at each tuning.
const TUNING_IMPACT: f64 = 0.25;
/// Peers used for the median when there are many: the fastest few (geth's `qosTuningPeers`).
const TUNING_PEERS: usize = 5;

/// How long a request to a peer that has not answered anything yet may go unanswered: long
/// enough for a first answer across the internet (a few round trips of 300 ms), short enough
/// that a silent peer costs seconds, not geth's minute.
pub const STARTUP_TIMEOUT_MS: f64 = 3_000.0;
/// Once a peer has answered, its requests may take this many of its recent round trips.
pub const TIMEOUT_RTTS: f64 = 4.0;
/// The shortest timeout, however fast the peer: a request sized for the target round trip
/// (at least `0.9 · min_rtt_ms`) may take that long even from a peer that answered small
/// requests in a few milliseconds.
pub const MIN_TIMEOUT_MS: f64 = 1_000.0;
/// The longest timeout: no request waits longer (geth's `ttlLimit`).
pub const MAX_TIMEOUT_MS: f64 = 60_000.0;

/// Bounds of the round-trip model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateConfig {
    /// The round trip assumed before anything is measured.
    pub initial_rtt_ms: f64,
    /// The median round trip is clamped to this range before it tunes the target.
    pub min_rtt_ms: f64,
    pub max_rtt_ms: f64,
    /// A request to a peer that has not answered yet times out after this long
    /// ([`STARTUP_TIMEOUT_MS`]).
    pub startup_timeout_ms: f64,
    /// Then after this many of the peer's recent round trips ([`TIMEOUT_RTTS`]), within
    /// `[min_timeout_ms, max_timeout_ms]` ([`MIN_TIMEOUT_MS`], [`MAX_TIMEOUT_MS`]).
    pub timeout_rtts: f64,
    pub min_timeout_ms: f64,
    /// No request waits longer than this.
    pub max_timeout_ms: f64,
}

impl Default for RateConfig {
    fn default() -> Self {
        // geth starts at its 20 s maximum, which makes the first timeouts a minute long; a
        // browser user waiting on a dead peer deserves better, so start at 5 s.
        RateConfig {
            initial_rtt_ms: 5_000.0,
            min_rtt_ms: 1_000.0,
            max_rtt_ms: 20_000.0,
            startup_timeout_ms: STARTUP_TIMEOUT_MS,
            timeout_rtts: TIMEOUT_RTTS,
            min_timeout_ms: MIN_TIMEOUT_MS,
            max_timeout_ms: MAX_TIMEOUT_MS,
        }
    }
}

impl RateConfig {
    /// How long a request to a peer with `recent_rtt_ms` (none before its first answer) may
    /// go unanswered.
    pub fn timeout_ms(&self, recent_rtt_ms: Option<f64>) -> u64 {
        let ms = match recent_rtt_ms {
            None => self.startup_timeout_ms,
            Some(rtt) => (self.timeout_rtts * rtt).max(self.min_timeout_ms),
        };
        ms.min(self.max_timeout_ms).max(1.0) as u64
    }
}

/// One peer's measured throughput (items per second) and round trip.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerRate {
    pub items_per_sec: f64,
    pub rtt_ms: f64,
    /// A fast-moving round-trip estimate from this peer's own answers (none before the
    /// first): tells quickly when a request is overdue, where `rtt_ms` moves slowly.
    pub recent_rtt_ms: Option<f64>,
}

/// How strongly one answer moves `recent_rtt_ms`.
const RECENT_IMPACT: f64 = 0.3;

impl PeerRate {
    /// Folds in one answered request: `items` useful items after `elapsed_ms`. An answer with
    /// nothing useful (or a timeout) drops throughput to zero, so the next request is tiny.
    pub fn update(&mut self, elapsed_ms: f64, items: usize) {
        if items == 0 {
            self.items_per_sec = 0.0;
            return;
        }
        let elapsed_ms = elapsed_ms.max(1.0);
        self.sample_rtt(elapsed_ms);
        let measured = items as f64 / (elapsed_ms / 1000.0);
        self.items_per_sec =
            (1.0 - MEASUREMENT_IMPACT) * self.items_per_sec + MEASUREMENT_IMPACT * measured;
    }

    /// Folds in one round trip alone: an answer that came after its request timed out says
    /// how long this peer takes, not how much it serves (its throughput stays at the zero the
    /// timeout left).
    pub fn sample_rtt(&mut self, elapsed_ms: f64) {
        let elapsed_ms = elapsed_ms.max(1.0);
        self.recent_rtt_ms = Some(match self.recent_rtt_ms {
            Some(recent) => (1.0 - RECENT_IMPACT) * recent + RECENT_IMPACT * elapsed_ms,
            None => elapsed_ms,
        });
        self.rtt_ms = (1.0 - MEASUREMENT_IMPACT) * self.rtt_ms + MEASUREMENT_IMPACT * elapsed_ms;
    }

    /// Items to ask for so the answer takes about `target_rtt_ms`, within `[1, max]`.
    pub fn capacity(&self, target_rtt_ms: f64, max: usize) -> usize {
        let items = 1.0 + CAPACITY_OVERESTIMATION * self.items_per_sec * target_rtt_ms / 1000.0;
        (items.ceil() as usize).clamp(1, max.max(1))
    }
}

/// How many times the bandwidth-delay product may be outstanding to a peer (BBR's window
/// gain): room for the pipe to grow when the peer is held back by round trips, not bandwidth.
const PIPE_GAIN: f64 = 2.0;
/// A peer's largest recent delivery rate halves every this many of its round trips, so a peer
/// that slows down is given less.
const RATE_HALF_LIFE_RTTS: f64 = 8.0;

/// How much a peer's pipe holds: its delivery rate (items it served while a request was out,
/// over that request's round trip, as BBR measures it) times its shortest round trip, the
/// bandwidth-delay product. Several requests out at once measure the peer, not one request.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pipe {
    /// Items this peer has served in all.
    delivered: u64,
    /// The largest recent delivery rate, items per ms, decaying from `rate_at`.
    rate: f64,
    rate_at: u64,
    min_rtt_ms: Option<f64>,
}

impl Pipe {
    /// Items served so far: a request remembers this when it is sent.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// An answer with `served` useful items arrived at `now`, `elapsed_ms` after its request
    /// was sent, when the peer had served `delivered_at_send` items. `app_limited`: the
    /// request was smaller than the window allowed (there was no more to ask), so its sample
    /// says how little was asked, not how much the peer can serve: it may raise the rate but
    /// does not let it fade (BBR's rule).
    pub fn answered(
        &mut self,
        served: usize,
        delivered_at_send: u64,
        (elapsed_ms, now): (u64, u64),
        app_limited: bool,
    ) {
        self.delivered += served as u64;
        if served == 0 {
            return;
        }
        let elapsed = elapsed_ms.max(1) as f64;
        let min_rtt = self.min_rtt_ms.map_or(elapsed, |m| m.min(elapsed));
        self.min_rtt_ms = Some(min_rtt);
        let sample = self.delivered.saturating_sub(delivered_at_send) as f64 / elapsed;
        let age = now.saturating_sub(self.rate_at) as f64;
        if app_limited {
            if sample > self.rate {
                self.rate = sample;
                self.rate_at = now;
            }
            return;
        }
        let decayed = self.rate * 0.5f64.powf(age / (RATE_HALF_LIFE_RTTS * min_rtt));
        self.rate = sample.max(decayed);
        self.rate_at = now;
    }

    /// Items that may be outstanding to this peer: twice (`PIPE_GAIN`) its bandwidth-delay
    /// product, within `[floor, cap]`; `initial` until it has answered.
    pub fn window(&self, initial: usize, floor: usize, cap: usize) -> usize {
        let cap = cap.max(1);
        let Some(min_rtt) = self.min_rtt_ms else {
            return initial.clamp(1, cap);
        };
        let bdp = self.rate * min_rtt;
        ((PIPE_GAIN * bdp).ceil() as usize).clamp(floor.clamp(1, cap), cap)
    }
}

/// The shared round-trip target that requests are sized for. (geth also keeps a confidence
/// in it, which only stretches its timeouts; timeouts here are per peer, so it is left out.)
#[derive(Clone, Debug, PartialEq)]
pub struct RoundTrip {
    config: RateConfig,
    rtt_ms: f64,
    tuned_at_ms: u64,
}

impl RoundTrip {
    pub fn new(config: RateConfig, now_ms: u64) -> RoundTrip {
        RoundTrip {
            config,
            rtt_ms: config.initial_rtt_ms,
            tuned_at_ms: now_ms,
        }
    }

    /// A starting estimate for a peer that just joined: the mean throughput and median round
    /// trip of the others.
    pub fn new_peer(&self, others: &[PeerRate]) -> PeerRate {
        if others.is_empty() {
            return PeerRate {
                items_per_sec: 0.0,
                rtt_ms: self.rtt_ms,
                recent_rtt_ms: None,
            };
        }
        let mean = others.iter().map(|p| p.items_per_sec).sum::<f64>() / others.len() as f64;
        PeerRate {
            items_per_sec: mean,
            rtt_ms: self.median_rtt(others),
            recent_rtt_ms: None,
        }
    }

    fn median_rtt(&self, peers: &[PeerRate]) -> f64 {
        let mut rtts: Vec<f64> = peers.iter().map(|p| p.rtt_ms).collect();
        rtts.sort_by(f64::total_cmp);
        let index = if rtts.len() >= TUNING_PEERS {
            TUNING_PEERS / 2
        } else {
            rtts.len() / 2
        };
        rtts.get(index)
            .copied()
            .unwrap_or(self.rtt_ms)
            .clamp(self.config.min_rtt_ms, self.config.max_rtt_ms)
    }

    /// Moves the target towards the peers' median, at most once per round trip.
    pub fn tune(&mut self, now_ms: u64, peers: &[PeerRate]) {
        if peers.is_empty() || (now_ms.saturating_sub(self.tuned_at_ms) as f64) < self.rtt_ms {
            return;
        }
        self.tuned_at_ms = now_ms;
        self.rtt_ms = (1.0 - TUNING_IMPACT) * self.rtt_ms + TUNING_IMPACT * self.median_rtt(peers);
    }

    /// How long an answer should take: requests are sized for this.
    pub fn target_rtt_ms(&self) -> f64 {
        0.9 * self.rtt_ms
    }

    /// The round trip the target follows (before the 0.9 of `target_rtt_ms`).
    pub fn rtt_ms(&self) -> f64 {
        self.rtt_ms
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn a_fresh_peer_asks_for_one_item_then_grows() {
        let rt = RoundTrip::new(RateConfig::default(), 0);
        let mut peer = rt.new_peer(&[]);
        assert_eq!(peer.capacity(rt.target_rtt_ms(), 384), 1);
        // One item in 10 ms: 100 items/s measured, 10 after the 0.1 EWMA, so 1 + 1.01*10*4.5 s.
        peer.update(10.0, 1);
        assert_eq!(peer.capacity(rt.target_rtt_ms(), 384), 47);
        for _ in 0..5 {
            peer.update(100.0, 384);
        }
        assert_eq!(peer.capacity(rt.target_rtt_ms(), 384), 384);
        // The recent estimate moves 30% a sample: 10 → 37 → 55.9 → 69.1 → 78.4 → 84.9.
        assert_eq!(peer.recent_rtt_ms.map(f64::round), Some(85.0));
    }

    #[test]
    fn an_empty_answer_slashes_capacity() {
        let mut peer = PeerRate {
            items_per_sec: 5000.0,
            rtt_ms: 100.0,
            recent_rtt_ms: None,
        };
        peer.update(100.0, 0);
        assert_eq!(peer.capacity(4500.0, 384), 1);
    }

    #[test]
    fn the_target_follows_the_median_within_bounds() {
        let mut rt = RoundTrip::new(RateConfig::default(), 0);
        assert_eq!(rt.rtt_ms(), 5_000.0);
        let fast = PeerRate {
            items_per_sec: 1000.0,
            rtt_ms: 50.0,
            recent_rtt_ms: None,
        };
        for step in 1..200 {
            rt.tune(step * 10_000, &[fast; 3]);
        }
        // The median is clamped to the 1 s floor.
        assert!((rt.rtt_ms() - 1_000.0).abs() < 1.0, "{}", rt.rtt_ms());
    }

    #[test]
    fn a_peer_waits_the_startup_bound_then_a_few_of_its_own_round_trips() {
        let config = RateConfig::default();
        let mut peer = RoundTrip::new(config, 0).new_peer(&[]);
        assert_eq!(config.timeout_ms(peer.recent_rtt_ms), 3_000);
        // Fast answers: four round trips are less than the 1 s floor.
        peer.update(50.0, 10);
        assert_eq!(config.timeout_ms(peer.recent_rtt_ms), 1_000);
        // 2 s answers: 4 × 2 s.
        let mut slow = RoundTrip::new(config, 0).new_peer(&[]);
        slow.update(2_000.0, 10);
        assert_eq!(config.timeout_ms(slow.recent_rtt_ms), 8_000);
        // A 61 s answer: the 60 s ceiling.
        slow.sample_rtt(61_000.0);
        assert_eq!(config.timeout_ms(slow.recent_rtt_ms), 60_000);
    }

    #[test]
    fn a_late_answer_moves_the_round_trip_but_not_the_throughput() {
        let mut peer = PeerRate {
            items_per_sec: 100.0,
            rtt_ms: 100.0,
            recent_rtt_ms: Some(100.0),
        };
        peer.update(0.0, 0); // the timeout
        peer.sample_rtt(5_100.0);
        assert_eq!(peer.items_per_sec, 0.0);
        // 30 % of the way for the recent estimate, 10 % for the slow one.
        assert_eq!(peer.recent_rtt_ms.map(f64::round), Some(1_600.0));
        assert_eq!(peer.rtt_ms.round(), 600.0);
    }

    #[test]
    fn joining_peers_start_from_the_others() {
        let rt = RoundTrip::new(RateConfig::default(), 0);
        let others = [
            PeerRate {
                items_per_sec: 100.0,
                rtt_ms: 2000.0,
                recent_rtt_ms: None,
            },
            PeerRate {
                items_per_sec: 300.0,
                rtt_ms: 4000.0,
                recent_rtt_ms: None,
            },
        ];
        let joined = rt.new_peer(&others);
        assert_eq!(joined.items_per_sec, 200.0);
        assert_eq!(joined.rtt_ms, 4000.0);
        assert_eq!(joined.recent_rtt_ms, None);
    }

    #[test]
    fn a_pipe_grows_while_round_trips_hold_it_back_and_follows_the_bandwidth_after() {
        let mut pipe = Pipe::default();
        assert_eq!(pipe.window(1_536, 384, 6_144), 1_536);
        // 1,536 items out, each request answered after 100 ms with the peer serving all of
        // them in that time: 15.36 items per ms × 100 ms, doubled.
        pipe.answered(1_536, 0, (100, 100), false);
        assert_eq!(pipe.window(1_536, 384, 100_000), 3_072);
        assert_eq!(pipe.window(1_536, 384, 2_000), 2_000);
        // A peer serving 1 item per ms, answers 200 ms late (queued behind the others): the
        // window settles at twice 1 item/ms × the 100 ms round trip, after the old rate fades.
        for i in 0..200 {
            let delivered = pipe.delivered();
            pipe.answered(200, delivered, (200, 300 + 200 * i), false);
        }
        assert!(pipe.window(1_536, 1, 100_000) <= 2 * 200 + 1);
        assert_eq!(pipe.window(1_536, 384, 100_000), 384);
        // A small answer to a request cut short for lack of work does not shrink it further.
        let before = pipe.window(1_536, 1, 100_000);
        let delivered = pipe.delivered();
        pipe.answered(2, delivered, (100, 1_000_000), true);
        assert_eq!(pipe.window(1_536, 1, 100_000), before);
    }
}
