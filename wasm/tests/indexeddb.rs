//! The IndexedDB store in a real browser (`wasm-pack test --headless --chrome wasm`): atomic
//! batches, reopening and resuming, batched lookups, and the quota failure path through
//! `StateSync`.
#![cfg(target_arch = "wasm32")]

mod common;

use std::rc::Rc;

use common::*;
use js_sys::{Function, Uint8Array};
use statesync_wasm::source::StateSource;
use statesync_wasm::statesync_core::{keccak256, CommitBatch, ProgressRecord, StoreKey, H256};
use statesync_wasm::store::IdbStore;
use statesync_wasm::sync::StateSync;
use statesync_wasm::verify::{read_progress, verify_store};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test as test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A database name no other test (or earlier run in the same profile) uses.
fn fresh_database(tag: &str) -> String {
    format!(
        "statesync-test-{tag}-{}",
        (js_sys::Math::random() * 1e12) as u64
    )
}

fn node(i: u32) -> StoreKey {
    StoreKey::node(keccak256(&i.to_be_bytes()))
}

fn code(i: u32) -> StoreKey {
    StoreKey::code(keccak256(&i.to_be_bytes()))
}

fn value(i: u32) -> JsValue {
    Uint8Array::from(format!("value {i}").as_bytes()).into()
}

fn record(root: H256, items: u64, complete: bool) -> ProgressRecord {
    ProgressRecord {
        root,
        committed_items: items,
        committed_bytes: items * 8,
        complete,
        ..ProgressRecord::default()
    }
}

/// A batch that also stages two nodes, so a refused batch must leave staging alone too.
fn staging_batch() -> CommitBatch {
    CommitBatch {
        staged: vec![
            (keccak256(b"staged 1"), b"staged 1".to_vec()),
            (keccak256(b"staged 2"), b"staged 2".to_vec()),
        ],
        ..CommitBatch::default()
    }
}

async fn stored_record(store: &IdbStore) -> Option<ProgressRecord> {
    store
        .load_progress()
        .await
        .expect("progress readable")
        .map(|bytes| ProgressRecord::decode(&bytes).expect("a valid record"))
}

#[test]
async fn a_batch_with_a_value_indexeddb_refuses_leaves_nothing_behind() {
    let name = fresh_database("abort");
    let store = IdbStore::open(&name).await.expect("opens");
    let root = keccak256(b"root");
    let before = record(root, 2, false);
    store
        .commit_entries(
            [(node(100), value(100)), (code(101), value(101))].into_iter(),
            &CommitBatch::default(),
            &before,
        )
        .await
        .expect("a valid batch commits");

    // Valid puts first, then a function, which the structured clone refuses.
    let unclonable: JsValue = Function::new_no_args("return 1").into();
    let batch = vec![
        (node(1), value(1)),
        (node(2), value(2)),
        (code(3), value(3)),
        (node(4), unclonable),
    ];
    let keys: Vec<StoreKey> = batch.iter().map(|(k, _)| *k).collect();
    let err = store
        .commit_entries(batch.into_iter(), &staging_batch(), &record(root, 6, true))
        .await
        .expect_err("the batch is refused");
    assert!(!err.message.is_empty());

    assert_eq!(
        store.lookup(&keys).await.expect("lookup"),
        vec![false; 4],
        "none of the batch's keys landed"
    );
    assert_eq!(
        stored_record(&store).await,
        Some(before),
        "the progress record is the one before the failed batch"
    );
    assert_eq!(
        store.lookup(&[node(100), code(101)]).await.expect("lookup"),
        vec![true, true]
    );
    assert_eq!(
        store.load_staged().await.expect("staging readable"),
        vec![],
        "nothing of the refused batch is staged"
    );
}

#[test]
async fn staged_nodes_are_read_back_apart_from_lookups_and_leave_when_stored() {
    let name = fresh_database("staging");
    let root = keccak256(b"staging");
    let store = IdbStore::open(&name).await.expect("opens");
    let (a, b) = (keccak256(b"staged 1"), keccak256(b"staged 2"));
    store
        .commit(
            &staging_batch(),
            &ProgressRecord {
                root,
                staged_items: 2,
                staged_bytes: 16,
                ..ProgressRecord::default()
            },
        )
        .await
        .expect("commits");
    drop(store);
    let store = IdbStore::open(&name).await.expect("reopens");
    let mut staged = store.load_staged().await.expect("reads staging");
    staged.sort();
    let mut expected = staging_batch().staged;
    expected.sort();
    assert_eq!(staged, expected);
    // Lookups see the main keyspace only.
    assert_eq!(
        store.lookup(&[StoreKey::node(a)]).await.expect("lookup"),
        vec![false]
    );
    // One node completes: stored, and gone from staging, in one batch.
    let moved = CommitBatch {
        nodes: vec![(a, b"staged 1".to_vec())],
        unstaged: vec![a],
        ..CommitBatch::default()
    };
    store
        .commit(&moved, &record(root, 1, false))
        .await
        .expect("commits");
    assert_eq!(
        store.lookup(&[StoreKey::node(a)]).await.expect("lookup"),
        vec![true]
    );
    assert_eq!(
        store.load_staged().await.expect("reads staging"),
        vec![(b, b"staged 2".to_vec())]
    );
}

