//! Engine tests, all on the one harness (`testnet`): peers, requests, retries and hedging,
//! then durability, backpressure, the commit state machine and stalls (DESIGN.md I7).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::sync::Arc;

use super::testnet::{Pace, PeerKind, SentRequest, TestNet, TestStore};
use super::*;
use crate::progress::Phase;
use crate::scheduler::SyncMode;
use crate::store::{ItemKind, MemoryStore, StoreKey};
use crate::synthetic::{generate, SyntheticConfig};
use crate::walk::walk;

/// Small requests, one at a time per peer, so that every peer is given work.
fn small_requests() -> EngineConfig {
    EngineConfig {
        max_items_per_request: 8,
        max_in_flight_per_peer: 1,
        ..EngineConfig::default()
    }
}

/// Store operations scripted by hand in the test, the root's lookup included: no filter
/// answers lookups on the store's behalf.
fn unfiltered() -> EngineConfig {
    EngineConfig {
        fresh_store_filter_bytes: 0,
        ..EngineConfig::default()
    }
}

fn small_batches() -> EngineConfig {
    EngineConfig {
        batch_items: 64,
        batch_bytes: 8 * 1024,
        ..EngineConfig::default()
    }
}

fn is_commit(op: &StoreOp) -> bool {
    matches!(op.action, StoreAction::Commit { .. })
}

/// The requests sent so far, as (peer, id).
fn sent(net: &mut TestNet<'_>) -> Vec<(PeerId, u64)> {
    net.take_requests()
        .into_iter()
        .map(|r| (r.peer, r.id))
        .collect()
}

fn empty_answer(id: u64) -> Vec<u8> {
    TestNet::answer_frame(id, Vec::new())
}

#[test]
fn syncs_a_state_from_good_peers_despite_a_garbage_peer() {
    let state = generate(&SyntheticConfig::new(400, 3));
    let mut net = TestNet::new(&state.store, state.root, small_requests());
    net.join(0);
    net.join(1);
    net.join_as(2, PeerKind::Garbage);
    net.drive();
    walk(state.root, SyncMode::State, net.memory()).unwrap();
    assert_eq!(net.memory().keys(), state.store.keys());
    let Some(Event::Finished(progress)) = net
        .events
        .iter()
        .rev()
        .find(|e| matches!(e, Event::Finished(_)))
    else {
        panic!("no Finished event");
    };
    assert_eq!(progress.fraction, 1.0);
    assert_eq!(
        progress.committed as usize,
        net.memory().node_count() + net.memory().code_count()
    );
    let garbage = progress.peers.iter().find(|p| p.peer == 2);
    let disconnected = net
        .events
        .iter()
        .any(|e| matches!(e, Event::PeerDisconnected { peer: 2, .. }));
    assert!(disconnected, "garbage peer kept: {garbage:?}");
}

#[test]
fn cancel_flushes_items_that_complete_while_the_first_flush_is_written() {
    let state = generate(&SyntheticConfig::new(200, 9));
    let mut net = TestNet::new(&state.store, state.root, unfiltered());
    net.join(1);
    let mut answered = 0;
    let mut cancelled = false;
    let mut pending_answers: Vec<(PeerId, Vec<u8>)> = Vec::new();
    for step in 0..10_000 {
        net.now = step;
        // Once cancelled, peer answers land while each store operation is being run.
        while let Some(op) = net.engine.poll_store_op() {
            if cancelled {
                for (peer, frame) in pending_answers.drain(..) {
                    net.deliver(peer, &frame);
                }
            }
            net.run_op(op);
        }
        for request in net.take_requests() {
            pending_answers.push((request.peer, net.honest_answer(&request)));
        }
        if !cancelled && answered >= 3 {
            cancelled = true;
            net.engine.cancel(step);
            continue;
        }
        if !cancelled {
            for (peer, frame) in pending_answers.drain(..) {
                net.deliver(peer, &frame);
                answered += 1;
            }
        }
        net.collect_events();
        if net.events.contains(&Event::Cancelled) {
            // Everything complete was written: the stored part is sound.
            for key in net.memory().keys() {
                assert_eq!(net.memory().get(key), state.store.get(key));
            }
            return;
        }
    }
    panic!("cancel never finished flushing");
}

