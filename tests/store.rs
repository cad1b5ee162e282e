//! One conformance suite for every storage backend, written once as `store_test_suite!` (after
//! Quickwit's `metastore_test_suite!`) and instantiated per backend: SQLite in memory, SQLite on
//! disk, and PostgreSQL when `DIPDRG_TEST_DATABASE_URL` is set (CI starts a server). Each test
//! gets a fresh store (a new file, or a new PostgreSQL schema).

use dipdrg::store::sqlite::SqliteStore;
use dipdrg::store::{Claim, NewCase, PutOutcome, RequestKey, StatementRow, Store, StoreError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

fn new_case(hospital: &str, case_id: &str, row: &str) -> NewCase {
    NewCase { hospital_id: hospital.into(), case_id: case_id.into(), row: row.into() }
}

/// A name no other test of this process uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn sqlite_on_disk() -> Option<Arc<dyn Store>> {
    let path = std::env::temp_dir().join(format!("dipdrg-{}.sqlite", unique("store")));
    Some(Arc::new(SqliteStore::open(&path).unwrap()))
}

#[cfg(feature = "postgres")]
fn postgres() -> Option<Arc<dyn Store>> {
    let Ok(url) = std::env::var("DIPDRG_TEST_DATABASE_URL") else {
        eprintln!("skipped: DIPDRG_TEST_DATABASE_URL is not set (.ci/run starts a server and sets it)");
        return None;
    };
    Some(Arc::new(dipdrg::store::postgres::PostgresStore::connect(&url, &unique("conformance")).expect("connect")))
}

/// The suite: `$open` makes a fresh store, or `None` to skip (no server configured).
macro_rules! store_test_suite {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;

            fn open() -> Option<Arc<dyn Store>> {
                $open
            }

            #[test]
            fn cases_are_keyed_by_hospital_and_id_and_listed_in_order() {
                let Some(store) = open() else { return };
                cases(store.as_ref());
            }

            #[test]
            fn a_scan_of_every_case_reads_one_snapshot() {
                let Some(store) = open() else { return };
                snapshot(store);
            }

            #[test]
            fn settings_are_replaced() {
                let Some(store) = open() else { return };
                assert_eq!(store.get_setting("active_policy").unwrap(), None);
                store.put_setting("active_policy", "policies/a").unwrap();
                store.put_setting("active_policy", "policies/b").unwrap();
                assert_eq!(store.get_setting("active_policy").unwrap().as_deref(), Some("policies/b"));
            }

            #[test]
            fn request_keys_are_claimed_once_and_scoped() {
                let Some(store) = open() else { return };
                request_keys(store.as_ref());
            }

            #[test]
            fn concurrent_claims_of_one_key_let_exactly_one_in() {
                let Some(store) = open() else { return };
                concurrent_claims(store);
            }

            #[test]
            fn runs_and_statements_with_a_dotted_hospital_id() {
                let Some(store) = open() else { return };
                runs(store.as_ref());
            }

            #[test]
            fn annotations_are_one_per_kind_and_case() {
                let Some(store) = open() else { return };
                annotations(store.as_ref());
            }

            #[test]
            fn text_with_nul_is_refused_alike_and_nothing_of_the_batch_is_stored() {
                let Some(store) = open() else { return };
                nul_text(store.as_ref());
            }
        }
    };
}

store_test_suite!(sqlite_in_memory, Some(Arc::new(SqliteStore::in_memory().unwrap())));
store_test_suite!(sqlite_file, sqlite_on_disk());
#[cfg(feature = "postgres")]
store_test_suite!(postgresql, postgres());

