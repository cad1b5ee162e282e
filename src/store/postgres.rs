//! The PostgreSQL backend (feature `postgres`): the same tables as SQLite, one connection behind
//! a mutex (a pool can come later), used from tokio's blocking pool like every store.

use super::{NewCase, PutOutcome, Store, StoreError, StoredCaseRow};
use postgres::{Client, NoTls};
use std::sync::Mutex;

pub struct PostgresStore {
    client: Mutex<Client>,
}

fn backend(error: postgres::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cases (
    hospital_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    row TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (hospital_id, case_id)
);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    response BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS annotations (
    kind TEXT NOT NULL,
    hospital_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (kind, hospital_id, case_id)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS statements (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    hospital_id TEXT NOT NULL,
    statement BYTEA NOT NULL,
    PRIMARY KEY (run_id, key)
);
";

impl PostgresStore {
    /// Connects (`host=… user=… dbname=…` or a `postgresql://` URL) and creates the tables in
    /// `schema` (created when missing), so that several stores can share one database.
    pub fn connect(url: &str, schema: &str) -> Result<PostgresStore, StoreError> {
        if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
            return Err(StoreError::Backend(format!("schema name {schema:?} must be letters, digits and _")));
        }
        let mut client = Client::connect(url, NoTls).map_err(backend)?;
        client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema};")).map_err(backend)?;
        client.batch_execute(SCHEMA).map_err(backend)?;
        Ok(PostgresStore { client: Mutex::new(client) })
    }

    fn client(&self) -> Result<std::sync::MutexGuard<'_, Client>, StoreError> {
        self.client.lock().map_err(|_| StoreError::Backend("the connection lock is poisoned".into()))
    }
}

fn to_case(row: &postgres::Row) -> StoredCaseRow {
    StoredCaseRow { hospital_id: row.get(0), case_id: row.get(1), row: row.get(2), updated_at: row.get(3) }
}

impl Store for PostgresStore {
    fn put_cases(&self, cases: &[NewCase], now: &str) -> Result<Vec<PutOutcome>, StoreError> {
        let mut client = self.client()?;
        let mut transaction = client.transaction().map_err(backend)?;
        let existing = transaction.prepare("SELECT row FROM cases WHERE hospital_id = $1 AND case_id = $2").map_err(backend)?;
        let upsert = transaction
            .prepare(
                "INSERT INTO cases (hospital_id, case_id, row, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (hospital_id, case_id) DO UPDATE SET row = excluded.row, updated_at = excluded.updated_at",
            )
            .map_err(backend)?;
        let mut outcomes = Vec::with_capacity(cases.len());
        for case in cases {
            let previous = transaction.query_opt(&existing, &[&case.hospital_id, &case.case_id]).map_err(backend)?;
            let outcome = match previous.map(|r| r.get::<_, String>(0)) {
                Some(row) if row == case.row => PutOutcome::Unchanged,
                Some(_) => PutOutcome::Replaced,
                None => PutOutcome::Accepted,
            };
            if outcome != PutOutcome::Unchanged {
                transaction.execute(&upsert, &[&case.hospital_id, &case.case_id, &case.row, &now]).map_err(backend)?;
            }
            outcomes.push(outcome);
        }
        transaction.commit().map_err(backend)?;
        Ok(outcomes)
    }

    fn get_case(&self, hospital_id: &str, case_id: &str) -> Result<Option<StoredCaseRow>, StoreError> {
        let mut client = self.client()?;
        let row = client
            .query_opt(
                "SELECT hospital_id, case_id, row, updated_at FROM cases WHERE hospital_id = $1 AND case_id = $2",
                &[&hospital_id, &case_id],
            )
            .map_err(backend)?;
        Ok(row.as_ref().map(to_case))
    }