#[test]
fn a_fresh_store_is_asked_only_about_keys_this_session_may_have_written() {
    let state = generate(&SyntheticConfig::new(2000, 5));
    let items = state.store.node_count() + state.store.code_count();
    let lookups = |config: EngineConfig| {
        let mut net = TestNet::new(&state.store, state.root, config);
        net.pace = Pace {
            answers_per_step: usize::MAX,
            ms_per_step: 1,
        };
        net.join(1);
        net.drive();
        assert!(net.engine.is_done());
        assert_eq!(net.memory().keys(), state.store.keys());
        net.looked_up
    };
    // Shared code and storage are found in this session's writes; everything else never
    // reaches the store.
    let asked = lookups(EngineConfig::default());
    assert!(
        asked < items / 20,
        "{asked} lookups reached the store for {items} items"
    );
    // Without the filter every child is looked up.
    let unfiltered = lookups(unfiltered());
    assert!(
        unfiltered > items / 2,
        "{unfiltered} lookups without the filter for {items} items"
    );
}

#[test]
fn a_peer_sending_malformed_frames_is_disconnected_at_the_penalty_limit() {
    let root = crate::hash::keccak256(b"root");
    let source = MemoryStore::new();
    let mut net = TestNet::new(&source, root, EngineConfig::default());
    net.connect(7, PeerKind::Honest);
    for i in 0..4 {
        assert!(
            !matches!(
                net.engine.poll_transmit(),
                Some(Transmit::Disconnect { .. })
            ),
            "too early at {i}"
        );
        net.deliver(7, &[0x0e, 0xff, 0x00]);
    }
    let disconnect = std::iter::from_fn(|| net.engine.poll_transmit())
        .find(|t| matches!(t, Transmit::Disconnect { .. }));
    assert!(matches!(
        disconnect,
        Some(Transmit::Disconnect {
            peer: 7,
            reason: DisconnectReason::Misbehaving { penalty: 100, .. }
        })
    ));
    // Frames from a forgotten peer change nothing.
    net.deliver(7, &[0x0e]);
    assert!(net.engine.progress().peers.is_empty());
}

#[test]
fn an_item_one_peer_lacks_is_asked_of_the_next_peer() {
    // Found by the simulator (empty_answers seed 0): the first peer in capacity order had
    // nothing it could be given, and the others were never offered the retry.
    let state = generate(&SyntheticConfig::new(20, 9));
    let config = EngineConfig {
        max_in_flight_per_peer: 1,
        ..unfiltered()
    };
    let mut net = TestNet::new(&state.store, state.root, config);
    net.join(0);
    net.join(1);
    // The store is empty: the root's lookup says absent.
    assert!(net.run_store_ops());
    // Equal capacities: peer 0 comes first and is asked for the root.
    assert_eq!(sent(&mut net), vec![(0, 1)]);
    // It has none of it.
    net.now = 10;
    net.deliver(0, &empty_answer(1));
    let next = sent(&mut net);
    assert_eq!(next.len(), 1, "the root was not asked of peer 1: {next:?}");
    assert_eq!(next[0].0, 1);
}

#[test]
fn peers_that_lack_an_item_are_remembered_across_requests() {
    // Found by the simulator (peers_lacking_part_of_the_state seed 13): each failure
    // replaced the list of peers lacking an item with the last one, so the item went back
    // and forth between two peers that lack it and never reached the third that has it.
    let state = generate(&SyntheticConfig::new(20, 9));
    let config = EngineConfig {
        max_in_flight_per_peer: 1,
        ..unfiltered()
    };
    let mut net = TestNet::new(&state.store, state.root, config);
    for peer in [0, 1, 2] {
        net.join(peer);
    }
    assert!(net.run_store_ops());
    let mut asked = Vec::new();
    for now in 1..=3 {
        let Some(&(peer, id)) = sent(&mut net).first() else {
            break;
        };
        asked.push(peer);
        if peer == 2 {
            break;
        }
        // Peers 0 and 1 do not have the root.
        net.now = now;
        net.deliver(peer, &empty_answer(id));
    }
    assert_eq!(asked, vec![0, 1, 2]);
}