fn cases(store: &dyn Store) {
    let first = vec![new_case("H001", "C2", "row-c2"), new_case("H001", "C1", "row-c1"), new_case("H002", "C1", "row-h2-c1")];
    assert_eq!(store.put_cases(&first, "2026-01-01T00:00:00Z").unwrap(), vec![PutOutcome::Accepted; 3]);
    let again = vec![new_case("H001", "C1", "row-c1"), new_case("H001", "C2", "row-c2-new"), new_case("H003", "Z9", "row-z9")];
    assert_eq!(
        store.put_cases(&again, "2026-01-02T00:00:00Z").unwrap(),
        vec![PutOutcome::Unchanged, PutOutcome::Replaced, PutOutcome::Accepted],
        "same content changes nothing; other content replaces; a case is never stored twice"
    );
    let c2 = store.get_case("H001", "C2").unwrap().expect("stored");
    assert_eq!((c2.row.as_str(), c2.updated_at.as_str()), ("row-c2-new", "2026-01-02T00:00:00Z"));
    assert_eq!(store.get_case("H001", "C1").unwrap().expect("stored").updated_at, "2026-01-01T00:00:00Z", "unchanged keeps its time");
    assert!(store.get_case("H009", "C1").unwrap().is_none());

    // Listing: one hospital, or all, in (hospital, case id) byte order, paged by the last key.
    store.put_cases(&[new_case("H.1", "a", "dotted"), new_case("H001", "c1", "lower")], "2026-01-02T00:00:00Z").unwrap();
    let h001: Vec<String> = store.list_cases(Some("H001"), None, 10).unwrap().into_iter().map(|r| r.case_id).collect();
    assert_eq!(h001, ["C1", "C2", "c1"], "byte order: upper case before lower");
    let mut keys = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store.list_cases(None, after.as_ref().map(|(h, c)| (h.as_str(), c.as_str())), 2).unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| (r.hospital_id.clone(), r.case_id.clone()));
        keys.extend(page.into_iter().map(|r| format!("{}/{}", r.hospital_id, r.case_id)));
    }
    assert_eq!(keys, ["H.1/a", "H001/C1", "H001/C2", "H001/c1", "H002/C1", "H003/Z9"]);
    assert_eq!(store.list_cases(Some("H.1"), None, 10).unwrap().len(), 1, "a dotted hospital id is one hospital");

    // Text survives exactly (quotes, commas, Chinese, newlines inside a CSV field).
    let awkward = "C9,\"胆囊结石, 伴\n胆囊炎\",12.50";
    store.put_cases(&[new_case("H001", "C9", awkward)], "2026-01-03T00:00:00Z").unwrap();
    assert_eq!(store.get_case("H001", "C9").unwrap().expect("stored").row, awkward);
}

/// A scan (what a run reads) does not see an upload that commits while it runs, even past its
/// first page of 10,000.
fn snapshot(store: Arc<dyn Store>) {
    let now = "2026-01-01T00:00:00Z";
    let cases: Vec<NewCase> = (0..10_001).map(|i| new_case("H001", &format!("C{i:05}"), "old")).collect();
    store.put_cases(&cases, now).unwrap();
    let mut seen = Vec::new();
    let mut changed = false;
    store
        .for_each_case(&mut |row| {
            if !changed {
                changed = true;
                let writer = store.clone();
                let upload = vec![new_case("H001", "C10000", "new"), new_case("H001", "C10001", "added"), new_case("H000", "A", "first")];
                std::thread::spawn(move || writer.put_cases(&upload, now).unwrap()).join().unwrap();
            }
            seen.push((row.case_id.clone(), row.row.clone()));
        })
        .unwrap();
    assert_eq!(seen.len(), 10_001, "the upload committed during the scan is not seen");
    assert_eq!(seen.last(), Some(&("C10000".to_string(), "old".to_string())), "a replaced case is seen as it was");
    let mut after = 0;
    store.for_each_case(&mut |_| after += 1).unwrap();
    assert_eq!(after, 10_003, "the next scan sees it");
}

fn key(caller: &str, method: &str, request_id: &str) -> RequestKey {
    RequestKey { caller: caller.into(), method: method.into(), request_id: request_id.into() }
}

