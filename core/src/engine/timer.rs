//! Every deadline the engine keeps, one [`Timer`] per reason, in one table: the host's next
//! wake-up (`Engine::poll_timeout`) is its earliest entry.

use std::collections::{BTreeMap, BTreeSet};

use super::PeerId;

/// Why the engine wants to be woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// Request `id` goes unanswered past its timeout: its items go to other peers.
    Request(u64),
    /// A connected peer has not sent its Status within `peer_grace_ms`: it is dropped.
    StatusGrace(PeerId),
    /// Items no peer could serve are offered to every peer again.
    UnservableRetry,
    /// Something verified has waited `batch_interval_ms` to be written: cut a batch, however
    /// small.
    TimeCut,
    /// A stall has lasted long enough, and the peers have had time to connect: report it.
    StallReport,
    /// A stall has lasted `stall_timeout_ms` without progress: give up.
    StallTimeout,
    /// The next progress event is due.
    Progress,
}

/// Deadlines in virtual milliseconds, at most one per timer.
#[derive(Debug, Default)]
pub(super) struct TimerTable {
    deadlines: BTreeMap<Timer, u64>,
    /// The same entries ordered by deadline.
    order: BTreeSet<(u64, Timer)>,
}

impl TimerTable {
    /// Arms `timer` for `at`, replacing its earlier deadline.
    pub fn set(&mut self, timer: Timer, at: u64) {
        if let Some(old) = self.deadlines.insert(timer, at) {
            self.order.remove(&(old, timer));
        }
        self.order.insert((at, timer));
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        if let Some(old) = self.deadlines.remove(&timer) {
            self.order.remove(&(old, timer));
        }
    }

    /// Arms `timer` for `at`, or disarms it for `None`.
    pub fn set_or_stop(&mut self, timer: Timer, at: Option<u64>) {
        match at {
            Some(at) => self.set(timer, at),
            None => self.stop(timer),
        }
    }

    pub fn is_armed(&self, timer: Timer) -> bool {
        self.deadlines.contains_key(&timer)
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<u64> {
        self.order.first().map(|(at, _)| *at)
    }

    /// Disarms and returns the timers of `wanted` kinds due at `now`, earliest first (ties by
    /// timer order). Others stay armed.
    pub fn take_expired(&mut self, now: u64, wanted: impl Fn(&Timer) -> bool) -> Vec<Timer> {
        let due: Vec<(u64, Timer)> = self
            .order
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter(|(_, timer)| wanted(timer))
            .copied()
            .collect();
        for (at, timer) in &due {
            self.order.remove(&(*at, *timer));
            self.deadlines.remove(timer);
        }
        due.into_iter().map(|(_, timer)| timer).collect()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn the_next_deadline_is_the_earliest_armed_one() {
        let mut timers = TimerTable::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Progress, 500);
        timers.set(Timer::Request(7), 300);
        timers.set(Timer::Request(7), 900);
        assert_eq!(timers.next(), Some(500));
        timers.stop(Timer::Progress);
        assert_eq!(timers.next(), Some(900));
        timers.set_or_stop(Timer::Request(7), None);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn expired_timers_of_the_wanted_kinds_are_taken_in_deadline_order() {
        let mut timers = TimerTable::default();
        timers.set(Timer::Request(2), 100);
        timers.set(Timer::Request(1), 100);
        timers.set(Timer::StatusGrace(4), 50);
        timers.set(Timer::TimeCut, 10);
        timers.set(Timer::Request(3), 101);
        let due = timers.take_expired(100, |t| !matches!(t, Timer::TimeCut));
        assert_eq!(
            due,
            vec![Timer::StatusGrace(4), Timer::Request(1), Timer::Request(2)]
        );
        assert!(timers.is_armed(Timer::TimeCut));
        assert!(!timers.is_armed(Timer::Request(1)));
        assert_eq!(timers.next(), Some(10));
    }
}