#[test]
fn unservable_items_go_to_a_new_peer_as_soon_as_its_status_arrives() {
    // Found by the simulator (no_peer_can_serve_until_a_complete_peer_joins): items were
    // offered again when the peer connected, before its Status made it usable, so they
    // were parked again and waited for the unservable retry timer.
    let state = generate(&SyntheticConfig::new(20, 9));
    let mut net = TestNet::new(&state.store, state.root, unfiltered());
    net.join(0);
    assert!(net.run_store_ops());
    assert_eq!(sent(&mut net), vec![(0, 1)]);
    net.now = 10;
    net.deliver(0, &empty_answer(1));
    assert_eq!(net.engine.progress().unservable, 1);
    // A peer connects; its Status follows a round trip later.
    net.now = 20;
    net.connect(1, PeerKind::Honest);
    net.now = 120;
    net.deliver(1, &TestNet::status(state.root));
    assert_eq!(sent(&mut net), vec![(1, 2)]);
}

/// Runs the store's operations, then logs the requests sent (in `net.requests`).
fn settle(net: &mut TestNet<'_>) {
    net.run_store_ops();
    net.take_requests();
}

/// The honest answer to `hashes`, as request `id`.
fn answer(net: &TestNet<'_>, id: u64, hashes: &[H256]) -> Vec<u8> {
    net.honest_answer(&SentRequest {
        peer: 0,
        id,
        hashes: hashes.to_vec(),
    })
}

#[test]
fn a_hedged_item_that_fails_twice_is_asked_for_once_per_request() {
    // Found by the simulator (everything_mixed seed 549): an item in a request and in its
    // hedged copy went back to the retry queue once per copy, the next request carried
    // its hash twice, and the honest peer answering both copies was disconnected for
    // sending blobs that were "not asked for".
    let state = generate(&SyntheticConfig::new(200, 9));
    let config = EngineConfig {
        max_in_flight_per_peer: 1,
        ..unfiltered()
    };
    let mut net = TestNet::new(&state.store, state.root, config);
    net.log_requests = true;
    net.join(0);
    settle(&mut net);
    // Peer 0 serves the root quickly, then is asked for its children.
    net.now = 10;
    let root = answer(&net, 1, &[state.root]);
    net.deliver(0, &root);
    settle(&mut net);
    let children = net.requests.last().cloned().unwrap();
    assert!(children.hashes.len() > 2);
    // Peer 1 joins; once peer 0's request is overdue, peer 1 gets a hedged copy.
    net.now = 20;
    net.join(1);
    net.now = 400;
    net.engine.handle_timeout(400);
    settle(&mut net);
    assert_eq!(
        net.requests.last().map(|s| (s.peer, s.hashes.clone())),
        Some((1, children.hashes.clone()))
    );
    // Both copies fail: peer 1 goes away, peer 0 answers with the first child only.
    net.now = 410;
    net.engine.handle_peer_left(1, 410);
    net.now = 420;
    let partial = answer(&net, children.id, &children.hashes[..1]);
    net.deliver(0, &partial);
    settle(&mut net);
    for request in &net.requests {
        let unique: std::collections::BTreeSet<&H256> = request.hashes.iter().collect();
        assert_eq!(
            unique.len(),
            request.hashes.len(),
            "request {} to {} repeats hashes",
            request.id,
            request.peer
        );
    }
    assert_eq!(
        net.engine.progress().retrying,
        0,
        "{:?}",
        net.engine.progress()
    );
}

