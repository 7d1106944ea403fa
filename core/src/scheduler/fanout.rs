//! How many new table entries a fetched node brings, learned per depth: what handing out an
//! item may cost the table before its answer shows. The scheduler reserves this much room per
//! item out, so that a wide pipe cannot take the table far past `max_pending` when a whole
//! level's children land at once (I5).

/// Samples at a depth before its mean is trusted; until then an item there may be a full
/// branch.
const MIN_SAMPLES: u32 = 16;

/// The most children one node can add: a full branch.
pub(super) const MAX_CHILDREN: u8 = 16;

#[derive(Debug, Default)]
pub(super) struct Fanout {
    /// Per depth: nodes fetched and processed, and the pending children they added.
    per_depth: Vec<(u32, u32)>,
}

impl Fanout {
    /// Entries a node fetched at `depth` is expected to add: the mean seen there, rounded up,
    /// or a full branch while the depth has too few samples.
    pub fn estimate(&self, depth: usize) -> u8 {
        match self.per_depth.get(depth) {
            Some(&(nodes, children)) if nodes >= MIN_SAMPLES => {
                children.div_ceil(nodes).min(u32::from(MAX_CHILDREN)) as u8
            }
            _ => MAX_CHILDREN,
        }
    }

    /// A node fetched at `depth` added `children` pending entries.
    pub fn record(&mut self, depth: usize, children: u32) {
        if self.per_depth.len() <= depth {
            self.per_depth.resize(depth + 1, (0, 0));
        }
        let (nodes, added) = &mut self.per_depth[depth];
        // Halve both on overflow: the mean stays, the old samples weigh less.
        if *nodes == u32::MAX || added.checked_add(children).is_none() {
            *nodes /= 2;
            *added /= 2;
        }
        *nodes += 1;
        *added += children;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_depth_may_be_a_full_branch() {
        let mut fanout = Fanout::default();
        assert_eq!(fanout.estimate(3), MAX_CHILDREN);
        for _ in 0..MIN_SAMPLES - 1 {
            fanout.record(3, 0);
        }
        assert_eq!(fanout.estimate(3), MAX_CHILDREN, "too few samples to trust");
    }

    #[test]
    fn a_learned_depth_costs_its_mean_rounded_up() {
        let mut fanout = Fanout::default();
        for i in 0..100 {
            fanout.record(5, if i % 4 == 0 { 2 } else { 0 });
        }
        assert_eq!(fanout.estimate(5), 1, "a mean of 0.5 reserves one entry");
        for _ in 0..100 {
            fanout.record(2, 16);
        }
        assert_eq!(fanout.estimate(2), 16);
        for _ in 0..MIN_SAMPLES {
            fanout.record(9, 0);
        }
        assert_eq!(fanout.estimate(9), 0, "leaves reserve nothing");
    }
}