#[test]
async fn a_version_1_database_is_upgraded_with_its_data_kept() {
    let name = fresh_database("upgrade");
    let v1 = common::open_version_1_database(&name).await;
    common::put_raw(&v1, "nodes", node(5).hash.as_bytes(), b"v1 node").await;
    v1.close();
    let store = IdbStore::open(&name).await.expect("upgrades");
    assert_eq!(store.lookup(&[node(5)]).await.expect("lookup"), vec![true]);
    assert_eq!(store.load_staged().await.expect("staging exists"), vec![]);
}

#[test]
async fn a_failed_first_batch_leaves_no_progress_record() {
    let store = IdbStore::open(&fresh_database("abort-first"))
        .await
        .expect("opens");
    let unclonable: JsValue = Function::new_no_args("return 1").into();
    store
        .commit_entries(
            [(node(1), value(1)), (node(2), unclonable)].into_iter(),
            &CommitBatch::default(),
            &record(keccak256(b"r"), 2, false),
        )
        .await
        .expect_err("refused");
    assert_eq!(stored_record(&store).await, None);
    assert_eq!(store.lookup(&[node(1)]).await.expect("lookup"), vec![false]);
}

#[test]
async fn a_reopened_database_has_the_record_and_the_keys() {
    let name = fresh_database("reopen");
    let root = keccak256(b"reopen");
    let written = record(root, 40, false);
    {
        let store = IdbStore::open(&name).await.expect("opens");
        store
            .commit_entries(
                (0..20).map(|i| (node(i), value(i))),
                &CommitBatch::default(),
                &written,
            )
            .await
            .expect("commits");
        store
            .commit_entries(
                (0..20).map(|i| (code(i), value(i))),
                &CommitBatch::default(),
                &written,
            )
            .await
            .expect("commits");
        // Dropped here: the connection closes.
    }
    let store = IdbStore::open(&name).await.expect("reopens");
    assert_eq!(stored_record(&store).await, Some(written));
    let keys: Vec<StoreKey> = (0..20).flat_map(|i| [node(i), code(i)]).collect();
    assert!(store
        .lookup(&keys)
        .await
        .expect("lookup")
        .iter()
        .all(|b| *b));
    let values = store.get(&[node(7), code(8), node(99)]).await.expect("get");
    assert_eq!(values[0].as_deref(), Some(&b"value 7"[..]));
    assert_eq!(values[1].as_deref(), Some(&b"value 8"[..]));
    assert_eq!(values[2], None);
}