#[test]
fn a_hedged_request_for_an_old_root_does_not_hold_back_the_new_roots_items() {
    // Found by the simulator (everything_mixed seed 56): a failed request's items were not
    // queued again because a hedged request still asked for the same hashes, but that
    // request was for the root before a switch, and its failure queues nothing.
    use crate::builder::{KeyMode, TrieBuilder};
    let (mut a, mut source) = (TrieBuilder::new(KeyMode::Plain), MemoryStore::new());
    for slot in 0..15u8 {
        for j in 0..4u8 {
            a.insert(&[slot << 4, j], &[slot; 40]);
        }
    }
    let mut b = a.clone();
    b.insert(&[0xf0, 0], &[0xff; 40]);
    let root_a = a.build(&mut |h, n| source.insert(StoreKey::node(h), n));
    let root_b = b.build(&mut |h, n| source.insert(StoreKey::node(h), n));
    let config = EngineConfig {
        mode: SyncMode::Trie,
        max_in_flight_per_peer: 2,
        ..EngineConfig::default()
    };
    let mut net = TestNet::new(&source, root_a, config);
    net.log_requests = true;
    net.join(0);
    settle(&mut net);
    net.now = 10;
    let root = answer(&net, 1, &[root_a]);
    net.deliver(0, &root);
    settle(&mut net);
    let old_children = net.requests.last().unwrap().hashes.clone();
    assert_eq!(old_children.len(), 15);
    // Peer 1 hedges peer 0's overdue request for A's children.
    net.now = 20;
    net.join(1);
    net.now = 400;
    net.engine.handle_timeout(400);
    settle(&mut net);
    assert_eq!(net.requests.last().map(|s| s.peer), Some(1));
    // The root moves to B, which shares those children; peer 0 serves B's root.
    net.now = 410;
    net.engine.switch_root(root_b, 410);
    settle(&mut net);
    let SentRequest { peer, id, hashes } = net.requests.last().cloned().unwrap();
    assert_eq!((peer, hashes.clone()), (0, vec![root_b]));
    net.now = 420;
    let root = answer(&net, id, &hashes);
    net.deliver(0, &root);
    settle(&mut net);
    let new_children = net.requests.last().cloned().unwrap();
    assert_eq!(new_children.hashes.len(), 16);
    // That peer has none of them: every one must go to the other, shared or not.
    net.now = 430;
    net.deliver(new_children.peer, &empty_answer(new_children.id));
    settle(&mut net);
    let last = net.requests.last().cloned().unwrap();
    assert_eq!(last.peer, 1 - new_children.peer);
    assert_eq!(last.hashes.len(), 16, "{:?}", net.engine.progress());
}

