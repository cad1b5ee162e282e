//! One conformance suite for every storage backend: SQLite in memory, SQLite on disk (and
//! reopened), and PostgreSQL when `DIPDRG_TEST_DATABASE_URL` is set (CI starts a server).

use dipdrg::store::sqlite::SqliteStore;
use dipdrg::store::{NewCase, PutOutcome, Store};

fn new_case(hospital: &str, case_id: &str, row: &str) -> NewCase {
    NewCase { hospital_id: hospital.into(), case_id: case_id.into(), row: row.into() }
}

/// The behaviour every backend must have.
fn conformance(store: &dyn Store) {
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

    // Listing: one hospital, or all, in (hospital, case id) order, paged by the last key.
    let h001: Vec<String> = store.list_cases(Some("H001"), None, 10).unwrap().into_iter().map(|r| r.case_id).collect();
    assert_eq!(h001, ["C1", "C2"]);
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
    assert_eq!(keys, ["H001/C1", "H001/C2", "H002/C1", "H003/Z9"]);

    // Settings: absent, set, replaced.
    assert_eq!(store.get_setting("active_policy").unwrap(), None);
    store.put_setting("active_policy", "policies/a").unwrap();
    store.put_setting("active_policy", "policies/b").unwrap();
    assert_eq!(store.get_setting("active_policy").unwrap().as_deref(), Some("policies/b"));

    // Idempotent requests: the first answer is kept.
    assert!(store.find_request("upload-1").unwrap().is_none());
    store.save_request("upload-1", b"first").unwrap();
    store.save_request("upload-1", b"second").unwrap();
    assert_eq!(store.find_request("upload-1").unwrap().as_deref(), Some(&b"first"[..]));

    // Text survives exactly (quotes, commas, Chinese, newlines inside a CSV field).
    let awkward = "C9,\"胆囊结石, 伴\n胆囊炎\",12.50";
    store.put_cases(&[new_case("H001", "C9", awkward)], "2026-01-03T00:00:00Z").unwrap();
    assert_eq!(store.get_case("H001", "C9").unwrap().expect("stored").row, awkward);
}

#[test]
fn sqlite_in_memory_conforms() {
    conformance(&SqliteStore::in_memory().unwrap());
}

#[test]
fn sqlite_on_disk_conforms_and_keeps_its_data() {
    let path = std::env::temp_dir().join(format!("dipdrg-store-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    conformance(&SqliteStore::open(&path).unwrap());
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.list_cases(None, None, 100).unwrap().len(), 5, "data survives a reopen");
    drop(reopened);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_conforms() {
    let Ok(url) = std::env::var("DIPDRG_TEST_DATABASE_URL") else {
        eprintln!("skipped: DIPDRG_TEST_DATABASE_URL is not set (.ci/run starts a server and sets it)");
        return;
    };
    let schema = format!("conformance_{}", std::process::id());
    let store = dipdrg::store::postgres::PostgresStore::connect(&url, &schema).expect("connect");
    conformance(&store);
    let reconnected = dipdrg::store::postgres::PostgresStore::connect(&url, &schema).expect("reconnect");
    assert_eq!(reconnected.list_cases(None, None, 100).unwrap().len(), 5, "data survives a reconnect");
}

/// Runs and statements: opaque bytes, ordered keys, hospital filter.
fn runs_conformance(store: &dyn Store) {
    store.put_run("run-2", b"v1").unwrap();
    store.put_run("run-1", b"a").unwrap();
    store.put_run("run-2", b"v2").unwrap();
    assert_eq!(store.get_run("run-2").unwrap().as_deref(), Some(&b"v2"[..]), "a run is updated in place as it progresses");
    let ids: Vec<String> = store.list_runs(None, 10).unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["run-1", "run-2"]);
    assert_eq!(store.list_runs(Some("run-1"), 10).unwrap().len(), 1);
    let statements = vec![
        ("H002.employee".to_string(), b"s3".to_vec()),
        ("H001.resident".into(), b"s2".to_vec()),
        ("H001.employee".into(), b"s1".to_vec()),
    ];
    store.put_statements("run-1", &statements).unwrap();
    let keys: Vec<String> = store.list_statements("run-1", None, None, 10).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["H001.employee", "H001.resident", "H002.employee"]);
    assert_eq!(store.list_statements("run-1", Some("H002"), None, 10).unwrap().len(), 1);
    assert_eq!(store.list_statements("run-1", None, Some("H001.resident"), 10).unwrap().len(), 1);
    assert!(store.list_statements("run-2", None, None, 10).unwrap().is_empty());
}

#[test]
fn sqlite_runs_conform() {
    runs_conformance(&SqliteStore::in_memory().unwrap());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_runs_conform() {
    let Ok(url) = std::env::var("DIPDRG_TEST_DATABASE_URL") else {
        eprintln!("skipped: DIPDRG_TEST_DATABASE_URL is not set");
        return;
    };
    let store = dipdrg::store::postgres::PostgresStore::connect(&url, &format!("runs_{}", std::process::id())).expect("connect");
    runs_conformance(&store);
}

/// Annotations (violations, decisions): one per kind and case, replaced by a later one.
fn annotations_conformance(store: &dyn Store) {
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

#[test]
fn sqlite_annotations_conform() {
    annotations_conformance(&SqliteStore::in_memory().unwrap());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_annotations_conform() {
    let Ok(url) = std::env::var("DIPDRG_TEST_DATABASE_URL") else {
        eprintln!("skipped: DIPDRG_TEST_DATABASE_URL is not set");
        return;
    };
    let store = dipdrg::store::postgres::PostgresStore::connect(&url, &format!("notes_{}", std::process::id())).expect("connect");
    annotations_conformance(&store);
}
