//! The PostgreSQL backend (feature `postgres`): the same tables as SQLite, in a schema of their
//! own, used through an r2d2 connection pool from tokio's blocking pool like every store.
//!
//! The pool tests a connection before handing it out and replaces a broken one, so the store
//! reconnects by itself after the database restarts: calls made while it is down fail with
//! [`StoreError::Backend`] (UNAVAILABLE: retry), the first call after it is back succeeds.

use super::{check_text, Claim, NewCase, PutOutcome, RequestKey, StatementRow, Store, StoreError, StoredCaseRow};
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;
use std::time::Duration;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Connection = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

pub struct PostgresStore {
    pool: Pool,
}

fn backend(error: postgres::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// Connections kept (the blocking pool runs at most this many store calls at once).
const POOL_SIZE: u32 = 8;
/// How long a call waits for a connection (a new one while the database is down) before failing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cases (
    hospital_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    row TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (hospital_id, case_id)
);
CREATE TABLE IF NOT EXISTS idempotency (
    caller TEXT NOT NULL,
    method TEXT NOT NULL,
    request_id TEXT NOT NULL,
    response BYTEA,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (caller, method, request_id)
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
    /// `schema` (created when missing), so that several stores can share one database. Every
    /// pooled connection works in `schema` (its `search_path`).
    pub fn connect(url: &str, schema: &str) -> Result<PostgresStore, StoreError> {
        if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || schema.is_empty() {
            return Err(StoreError::Backend(format!("schema name {schema:?} must be letters, digits and _")));
        }
        let mut config: postgres::Config =
            url.parse().map_err(|_| StoreError::Backend("database_url is not a PostgreSQL connection string".into()))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        let mut client = config.connect(NoTls).map_err(backend)?;
        client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema};")).map_err(backend)?;
        client.batch_execute(SCHEMA).map_err(backend)?;
        config.options(&format!("-c search_path={schema}"));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .test_on_check_out(true)
            .build(PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| StoreError::Backend(format!("connection pool: {e}")))?;
        Ok(PostgresStore { pool })
    }

    fn client(&self) -> Result<Connection, StoreError> {
        self.pool.get().map_err(|e| StoreError::Backend(format!("no database connection: {e}")))
    }
}

fn to_case(row: &postgres::Row) -> StoredCaseRow {
    StoredCaseRow { hospital_id: row.get(0), case_id: row.get(1), row: row.get(2), updated_at: row.get(3) }
}

impl Store for PostgresStore {
    fn as_dyn(&self) -> &dyn Store {
        self
    }

    /// Pages of 10,000 inside one REPEATABLE READ, READ ONLY transaction: every page reads the
    /// snapshot taken by the first.
    fn for_each_case(&self, visit: &mut dyn FnMut(&StoredCaseRow)) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut transaction = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(backend)?;
        let page = transaction
            .prepare(
                "SELECT hospital_id, case_id, row, updated_at FROM cases
                 WHERE (hospital_id COLLATE \"C\", case_id COLLATE \"C\") > ($1::TEXT COLLATE \"C\", $2::TEXT COLLATE \"C\")
                 ORDER BY hospital_id COLLATE \"C\", case_id COLLATE \"C\" LIMIT 10000",
            )
            .map_err(backend)?;
        let mut after = (String::new(), String::new());
        loop {
            let rows = transaction.query(&page, &[&after.0, &after.1]).map_err(backend)?;
            let Some(last) = rows.last() else { break };
            after = (last.get(0), last.get(1));
            for row in &rows {
                visit(&to_case(row));
            }
        }
        transaction.commit().map_err(backend)
    }

    fn put_cases(&self, cases: &[NewCase], now: &str) -> Result<Vec<PutOutcome>, StoreError> {
        for case in cases {
            check_text("hospital_id", &case.hospital_id)?;
            check_text("case_id", &case.case_id)?;
            check_text("the case row", &case.row)?;
        }
        let mut client = self.client()?;
        let mut transaction = client.transaction().map_err(backend)?;
        // One statement per case, safe against a concurrent upload of the same case: it returns
        // a row when it inserted (xmax = 0) or replaced, none when the content was the same.
        let upsert = transaction
            .prepare(
                "INSERT INTO cases (hospital_id, case_id, row, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (hospital_id, case_id) DO UPDATE SET row = excluded.row, updated_at = excluded.updated_at
                 WHERE cases.row <> excluded.row
                 RETURNING (xmax = 0)",
            )
            .map_err(backend)?;
        let mut outcomes = Vec::with_capacity(cases.len());
        for case in cases {
            let changed = transaction.query_opt(&upsert, &[&case.hospital_id, &case.case_id, &case.row, &now]).map_err(backend)?;
            outcomes.push(match changed.map(|r| r.get::<_, bool>(0)) {
                Some(true) => PutOutcome::Accepted,
                Some(false) => PutOutcome::Replaced,
                None => PutOutcome::Unchanged,
            });
        }
        transaction.commit().map_err(backend)?;
        Ok(outcomes)
    }