#[test]
fn a_store_that_holds_the_root_finishes_without_fetching() {
    let state = generate(&SyntheticConfig::new(50, 4));
    // A store that holds data comes with its progress record, as after a crash.
    let record = ProgressRecord {
        root: state.root,
        ..ProgressRecord::default()
    };
    let mut net = TestNet::resume(
        &state.store,
        state.root,
        small_requests(),
        state.store.clone(),
        Some(record),
        0,
    );
    net.join(0);
    net.drive();
    let finished = net
        .events
        .iter()
        .find_map(|e| match e {
            Event::Finished(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(finished.processed, 0);
    assert_eq!(finished.skipped, 1);
}

// ── durability, backpressure, the commit state machine, stalls ─────────────────────────

#[test]
fn resume_while_a_commit_is_in_flight_writes_the_batch_once() {
    let state = generate(&SyntheticConfig::new(300, 9));
    let mut net = TestNet::new(&state.store, state.root, small_batches());
    net.join(1);
    let mut commits = 0;
    let op = net
        .drive_until(u64::MAX, &mut |op| {
            is_commit(op) && {
                commits += 1;
                commits == 3
            }
        })
        .expect("a third commit");
    // The host is writing it; the user pauses and resumes, twice.
    for _ in 0..2 {
        net.engine.pause(net.now);
        net.engine.resume(net.now);
        assert_eq!(
            net.engine.poll_store_op(),
            None,
            "a second op while one is out"
        );
    }
    net.run_op(op);
    net.drive();
    assert!(net.engine.is_done());
    for (i, a) in net.written.iter().enumerate() {
        for b in &net.written[i + 1..] {
            assert!(!Arc::ptr_eq(a, b), "a batch was written twice");
        }
    }
    assert_eq!(net.memory().keys(), state.store.keys());
    assert_eq!(net.memory().staged_count(), 0);
}

#[test]
fn a_failed_commit_is_sent_again_once_on_resume_and_only_then() {
    let state = generate(&SyntheticConfig::new(300, 9));
    let mut net = TestNet::new(&state.store, state.root, small_batches());
    net.join(1);
    let op = net.drive_until(u64::MAX, &mut is_commit).expect("a commit");
    let StoreAction::Commit { batch, .. } = &op.action else {
        unreachable!()
    };
    let batch = Arc::clone(batch);
    let unwritten = net.engine.unwritten();
    let failure = StoreFailure {
        kind: StoreFailureKind::QuotaExceeded,
        message: "full".into(),
    };
    net.engine
        .handle_store_result(op.id, StoreResult::Failed(failure.clone()), net.now);
    net.collect_events();
    assert!(net.events.contains(&Event::Paused(failure)));
    // Paused by the store: nothing is retried on its own, nothing is lost.
    assert_eq!(net.engine.poll_store_op(), None);
    assert_eq!(net.engine.unwritten(), unwritten);
    net.engine.resume(net.now);
    let again = net.engine.poll_store_op().expect("the failed batch again");
    let StoreAction::Commit { batch: resent, .. } = &again.action else {
        panic!("{again:?} is not the commit")
    };
    assert!(Arc::ptr_eq(&batch, resent), "not the same batch");
    net.engine.resume(net.now);
    assert_eq!(net.engine.poll_store_op(), None, "sent twice");
    net.run_op(again);
    net.drive();
    assert!(net.engine.is_done());
    assert_eq!(net.memory().keys(), state.store.keys());
}

/// Drives `net` with a store slower than its peers: every request is answered, then one store
/// operation runs; `each` sees the net before and after every round of answers (with its
/// requests out, then with their answers taken in). Stops when the engine finishes (or after
/// 100,000 rounds; the caller asserts that it is done).
fn drive_with_a_slow_store(net: &mut TestNet<'_>, mut each: impl FnMut(&TestNet<'_>)) {
    for _ in 0..100_000 {
        each(net);
        net.answer_all();
        each(net);
        if let Some(op) = net.engine.poll_store_op() {
            net.run_op(op);
        }
        net.collect_events();
        if net.engine.is_finished() {
            break;
        }
    }
}

#[test]
fn unwritten_items_never_exceed_one_batch_with_a_slow_store() {
    let state = generate(&SyntheticConfig::new(1_000, 4));
    let config = EngineConfig {
        batch_items: 200,
        ..EngineConfig::default()
    };
    let mut net = TestNet::new(&state.store, state.root, config);
    for peer in 1..=3 {
        net.join(peer);
    }
    let mut peak = 0;
    drive_with_a_slow_store(&mut net, |net| {
        peak = peak.max(net.engine.unwritten().0);
        assert!(net.engine.unwritten().0 <= 200);
    });
    assert!(net.engine.is_done());
    assert!(peak > 100, "the bound was never approached ({peak})");
    let largest = net
        .written
        .iter()
        .map(|b| b.operations())
        .max()
        .unwrap_or(0);
    assert!(largest <= 200, "a batch of {largest} operations");
}

/// Answers that arrive while the unwritten batch is full are held, unverified, and verified
/// after commits land: none is dropped (no clock runs here, so a dropped answer would never be
/// asked again and the sync would not finish), held blobs plus items asked stay within the
/// ask cap, and the unwritten items within one batch.
#[test]
fn answers_beyond_the_unwritten_batch_are_held_until_the_store_catches_up() {
    let state = generate(&SyntheticConfig::new(1_000, 4));
    let config = EngineConfig {
        batch_items: 200,
        max_in_flight_per_peer: 8,
        ..EngineConfig::default()
    };
    let mut net = TestNet::new(&state.store, state.root, config);
    for peer in 1..=3 {
        net.join(peer);
    }
    let cap = net.engine.ask_cap_items();
    assert_eq!(cap, ASK_BATCHES * 200);
    let mut peak_held = 0;
    let mut peak_out = 0;
    drive_with_a_slow_store(&mut net, |net| {
        let (held, _) = net.engine.held();
        let out = net.engine.outstanding_items();
        peak_held = peak_held.max(held);
        peak_out = peak_out.max(out);
        assert!(held + out <= cap, "{held} held and {out} asked over {cap}");
        assert!(net.engine.unwritten().0 <= 200);
    });
    assert!(net.engine.is_done());
    assert!(peak_held > 0, "nothing was ever held");
    assert!(
        peak_out > 200,
        "the items asked stayed within one batch ({peak_out})"
    );
    assert_eq!(net.engine.held(), (0, 0));
}

#[test]
fn a_stall_past_the_timeout_writes_everything_then_fails_naming_the_first_unservable_item() {
    let state = generate(&SyntheticConfig::new(300, 2));
    let leaf = *state
        .store
        .keys()
        .iter()
        .find(|k| k.hash != state.root && k.kind == ItemKind::Node)
        .expect("a node");
    let config = EngineConfig {
        stall_timeout_ms: Some(20_000),
        ..EngineConfig::default()
    };
    let mut net = TestNet::new(&state.store, state.root, config);
    net.withheld.push(leaf);
    net.join(1);
    net.drive();
    assert!(net.engine.is_finished() && !net.engine.is_done());
    let stalled = net
        .events
        .iter()
        .position(|e| matches!(e, Event::Stalled { first: Some(h), .. } if *h == leaf.hash))
        .expect("a Stalled event naming the item");
    let Some(Event::Failed(EngineError::Stalled {
        first, stalled_ms, ..
    })) = net.events.last()
    else {
        panic!("ended with {:?}", net.events.last());
    };
    assert_eq!(*first, Some(leaf.hash));
    assert!(*stalled_ms >= 20_000);
    assert!(stalled < net.events.len() - 1);
    // Everything verified is durable: nothing is left in memory.
    assert_eq!(net.engine.unwritten(), (0, 0));
    let fetched = net.engine.progress().processed;
    let store = net.memory();
    assert_eq!(
        store.node_count() + store.code_count() + store.staged_count(),
        fetched as usize
    );
}

#[test]
fn a_peer_that_sends_no_status_is_dropped_after_the_grace_period() {
    let state = generate(&SyntheticConfig::new(10, 1));
    let mut net = TestNet::new(&state.store, state.root, EngineConfig::default());
    net.connect(7, PeerKind::Honest);
    net.engine.handle_timeout(4_999);
    assert_eq!(net.engine.poll_transmit(), None);
    assert_eq!(net.engine.poll_timeout(), Some(5_000));
    net.engine.handle_timeout(5_000);
    assert_eq!(
        net.engine.poll_transmit(),
        Some(Transmit::Disconnect {
            peer: 7,
            reason: DisconnectReason::NoStatus { waited_ms: 5_000 }
        })
    );
}

#[test]
fn no_stall_is_reported_before_the_peers_have_had_time_to_connect() {
    let state = generate(&SyntheticConfig::new(10, 1));
    let mut net = TestNet::new(&state.store, state.root, EngineConfig::default());
    net.drive_until(4_900, &mut |_| false);
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, Event::Stalled { .. })),
        "{:?}",
        net.events
    );
    assert!(net
        .events
        .iter()
        .all(|e| !matches!(e, Event::Progress(p) if p.phase == Phase::Stalled)));
    net.drive_until(6_000, &mut |_| false);
    assert!(net.events.contains(&Event::Stalled {
        unservable: 0,
        first: None,
        peers: 0
    }));
    assert_eq!(net.engine.progress().phase, Phase::Stalled);
    assert_eq!(net.engine.progress().eta_ms, None);
}

