//! The embedded SQLite backend: one file (`dipdrg.sqlite` under the data directory), WAL mode,
//! one connection behind a mutex (SQLite serialises writers anyway).

use super::{check_text, Claim, NewCase, PutOutcome, RequestKey, StatementRow, Store, StoreError, StoredCaseRow};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

pub struct SqliteStore {
    connection: Mutex<Connection>,
    /// The file (`None` in memory): snapshot reads open a reader of their own on it.
    path: Option<std::path::PathBuf>,
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cases (
    hospital_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    row TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (hospital_id, case_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    caller TEXT NOT NULL,
    method TEXT NOT NULL,
    request_id TEXT NOT NULL,
    response BLOB,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (caller, method, request_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS annotations (
    kind TEXT NOT NULL,
    hospital_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (kind, hospital_id, case_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS statements (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    hospital_id TEXT NOT NULL,
    statement BLOB NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
";

impl SqliteStore {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Backend(format!("creating {}: {e}", parent.display())))?;
        }
        let connection = Connection::open(path).map_err(backend)?;
        connection.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        connection.pragma_update(None, "synchronous", "NORMAL").map_err(backend)?;
        // Checkpoints every 8,192 pages (32 MiB of WAL) instead of 1,000: uploads append to a
        // few leaf pages that each commit rewrites, and a checkpoint copies each page once, so
        // rarer checkpoints copy less (7 % of an upload's server time went to them). Commits
        // are as durable as before (WAL, synchronous=NORMAL: a kill -9 loses nothing committed).
        connection.pragma_update(None, "wal_autocheckpoint", 8192).map_err(backend)?;
        // 32 MiB of page cache (the default is 2 MiB).
        connection.pragma_update(None, "cache_size", -32768).map_err(backend)?;
        connection.execute_batch(SCHEMA).map_err(backend)?;
        Ok(SqliteStore { connection: Mutex::new(connection), path: Some(path.to_path_buf()) })
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let connection = Connection::open_in_memory().map_err(backend)?;
        connection.execute_batch(SCHEMA).map_err(backend)?;
        Ok(SqliteStore { connection: Mutex::new(connection), path: None })
    }

    fn connection(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.connection.lock().map_err(|_| StoreError::Backend("the connection lock is poisoned".into()))
    }
}

fn row_to_case(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCaseRow> {
    Ok(StoredCaseRow { hospital_id: row.get(0)?, case_id: row.get(1)?, row: row.get(2)?, updated_at: row.get(3)? })
}

const ALL_CASES: &str = "SELECT hospital_id, case_id, row, updated_at FROM cases ORDER BY hospital_id, case_id";

impl Store for SqliteStore {
    fn as_dyn(&self) -> &dyn Store {
        self
    }

    /// One SELECT on a reader connection of its own: in WAL mode it reads one snapshot while
    /// uploads go on through the writer. In memory (tests), every row is read under the lock
    /// first.
    fn for_each_case(&self, visit: &mut dyn FnMut(&StoredCaseRow)) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            let rows: Vec<StoredCaseRow> = {
                let connection = self.connection()?;
                let mut statement = connection.prepare(ALL_CASES).map_err(backend)?;
                let rows = statement.query_map([], row_to_case).map_err(backend)?.collect::<Result<_, _>>().map_err(backend)?;
                rows
            };
            rows.iter().for_each(visit);
            return Ok(());
        };
        let reader = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(backend)?;
        reader.busy_timeout(std::time::Duration::from_secs(10)).map_err(backend)?;
        let mut statement = reader.prepare(ALL_CASES).map_err(backend)?;
        let mut rows = statement.query([]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            visit(&row_to_case(row).map_err(backend)?);
        }
        Ok(())
    }

    fn put_cases(&self, cases: &[NewCase], now: &str) -> Result<Vec<PutOutcome>, StoreError> {
        let mut connection = self.connection()?;
        let transaction = connection.transaction().map_err(backend)?;
        for case in cases {
            check_text("hospital_id", &case.hospital_id)?;
            check_text("case_id", &case.case_id)?;
            check_text("the case row", &case.row)?;
        }
        let mut outcomes = Vec::with_capacity(cases.len());
        {
            // New cases (the common case) take one statement; a conflict falls back to an update
            // that only touches changed rows.
            let mut insert = transaction
                .prepare_cached("INSERT OR IGNORE INTO cases (hospital_id, case_id, row, updated_at) VALUES (?1, ?2, ?3, ?4)")
                .map_err(backend)?;
            let mut update = transaction
                .prepare_cached("UPDATE cases SET row = ?3, updated_at = ?4 WHERE hospital_id = ?1 AND case_id = ?2 AND row <> ?3")
                .map_err(backend)?;
            for case in cases {
                let values = params![case.hospital_id, case.case_id, case.row, now];
                let outcome = if insert.execute(values).map_err(backend)? == 1 {
                    PutOutcome::Accepted
                } else if update.execute(values).map_err(backend)? == 1 {
                    PutOutcome::Replaced
                } else {
                    PutOutcome::Unchanged
                };
                outcomes.push(outcome);
            }
        }
        transaction.commit().map_err(backend)?;
        Ok(outcomes)
    }

    fn get_case(&self, hospital_id: &str, case_id: &str) -> Result<Option<StoredCaseRow>, StoreError> {
        check_text("hospital_id", hospital_id)?;
        check_text("case_id", case_id)?;
        let connection = self.connection()?;
        connection
            .query_row(
                "SELECT hospital_id, case_id, row, updated_at FROM cases WHERE hospital_id = ?1 AND case_id = ?2",
                params![hospital_id, case_id],
                row_to_case,
            )
            .optional()
            .map_err(backend)
    }

    fn list_cases(&self, hospital_id: Option<&str>, after: Option<(&str, &str)>, limit: usize) -> Result<Vec<StoredCaseRow>, StoreError> {
        let (after_hospital, after_case) = after.unwrap_or(("", ""));
        check_text("hospital_id", hospital_id.unwrap_or_default())?;
        check_text("the page key", after_hospital)?;
        check_text("the page key", after_case)?;
        let connection = self.connection()?;
        let mut statement = connection
            .prepare_cached(
                "SELECT hospital_id, case_id, row, updated_at FROM cases
                 WHERE (?1 IS NULL OR hospital_id = ?1) AND (hospital_id, case_id) > (?2, ?3)
                 ORDER BY hospital_id, case_id LIMIT ?4",
            )
            .map_err(backend)?;
        let rows = statement.query_map(params![hospital_id, after_hospital, after_case, limit as i64], row_to_case).map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn claim_request(&self, key: &RequestKey, now: &str) -> Result<Claim, StoreError> {
        key.check()?;
        let connection = self.connection()?;
        // One connection behind a mutex: the insert and the read cannot interleave with another
        // claim.
        let inserted = connection
            .execute(
                "INSERT INTO idempotency (caller, method, request_id, response, claimed_at) VALUES (?1, ?2, ?3, NULL, ?4)
                 ON CONFLICT (caller, method, request_id) DO NOTHING",
                params![key.caller, key.method, key.request_id, now],
            )
            .map_err(backend)?;
        if inserted == 1 {
            return Ok(Claim::Claimed);
        }
        let response: Option<Vec<u8>> = connection
            .query_row(
                "SELECT response FROM idempotency WHERE caller = ?1 AND method = ?2 AND request_id = ?3",
                params![key.caller, key.method, key.request_id],
                |r| r.get(0),
            )
            .map_err(backend)?;
        Ok(response.map_or(Claim::InProgress, Claim::Done))
    }

    fn complete_request(&self, key: &RequestKey, response: &[u8]) -> Result<(), StoreError> {
        key.check()?;
        let connection = self.connection()?;
        connection
            .execute(
                "UPDATE idempotency SET response = ?4 WHERE caller = ?1 AND method = ?2 AND request_id = ?3 AND response IS NULL",
                params![key.caller, key.method, key.request_id, response],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn release_request(&self, key: &RequestKey) -> Result<(), StoreError> {
        key.check()?;
        let connection = self.connection()?;
        connection
            .execute(
                "DELETE FROM idempotency WHERE caller = ?1 AND method = ?2 AND request_id = ?3 AND response IS NULL",
                params![key.caller, key.method, key.request_id],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn release_unfinished_requests(&self) -> Result<u64, StoreError> {
        let connection = self.connection()?;
        Ok(connection.execute("DELETE FROM idempotency WHERE response IS NULL", []).map_err(backend)? as u64)
    }

    fn forget_answer(&self, method: &str, response: &[u8]) -> Result<u64, StoreError> {
        check_text("the method", method)?;
        let connection = self.connection()?;
        let deleted = connection
            .execute("DELETE FROM idempotency WHERE method = ?1 AND response = ?2", params![method, response])
            .map_err(backend)?;
        Ok(deleted as u64)
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        check_text("the setting key", key)?;
        check_text("the setting", value)?;
        let connection = self.connection()?;
        connection
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        check_text("the setting key", key)?;
        let connection = self.connection()?;
        connection.query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| r.get(0)).optional().map_err(backend)
    }

    fn put_run(&self, run_id: &str, run: &[u8]) -> Result<(), StoreError> {
        check_text("run_id", run_id)?;
        let connection = self.connection()?;
        connection
            .execute(
                "INSERT INTO runs (run_id, run) VALUES (?1, ?2) ON CONFLICT (run_id) DO UPDATE SET run = excluded.run",
                params![run_id, run],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn get_run(&self, run_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_text("run_id", run_id)?;
        let connection = self.connection()?;
        connection.query_row("SELECT run FROM runs WHERE run_id = ?1", params![run_id], |r| r.get(0)).optional().map_err(backend)
    }

    fn list_runs(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_text("the page key", after.unwrap_or_default())?;
        let connection = self.connection()?;
        let mut statement =
            connection.prepare_cached("SELECT run_id, run FROM runs WHERE run_id > ?1 ORDER BY run_id LIMIT ?2").map_err(backend)?;
        let rows = statement.query_map(params![after.unwrap_or(""), limit as i64], |r| Ok((r.get(0)?, r.get(1)?))).map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn put_statements(&self, run_id: &str, statements: &[StatementRow]) -> Result<(), StoreError> {
        check_text("run_id", run_id)?;
        for row in statements {
            check_text("hospital_id", &row.hospital_id)?;
            check_text("the statement key", &row.key)?;
        }
        let mut connection = self.connection()?;
        let transaction = connection.transaction().map_err(backend)?;
        {
            let mut insert = transaction
                .prepare_cached("INSERT OR REPLACE INTO statements (run_id, key, hospital_id, statement) VALUES (?1, ?2, ?3, ?4)")
                .map_err(backend)?;
            for row in statements {
                insert.execute(params![run_id, row.key, row.hospital_id, row.statement]).map_err(backend)?;
            }
        }
        transaction.commit().map_err(backend)
    }

    fn list_statements(
        &self,
        run_id: &str,
        hospital_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_text("run_id", run_id)?;
        check_text("hospital_id", hospital_id.unwrap_or_default())?;
        check_text("the page key", after.unwrap_or_default())?;
        let connection = self.connection()?;
        let mut statement = connection
            .prepare_cached(
                "SELECT key, statement FROM statements WHERE run_id = ?1 AND (?2 IS NULL OR hospital_id = ?2) AND key > ?3 ORDER BY key LIMIT ?4",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![run_id, hospital_id, after.unwrap_or(""), limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn put_annotation(&self, kind: &str, hospital_id: &str, case_id: &str, record: &[u8]) -> Result<(), StoreError> {
        check_text("the annotation kind", kind)?;
        check_text("hospital_id", hospital_id)?;
        check_text("case_id", case_id)?;
        let connection = self.connection()?;
        connection
            .execute(
                "INSERT INTO annotations (kind, hospital_id, case_id, record) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, hospital_id, case_id) DO UPDATE SET record = excluded.record",
                params![kind, hospital_id, case_id, record],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn list_annotations(
        &self,
        kind: &str,
        hospital_id: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<super::Annotation>, StoreError> {
        let (after_hospital, after_case) = after.unwrap_or(("", ""));
        check_text("the annotation kind", kind)?;
        check_text("hospital_id", hospital_id.unwrap_or_default())?;
        check_text("the page key", after_hospital)?;
        check_text("the page key", after_case)?;
        let connection = self.connection()?;
        let mut statement = connection
            .prepare_cached(
                "SELECT hospital_id, case_id, record FROM annotations
                 WHERE kind = ?1 AND (?2 IS NULL OR hospital_id = ?2) AND (hospital_id, case_id) > (?3, ?4)
                 ORDER BY hospital_id, case_id LIMIT ?5",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![kind, hospital_id, after_hospital, after_case, limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }
}