#[test]
async fn a_sync_interrupted_and_restarted_on_indexeddb_resumes_and_fetches_only_the_rest() {
    let database = fresh_database("resume");
    let source = Rc::new(StateSource::synthetic(400, 21));
    let total = f64::from(source.node_count() + source.code_count());
    let options = || {
        object(&[
            ("root", source.root().into()),
            ("database", database.clone().into()),
            ("batchBytes", (8 * 1024).into()),
            ("maxItemsPerRequest", 32.into()),
            ("maxInFlight", 1.into()),
            ("progressIntervalMs", 20.into()),
        ])
    };

    // First session: cancelled once some batches are committed.
    {
        let sync = Rc::new(StateSync::new(options()).expect("valid"));
        let started = sync.start();
        connect_slow(&sync, 1, &source, 2);
        wait_until("a few commits", || {
            let p = sync.progress();
            p.is_object() && number(&p, "committed") > 0.0
        })
        .await;
        sync.cancel();
        let cancelled = wasm_bindgen_futures::JsFuture::from(started)
            .await
            .expect("resolves");
        assert_eq!(string(&cancelled, "phase"), "cancelled");
        assert!(number(&cancelled, "committed") < total);
    }
    let partial = read_progress(object(&[("database", database.clone().into())]))
        .await
        .expect("readable");
    assert_eq!(field(&partial, "complete"), JsValue::FALSE);
    assert!(number(&partial, "committedItems") > 0.0);
    // The cancel flushed everything verified: incomplete subtries went to staging.
    let staged = number(&partial, "stagedItems");
    assert!(staged > 0.0, "nothing was staged");
    let stored = number(&partial, "committedItems") + staged;
    // Second session: resumes from what is stored, taking the staged items back.
    {
        let sync = Rc::new(StateSync::new(options()).expect("valid"));
        connect(&sync, 1, &source);
        let done = run(&sync).await.expect("finishes");
        assert_eq!(number(&done, "committed"), total, "all sessions together");
        assert_eq!(
            number(&done, "restored"),
            staged,
            "every staged item taken back"
        );
        assert_eq!(
            number(&done, "processed"),
            total - stored,
            "exactly what was not stored is fetched"
        );
        assert!(number(&done, "skipped") > 0.0);
        assert_eq!(number(&done, "staged"), 0.0, "staging is empty at the end");
    }
    let verified = verify_store(object(&[
        ("root", source.root().into()),
        ("database", database.clone().into()),
    ]))
    .await
    .expect("complete");
    assert_eq!(number(&verified, "accounts"), f64::from(source.accounts()));

    // Third session: the root is complete, nothing is asked of anyone.
    let sync = Rc::new(StateSync::new(options()).expect("valid"));
    let peer = connect(&sync, 1, &source);
    let done = run(&sync).await.expect("finishes");
    assert_eq!(number(&done, "processed"), 0.0);
    assert_eq!(peer.requests.get(), 0);
    assert_eq!(string(&done, "phase"), "done");
}

#[test]
async fn one_lookup_answers_many_keys_of_both_kinds_in_order() {
    let store = IdbStore::open(&fresh_database("lookup"))
        .await
        .expect("opens");
    // Even numbers stored as nodes, multiples of three as code.
    let entries = (0..1500u32)
        .filter(|i| i % 2 == 0)
        .map(|i| (node(i), value(i)))
        .chain(
            (0..1500u32)
                .filter(|i| i % 3 == 0)
                .map(|i| (code(i), value(i))),
        );
    store
        .commit_entries(
            entries,
            &CommitBatch::default(),
            &record(keccak256(b"l"), 1250, false),
        )
        .await
        .expect("commits");
    let keys: Vec<StoreKey> = (0..1500u32).flat_map(|i| [node(i), code(i)]).collect();
    let found = store.lookup(&keys).await.expect("one lookup");
    let expected: Vec<bool> = (0..1500u32)
        .flat_map(|i| [i % 2 == 0, i % 3 == 0])
        .collect();
    assert_eq!(found.len(), 3000);
    assert_eq!(found, expected);
    assert_eq!(
        store.lookup(&[]).await.expect("empty lookup"),
        Vec::<bool>::new()
    );
}

#[test]
async fn a_quota_error_pauses_the_sync_with_nothing_written_and_resume_finishes_it() {
    let source = Rc::new(StateSource::synthetic(200, 4));
    let store = map_store();
    let quota = Function::new_no_args(
        "return () => new DOMException('The quota has been exceeded.', 'QuotaExceededError');",
    )
    .call0(&JsValue::NULL)
    .expect("a factory");
    js_sys::Reflect::set(&store, &"failWith".into(), &quota).expect("set");

    let events = Events::default();
    let sync = Rc::new(
        StateSync::new(object(&[
            ("root", source.root().into()),
            ("store", store.clone()),
            ("onEvent", events.callback()),
        ]))
        .expect("valid"),
    );
    let started = sync.start();
    connect(&sync, 1, &source);
    wait_until("the paused event", || !events.of_type("paused").is_empty()).await;
    let paused = &events.of_type("paused")[0];
    assert_eq!(string(paused, "reason"), "QuotaExceeded");
    assert!(string(paused, "message").contains("QuotaExceededError"));
    assert_eq!(map_store_len(&store), 0.0, "nothing was written");
    assert_eq!(number(&field(&store, "progress"), "size"), 0.0);
    assert_eq!(string(&sync.progress(), "phase"), "paused");

    // Storage freed: the retried write lands and the sync finishes.
    js_sys::Reflect::set(&store, &"failWith".into(), &JsValue::NULL).expect("set");
    sync.resume();
    let done = wasm_bindgen_futures::JsFuture::from(started)
        .await
        .expect("finishes after resume");
    assert_eq!(string(&done, "phase"), "done");
    let verified = verify_store(object(&[("root", source.root().into()), ("store", store)]))
        .await
        .expect("complete");
    assert_eq!(number(&verified, "accounts"), 200.0);
}