#[test]
fn a_resumed_sync_takes_staged_items_back_instead_of_fetching_them() {
    let state = generate(&SyntheticConfig::new(400, 6));
    let mut net = TestNet::new(&state.store, state.root, small_batches());
    net.join(1);
    // Run until a few batches landed, then "crash": the engine and its memory are gone.
    let mut commits = 0;
    let held = net.drive_until(u64::MAX, &mut |op| {
        is_commit(op) && {
            commits += 1;
            commits == 6
        }
    });
    assert!(held.is_some());
    let staged = net.memory().staged_count();
    assert!(staged > 0, "nothing was staged");
    let record = net.written.last().map(|_| net.engine.committed);
    let TestStore::Memory(mut store) = std::mem::replace(&mut net.store, TestStore::Discard) else {
        unreachable!("a memory store")
    };
    let durable: Vec<H256> = store
        .keys()
        .iter()
        .map(|k| k.hash)
        .chain(store.staged().into_iter().map(|(h, _)| h))
        .collect();
    // Corrupt one staged entry: it must be dropped and fetched again, not used.
    let (bad, _) = store.staged()[0].clone();
    store.stage(bad, b"not the node".to_vec());
    let mut resumed = TestNet::resume(
        &state.store,
        state.root,
        small_batches(),
        store,
        record,
        net.now,
    );
    resumed.pace = Pace {
        answers_per_step: usize::MAX,
        ms_per_step: 1,
    };
    resumed.log_requests = true;
    resumed.join(1);
    resumed.drive();
    assert!(resumed.engine.is_done());
    let asked: Vec<H256> = resumed
        .requests
        .iter()
        .flat_map(|r| r.hashes.iter().copied())
        .collect();
    let progress = resumed.engine.progress();
    assert_eq!(progress.restored as usize, staged - 1, "{progress:?}");
    assert!(
        asked.contains(&bad),
        "the corrupt staged item was not fetched"
    );
    let refetched: Vec<&H256> = asked
        .iter()
        .filter(|h| **h != bad && durable.contains(h))
        .collect();
    assert!(refetched.is_empty(), "fetched again: {refetched:?}");
    assert_eq!(resumed.memory().keys(), state.store.keys());
    assert_eq!(resumed.memory().staged_count(), 0);
}