fn request_keys(store: &dyn Store) {
    let now = "2026-01-01T00:00:00Z";
    let h1 = key("hospitals/H001", "IngestCases", "upload-1");
    assert_eq!(store.claim_request(&h1, now).unwrap(), Claim::Claimed);
    assert_eq!(store.claim_request(&h1, now).unwrap(), Claim::InProgress, "claimed, not finished");
    // Another hospital, the fund office, another method: independent keys.
    for other in [
        key("hospitals/H002", "IngestCases", "upload-1"),
        key("fund-office", "IngestCases", "upload-1"),
        key("hospitals/H001", "CreateViolation", "upload-1"),
    ] {
        assert_eq!(store.claim_request(&other, now).unwrap(), Claim::Claimed, "{other:?}");
    }
    store.complete_request(&h1, b"first").unwrap();
    store.complete_request(&h1, b"second").unwrap();
    assert_eq!(store.claim_request(&h1, now).unwrap(), Claim::Done(b"first".to_vec()), "the first answer is kept");
    store.release_request(&h1).unwrap();
    assert_eq!(store.claim_request(&h1, now).unwrap(), Claim::Done(b"first".to_vec()), "a completed key is never released");

    // A failed call releases its claim: a retry claims afresh.
    let failed = key("hospitals/H003", "IngestCases", "x");
    assert_eq!(store.claim_request(&failed, now).unwrap(), Claim::Claimed);
    store.release_request(&failed).unwrap();
    assert_eq!(store.claim_request(&failed, now).unwrap(), Claim::Claimed);

    // At start: unfinished claims are freed; completed ones stay.
    assert_eq!(store.release_unfinished_requests().unwrap(), 4, "H002, fund office, CreateViolation, H003");
    assert_eq!(store.claim_request(&failed, now).unwrap(), Claim::Claimed);
    assert_eq!(store.claim_request(&h1, now).unwrap(), Claim::Done(b"first".to_vec()));

    // Forgetting a run's answer frees the key of the request that created it.
    let run = key("fund-office", "CreateSettlementRun", "march");
    assert_eq!(store.claim_request(&run, now).unwrap(), Claim::Claimed);
    store.complete_request(&run, b"run-7").unwrap();
    assert_eq!(store.forget_answer("CreateSettlementRun", b"run-8").unwrap(), 0);
    assert_eq!(store.forget_answer("IngestCases", b"run-7").unwrap(), 0, "only the method named");
    assert_eq!(store.forget_answer("CreateSettlementRun", b"run-7").unwrap(), 1);
    assert_eq!(store.claim_request(&run, now).unwrap(), Claim::Claimed);

    // Keys are exact: no prefix or case folding.
    assert_eq!(store.claim_request(&key("hospitals/H001", "IngestCases", "UPLOAD-1"), now).unwrap(), Claim::Claimed);
    assert_eq!(store.claim_request(&key("hospitals/H001", "IngestCases", "upload-1 "), now).unwrap(), Claim::Claimed);
}

fn concurrent_claims(store: Arc<dyn Store>) {
    let winners: usize = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let claim = store.claim_request(&key("hospitals/H001", "IngestCases", "race"), "2026-01-01T00:00:00Z").unwrap();
                assert_ne!(claim, Claim::Done(Vec::new()));
                usize::from(claim == Claim::Claimed)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .sum();
    assert_eq!(winners, 1, "exactly one of eight concurrent claims wins");
}

fn runs(store: &dyn Store) {
    store.put_run("run-2", b"v1").unwrap();
    store.put_run("run-1", b"a").unwrap();
    store.put_run("run-2", b"v2").unwrap();
    assert_eq!(store.get_run("run-2").unwrap().as_deref(), Some(&b"v2"[..]), "a run is updated in place as it progresses");
    assert_eq!(store.get_run("run-3").unwrap(), None);
    let ids: Vec<String> = store.list_runs(None, 10).unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["run-1", "run-2"]);
    assert_eq!(store.list_runs(Some("run-1"), 10).unwrap().len(), 1);
    let row = |hospital: &str, fund: &str, bytes: &[u8]| StatementRow {
        hospital_id: hospital.into(),
        key: format!("{hospital}.{fund}"),
        statement: bytes.to_vec(),
    };
    // `H.1` must not be taken for hospital `H`, nor `H` for a prefix of `H.1`.
    let statements =
        vec![row("H002", "employee", b"s3"), row("H.1", "resident", b"s2"), row("H", "employee", b"s1"), row("H.1", "employee", b"s4")];
    store.put_statements("run-1", &statements).unwrap();
    let keys: Vec<String> = store.list_statements("run-1", None, None, 10).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["H.1.employee", "H.1.resident", "H.employee", "H002.employee"]);
    let dotted: Vec<Vec<u8>> = store.list_statements("run-1", Some("H.1"), None, 10).unwrap().into_iter().map(|(_, s)| s).collect();
    assert_eq!(dotted, [b"s4".to_vec(), b"s2".to_vec()]);
    assert_eq!(store.list_statements("run-1", Some("H"), None, 10).unwrap().len(), 1);
    assert_eq!(store.list_statements("run-1", Some("H002"), None, 10).unwrap().len(), 1);
    assert_eq!(store.list_statements("run-1", None, Some("H.1.resident"), 10).unwrap().len(), 2);
    assert!(store.list_statements("run-2", None, None, 10).unwrap().is_empty());
}

