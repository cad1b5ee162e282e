//! The embedded SQLite backend: one file (`dipdrg.sqlite` under the data directory), WAL mode,
//! one connection behind a mutex (SQLite serialises writers anyway).

use super::{NewCase, PutOutcome, Store, StoreError, StoredCaseRow};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

pub struct SqliteStore {
    connection: Mutex<Connection>,
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
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    response BLOB NOT NULL
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
        connection.execute_batch(SCHEMA).map_err(backend)?;
        Ok(SqliteStore { connection: Mutex::new(connection) })
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let connection = Connection::open_in_memory().map_err(backend)?;
        connection.execute_batch(SCHEMA).map_err(backend)?;
        Ok(SqliteStore { connection: Mutex::new(connection) })
    }

    fn connection(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.connection.lock().map_err(|_| StoreError::Backend("the connection lock is poisoned".into()))
    }
}

fn row_to_case(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCaseRow> {
    Ok(StoredCaseRow { hospital_id: row.get(0)?, case_id: row.get(1)?, row: row.get(2)?, updated_at: row.get(3)? })
}

impl Store for SqliteStore {
    fn put_cases(&self, cases: &[NewCase], now: &str) -> Result<Vec<PutOutcome>, StoreError> {
        let mut connection = self.connection()?;
        let transaction = connection.transaction().map_err(backend)?;
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
        let connection = self.connection()?;
        let (after_hospital, after_case) = after.unwrap_or(("", ""));
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

    fn find_request(&self, request_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let connection = self.connection()?;
        connection
            .query_row("SELECT response FROM requests WHERE request_id = ?1", params![request_id], |r| r.get(0))
            .optional()
            .map_err(backend)
    }

    fn save_request(&self, request_id: &str, response: &[u8]) -> Result<(), StoreError> {
        let connection = self.connection()?;
        connection
            .execute(
                "INSERT INTO requests (request_id, response) VALUES (?1, ?2) ON CONFLICT (request_id) DO NOTHING",
                params![request_id, response],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
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
        let connection = self.connection()?;
        connection.query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| r.get(0)).optional().map_err(backend)
    }

    fn put_run(&self, run_id: &str, run: &[u8]) -> Result<(), StoreError> {
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
        let connection = self.connection()?;
        connection.query_row("SELECT run FROM runs WHERE run_id = ?1", params![run_id], |r| r.get(0)).optional().map_err(backend)
    }

    fn list_runs(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let connection = self.connection()?;
        let mut statement =
            connection.prepare_cached("SELECT run_id, run FROM runs WHERE run_id > ?1 ORDER BY run_id LIMIT ?2").map_err(backend)?;
        let rows = statement.query_map(params![after.unwrap_or(""), limit as i64], |r| Ok((r.get(0)?, r.get(1)?))).map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn put_statements(&self, run_id: &str, statements: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut connection = self.connection()?;
        let transaction = connection.transaction().map_err(backend)?;
        {
            let mut insert = transaction
                .prepare_cached("INSERT OR REPLACE INTO statements (run_id, key, hospital_id, statement) VALUES (?1, ?2, ?3, ?4)")
                .map_err(backend)?;
            for (key, statement) in statements {
                let hospital = key.split('.').next().unwrap_or("");
                insert.execute(params![run_id, key, hospital, statement]).map_err(backend)?;
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
        let connection = self.connection()?;
        let (after_hospital, after_case) = after.unwrap_or(("", ""));
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