    fn get_case(&self, hospital_id: &str, case_id: &str) -> Result<Option<StoredCaseRow>, StoreError> {
        check_text("hospital_id", hospital_id)?;
        check_text("case_id", case_id)?;
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
        let (after_hospital, after_case) = after.unwrap_or(("", ""));
        check_text("hospital_id", hospital_id.unwrap_or_default())?;
        check_text("the page key", after_hospital)?;
        check_text("the page key", after_case)?;
        let mut client = self.client()?;
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

    fn claim_request(&self, key: &RequestKey, now: &str) -> Result<Claim, StoreError> {
        key.check()?;
        let mut client = self.client()?;
        // The insert is atomic; when it finds the key, the read tells done from in progress. A
        // claim released between the two is claimed again (bounded: a release needs a failure).
        for _ in 0..3 {
            let inserted = client
                .execute(
                    "INSERT INTO idempotency (caller, method, request_id, response, claimed_at) VALUES ($1, $2, $3, NULL, $4)
                     ON CONFLICT (caller, method, request_id) DO NOTHING",
                    &[&key.caller, &key.method, &key.request_id, &now],
                )
                .map_err(backend)?;
            if inserted == 1 {
                return Ok(Claim::Claimed);
            }
            let found = client
                .query_opt(
                    "SELECT response FROM idempotency WHERE caller = $1 AND method = $2 AND request_id = $3",
                    &[&key.caller, &key.method, &key.request_id],
                )
                .map_err(backend)?;
            if let Some(row) = found {
                return Ok(row.get::<_, Option<Vec<u8>>>(0).map_or(Claim::InProgress, Claim::Done));
            }
        }
        Ok(Claim::InProgress)
    }

    fn complete_request(&self, key: &RequestKey, response: &[u8]) -> Result<(), StoreError> {
        key.check()?;
        let mut client = self.client()?;
        client
            .execute(
                "UPDATE idempotency SET response = $4 WHERE caller = $1 AND method = $2 AND request_id = $3 AND response IS NULL",
                &[&key.caller, &key.method, &key.request_id, &response],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn release_request(&self, key: &RequestKey) -> Result<(), StoreError> {
        key.check()?;
        let mut client = self.client()?;
        client
            .execute(
                "DELETE FROM idempotency WHERE caller = $1 AND method = $2 AND request_id = $3 AND response IS NULL",
                &[&key.caller, &key.method, &key.request_id],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn release_unfinished_requests(&self) -> Result<u64, StoreError> {
        let mut client = self.client()?;
        client.execute("DELETE FROM idempotency WHERE response IS NULL", &[]).map_err(backend)
    }

    fn forget_answer(&self, method: &str, response: &[u8]) -> Result<u64, StoreError> {
        check_text("the method", method)?;
        let mut client = self.client()?;
        client.execute("DELETE FROM idempotency WHERE method = $1 AND response = $2", &[&method, &response]).map_err(backend)
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        check_text("the setting key", key)?;
        check_text("the setting", value)?;
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
        check_text("the setting key", key)?;
        let mut client = self.client()?;
        Ok(client.query_opt("SELECT value FROM settings WHERE key = $1", &[&key]).map_err(backend)?.map(|r| r.get(0)))
    }

    fn put_run(&self, run_id: &str, run: &[u8]) -> Result<(), StoreError> {
        check_text("run_id", run_id)?;
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
        check_text("run_id", run_id)?;
        let mut client = self.client()?;
        Ok(client.query_opt("SELECT run FROM runs WHERE run_id = $1", &[&run_id]).map_err(backend)?.map(|r| r.get(0)))
    }

    fn list_runs(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_text("the page key", after.unwrap_or_default())?;
        let mut client = self.client()?;
        let rows = client
            .query(
                "SELECT run_id, run FROM runs WHERE run_id COLLATE \"C\" > $1::TEXT COLLATE \"C\" ORDER BY run_id COLLATE \"C\" LIMIT $2",
                &[&after.unwrap_or(""), &(limit as i64)],
            )
            .map_err(backend)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn put_statements(&self, run_id: &str, statements: &[StatementRow]) -> Result<(), StoreError> {
        check_text("run_id", run_id)?;
        for row in statements {
            check_text("hospital_id", &row.hospital_id)?;
            check_text("the statement key", &row.key)?;
        }
        let mut client = self.client()?;
        let mut transaction = client.transaction().map_err(backend)?;
        let insert = transaction
            .prepare(
                "INSERT INTO statements (run_id, key, hospital_id, statement) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (run_id, key) DO UPDATE SET hospital_id = excluded.hospital_id, statement = excluded.statement",
            )
            .map_err(backend)?;
        for row in statements {
            transaction.execute(&insert, &[&run_id, &row.key, &row.hospital_id, &row.statement]).map_err(backend)?;
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
        check_text("the annotation kind", kind)?;
        check_text("hospital_id", hospital_id)?;
        check_text("case_id", case_id)?;
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
        let (after_hospital, after_case) = after.unwrap_or(("", ""));
        check_text("the annotation kind", kind)?;
        check_text("hospital_id", hospital_id.unwrap_or_default())?;
        check_text("the page key", after_hospital)?;
        check_text("the page key", after_case)?;
        let mut client = self.client()?;
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