fn annotations(store: &dyn Store) {
    store.put_annotation("violation", "H002", "C1", b"v1").unwrap();
    store.put_annotation("violation", "H001", "C9", b"v2").unwrap();
    store.put_annotation("violation", "H001", "C9", b"v3").unwrap();
    store.put_annotation("decision", "H001", "C9", b"d1").unwrap();
    let all = store.list_annotations("violation", None, None, 10).unwrap();
    assert_eq!(all, vec![("H001".into(), "C9".into(), b"v3".to_vec()), ("H002".into(), "C1".into(), b"v1".to_vec())]);
    assert_eq!(store.list_annotations("violation", Some("H002"), None, 10).unwrap().len(), 1);
    assert_eq!(store.list_annotations("violation", None, Some(("H001", "C9")), 10).unwrap().len(), 1);
    assert_eq!(store.list_annotations("decision", None, None, 10).unwrap().len(), 1);
}

fn nul_text(store: &dyn Store) {
    let invalid = |result: Result<(), StoreError>| matches!(result, Err(StoreError::InvalidText(_)));
    let batch = vec![new_case("H001", "OK1", "fine"), new_case("H001", "BAD", "dept\0x")];
    assert!(invalid(store.put_cases(&batch, "2026-01-01T00:00:00Z").map(drop)), "a NUL in a row");
    assert!(store.get_case("H001", "OK1").unwrap().is_none(), "nothing of the refused batch is stored");
    assert!(invalid(store.put_cases(&[new_case("H\0", "C", "r")], "2026-01-01T00:00:00Z").map(drop)));
    assert!(invalid(store.put_cases(&[new_case("H", "C\0", "r")], "2026-01-01T00:00:00Z").map(drop)));
    assert!(invalid(store.get_case("H001", "C\0").map(drop)), "lookups refuse it alike");
    assert!(invalid(store.list_cases(Some("H\0"), None, 10).map(drop)));
    assert!(invalid(store.list_cases(None, Some(("H", "\0")), 10).map(drop)));
    assert!(invalid(store.claim_request(&key("hospitals/H001", "IngestCases", "a\0b"), "now").map(drop)));
    assert!(invalid(store.put_annotation("violation", "H001", "C\0", b"v")));
    assert!(invalid(store.put_setting("k", "v\0")));
    assert!(invalid(store.put_run("r\0", b"x")));
    // Bytes (encoded messages) may hold any byte.
    store.put_run("r", b"\0\x01").unwrap();
    assert_eq!(store.get_run("r").unwrap().as_deref(), Some(&b"\0\x01"[..]));
    store.put_cases(&[new_case("H001", "OK1", "fine")], "2026-01-01T00:00:00Z").unwrap();
    assert!(store.get_case("H001", "OK1").unwrap().is_some(), "the store works on after a refusal");
}

#[test]
fn sqlite_on_disk_keeps_its_data_across_a_reopen() {
    let path = std::env::temp_dir().join(format!("dipdrg-{}.sqlite", unique("reopen")));
    let store = SqliteStore::open(&path).unwrap();
    store.put_cases(&[new_case("H001", "C1", "r1"), new_case("H.1", "C1", "r2")], "2026-01-01T00:00:00Z").unwrap();
    store.claim_request(&key("hospitals/H001", "IngestCases", "u"), "now").unwrap();
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.list_cases(None, None, 100).unwrap().len(), 2, "data survives a reopen");
    assert_eq!(reopened.release_unfinished_requests().unwrap(), 1, "and so does an unfinished claim, until released");
    drop(reopened);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The pool replaces connections the server dropped (as after a database restart): the next
/// call succeeds.
#[cfg(feature = "postgres")]
#[test]
fn postgres_reconnects_after_its_connections_are_dropped() {
    let Ok(url) = std::env::var("DIPDRG_TEST_DATABASE_URL") else {
        eprintln!("skipped: DIPDRG_TEST_DATABASE_URL is not set");
        return;
    };
    let schema = unique("reconnect");
    // Only this store's connections are dropped (other tests share the server): they carry the
    // schema's name as their application name.
    let tagged = match url.contains("://") {
        true => format!("{url}{}application_name={schema}", if url.contains('?') { '&' } else { '?' }),
        false => format!("{url} application_name={schema}"),
    };
    let store = dipdrg::store::postgres::PostgresStore::connect(&tagged, &schema).expect("connect");
    store.put_cases(&[new_case("H001", "C1", "r1")], "2026-01-01T00:00:00Z").unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", &[&schema]).unwrap();
    assert!(killed >= 1, "the store's connections were dropped");
    assert_eq!(store.get_case("H001", "C1").unwrap().expect("stored").row, "r1", "the next call reconnects");
    let reconnected = dipdrg::store::postgres::PostgresStore::connect(&url, &schema).expect("reconnect");
    assert_eq!(reconnected.list_cases(None, None, 100).unwrap().len(), 1, "data survives a reconnect");
}