#[test]
fn a_late_answer_stretches_the_peers_timeout_to_its_round_trip() {
    let state = generate(&SyntheticConfig::new(200, 9));
    let mut net = TestNet::new(&state.store, state.root, EngineConfig::default());
    net.join(0);
    net.run_store_ops();
    let first = net.take_requests();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].hashes, vec![state.root]);
    // Nothing heard from the peer yet: the start-up bound.
    assert_eq!(net.engine.peers.timeout_ms(0), 3_000);
    assert_eq!(net.engine.poll_timeout(), Some(500)); // the first progress report
    net.now = 3_000;
    net.engine.handle_timeout(3_000);
    net.run_store_ops();
    let again = net.take_requests();
    assert_eq!(again.len(), 1, "the root is asked again once it timed out");
    assert_eq!(again[0].hashes, vec![state.root]);
    // The first answer arrives 5 s after it was asked: used, and its round trip measured.
    net.now = 5_000;
    let late = net.honest_answer(&first[0]);
    net.deliver(0, &late);
    assert_eq!(net.engine.peers.recent_rtt_ms(0), Some(5_000.0));
    assert_eq!(net.engine.peers.timeout_ms(0), 20_000);
    net.run_store_ops();
    let next = net.take_requests();
    assert!(
        !next.is_empty() && next.iter().all(|r| !r.hashes.contains(&state.root)),
        "the root's children are asked for: {next:?}"
    );
    // A second answer to the same request is not a late answer any more.
    net.deliver(0, &late);
    assert_eq!(net.engine.peers.recent_rtt_ms(0), Some(5_000.0));
    net.drive();
    assert!(net.engine.is_done());
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, Event::PeerDisconnected { .. })),
        "{:?}",
        net.events
    );
}

#[test]
fn a_silent_peer_is_dropped_after_three_start_up_timeouts_one_after_the_other() {
    let state = generate(&SyntheticConfig::new(10, 1));
    let mut net = TestNet::new(&state.store, state.root, EngineConfig::default());
    net.join_as(0, PeerKind::Silent);
    net.drive_until(8_999, &mut |_| false);
    assert!(net.engine.peers.contains(0));
    net.drive_until(9_000, &mut |_| false);
    assert!(!net.engine.peers.contains(0));
    assert!(net.events.iter().any(|e| matches!(
        e,
        Event::PeerDisconnected {
            peer: 0,
            reason: DisconnectReason::Stalling
        }
    )));
}