    fn list_cases(&self, hospital_id: Option<&str>, after: Option<(&str, &str)>, limit: usize) -> Result<Vec<StoredCaseRow>, StoreError> {
        let mut client = self.client()?;
        let (after_hospital, after_case) = after.unwrap_or(("", ""));
        // COLLATE "C": the same byte order as SQLite, so pages come out identically.
        let rows = client
            .query(
                "SELECT hospital_id, case_id, row, updated_at FROM cases
                 WHERE ($1::TEXT IS NULL OR hospital_id = $1)
                   AND (hospital_id COLLATE \"C\", case_id COLLATE \"C\") > ($2::TEXT COLLATE \"C\", $3::TEXT COLLATE \"C\")
                 ORDER BY hospital_id COLLATE \"C\", case_id COLLATE \"C\" LIMIT $4",
                &[&hospital_id, &after_hospital, &after_case, &(limit as i64)],
            )
            .map_err(backend)?;
        Ok(rows.iter().map(to_case).collect())
    }

    fn find_request(&self, request_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut client = self.client()?;
        let row = client.query_opt("SELECT response FROM requests WHERE request_id = $1", &[&request_id]).map_err(backend)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn save_request(&self, request_id: &str, response: &[u8]) -> Result<(), StoreError> {
        let mut client = self.client()?;
        client
            .execute(
                "INSERT INTO requests (request_id, response) VALUES ($1, $2) ON CONFLICT (request_id) DO NOTHING",
                &[&request_id, &response],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut client = self.client()?;
        client
            .execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut client = self.client()?;
        Ok(client.query_opt("SELECT value FROM settings WHERE key = $1", &[&key]).map_err(backend)?.map(|r| r.get(0)))
    }

    fn put_run(&self, run_id: &str, run: &[u8]) -> Result<(), StoreError> {
        let mut client = self.client()?;
        client
            .execute(
                "INSERT INTO runs (run_id, run) VALUES ($1, $2) ON CONFLICT (run_id) DO UPDATE SET run = excluded.run",
                &[&run_id, &run],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn get_run(&self, run_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut client = self.client()?;
        Ok(client.query_opt("SELECT run FROM runs WHERE run_id = $1", &[&run_id]).map_err(backend)?.map(|r| r.get(0)))
    }

    fn list_runs(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut client = self.client()?;
        let rows = client
            .query(
                "SELECT run_id, run FROM runs WHERE run_id COLLATE \"C\" > $1::TEXT COLLATE \"C\" ORDER BY run_id COLLATE \"C\" LIMIT $2",
                &[&after.unwrap_or(""), &(limit as i64)],
            )
            .map_err(backend)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn put_statements(&self, run_id: &str, statements: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut transaction = client.transaction().map_err(backend)?;
        let insert = transaction
            .prepare(
                "INSERT INTO statements (run_id, key, hospital_id, statement) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (run_id, key) DO UPDATE SET statement = excluded.statement",
            )
            .map_err(backend)?;
        for (key, statement) in statements {
            let hospital = key.split('.').next().unwrap_or("");
            transaction.execute(&insert, &[&run_id, key, &hospital, statement]).map_err(backend)?;
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
        let mut client = self.client()?;
        let rows = client
            .query(
                "SELECT key, statement FROM statements WHERE run_id = $1 AND ($2::TEXT IS NULL OR hospital_id = $2)
                 AND key COLLATE \"C\" > $3::TEXT COLLATE \"C\" ORDER BY key COLLATE \"C\" LIMIT $4",
                &[&run_id, &hospital_id, &after.unwrap_or(""), &(limit as i64)],
            )
            .map_err(backend)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn put_annotation(&self, kind: &str, hospital_id: &str, case_id: &str, record: &[u8]) -> Result<(), StoreError> {
        let mut client = self.client()?;
        client
            .execute(
                "INSERT INTO annotations (kind, hospital_id, case_id, record) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (kind, hospital_id, case_id) DO UPDATE SET record = excluded.record",
                &[&kind, &hospital_id, &case_id, &record],
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
        let mut client = self.client()?;
        let (after_hospital, after_case) = after.unwrap_or(("", ""));
        let rows = client
            .query(
                "SELECT hospital_id, case_id, record FROM annotations
                 WHERE kind = $1 AND ($2::TEXT IS NULL OR hospital_id = $2)
                   AND (hospital_id COLLATE \"C\", case_id COLLATE \"C\") > ($3::TEXT COLLATE \"C\", $4::TEXT COLLATE \"C\")
                 ORDER BY hospital_id COLLATE \"C\", case_id COLLATE \"C\" LIMIT $5",
                &[&kind, &hospital_id, &after_hospital, &after_case, &(limit as i64)],
            )
            .map_err(backend)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }
}
