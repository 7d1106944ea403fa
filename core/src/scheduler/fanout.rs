//! How many new table entries a fetched node brings, learned per depth: what handing out an
//! item may cost the table before its answer shows. The scheduler keeps room for this much per
//! item out, so that a wide pipe cannot take the table far past `max_pending` when a whole
//! level's children land at once (I5). The room is counted from the current estimates, so the
//! first answers of a level free what its items out were charged as full branches.

/// Samples at a depth before its mean is trusted; until then an item there may be a full
/// branch.
const MIN_SAMPLES: u32 = 16;

/// The most children one node can add: a full branch.
pub(super) const MAX_CHILDREN: u8 = 16;

#[derive(Debug, Default)]
pub(super) struct Fanout {
    per_depth: Vec<Depth>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Depth {
    /// Nodes fetched and processed here.
    nodes: u32,
    /// The pending children they added.
    children: u32,
    /// Items fetched here whose answers have not been processed.
    out: u32,
}

impl Fanout {
    /// Entries a node fetched at `depth` is expected to add: the mean seen there, rounded up,
    /// or a full branch while the depth has too few samples.
    pub fn estimate(&self, depth: usize) -> u8 {
        self.per_depth
            .get(depth)
            .map_or(MAX_CHILDREN, Depth::estimate)
    }

    /// Entries the items out are expected to add, by the current estimates.
    pub fn expected(&self) -> usize {
        self.per_depth
            .iter()
            .map(|d| d.out as usize * usize::from(d.estimate()))
            .sum()
    }

    /// An item at `depth` was handed out.
    pub fn sent(&mut self, depth: usize) {
        self.at(depth).out += 1;
    }

    /// The answer to an item handed out at `depth` was processed: as a node that added
    /// `children` pending entries, or (`None`) otherwise (code, or a node some other way made
    /// complete).
    pub fn answered(&mut self, depth: usize, children: Option<u32>) {
        let d = self.at(depth);
        d.out = d.out.saturating_sub(1);
        let Some(children) = children else {
            return;
        };
        // Halve both on overflow: the mean stays, the old samples weigh less.
        if d.nodes == u32::MAX || d.children.checked_add(children).is_none() {
            d.nodes /= 2;
            d.children /= 2;
        }
        d.nodes += 1;
        d.children += children;
    }

    fn at(&mut self, depth: usize) -> &mut Depth {
        if self.per_depth.len() <= depth {
            self.per_depth.resize(depth + 1, Depth::default());
        }
        &mut self.per_depth[depth]
    }
}

impl Depth {
    fn estimate(&self) -> u8 {
        if self.nodes < MIN_SAMPLES {
            return MAX_CHILDREN;
        }
        self.children
            .div_ceil(self.nodes)
            .min(u32::from(MAX_CHILDREN)) as u8
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn an_unknown_depth_may_be_a_full_branch() {
        let mut fanout = Fanout::default();
        assert_eq!(fanout.estimate(3), MAX_CHILDREN);
        for _ in 0..MIN_SAMPLES - 1 {
            fanout.answered(3, Some(0));
        }
        assert_eq!(fanout.estimate(3), MAX_CHILDREN, "too few samples to trust");
    }

    #[test]
    fn a_learned_depth_costs_its_mean_rounded_up() {
        let mut fanout = Fanout::default();
        for i in 0..100 {
            fanout.answered(5, Some(if i % 4 == 0 { 2 } else { 0 }));
        }
        assert_eq!(fanout.estimate(5), 1, "a mean of 0.5 reserves one entry");
        for _ in 0..100 {
            fanout.answered(2, Some(16));
        }
        assert_eq!(fanout.estimate(2), 16);
        for _ in 0..MIN_SAMPLES {
            fanout.answered(9, Some(0));
        }
        assert_eq!(fanout.estimate(9), 0, "leaves reserve nothing");
    }

    #[test]
    fn items_out_are_charged_by_the_current_estimate() {
        let mut fanout = Fanout::default();
        for _ in 0..100 {
            fanout.sent(4);
        }
        assert_eq!(
            fanout.expected(),
            100 * 16,
            "an unknown depth: full branches"
        );
        for _ in 0..MIN_SAMPLES {
            fanout.answered(4, Some(1));
        }
        assert_eq!(
            fanout.expected(),
            84,
            "the rest are charged one entry each now"
        );
        fanout.answered(4, None);
        assert_eq!(fanout.expected(), 83);
    }
}
