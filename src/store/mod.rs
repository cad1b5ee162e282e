//! Storage: one trait, several backends. The service stores cases, upload answers (for
//! idempotent retries) and, later, settlement runs; it never talks SQL itself.
//!
//! Backends: [`sqlite::SqliteStore`] (embedded, the default: a file under the data directory, WAL)
//! and `postgres::PostgresStore` (feature `postgres`, chosen by `database_url`).
//! Every backend must pass the same conformance suite (`tests/store.rs`). Calls are blocking; the
//! server runs them on tokio's blocking pool.

#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

/// Why a storage call failed. The server maps every variant to `INTERNAL` or `UNAVAILABLE`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend: {0}")]
    Backend(String),
}

/// What storing one case did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new case.
    Accepted,
    /// The case id existed for this hospital with other content: replaced.
    Replaced,
    /// The case id existed with the same content: nothing changed.
    Unchanged,
}

/// A stored case: its hospital, id, the case as one CSV row in the documented layout (see
/// [`crate::io::case_csv::case_row`]) and the time of its last change (RFC 3339, UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCaseRow {
    pub hospital_id: String,
    pub case_id: String,
    pub row: String,
    pub updated_at: String,
}

/// A stored annotation: (hospital id, case id, encoded record).
pub type Annotation = (String, String, Vec<u8>);

/// A case to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCase {
    pub hospital_id: String,
    pub case_id: String,
    pub row: String,
}

pub trait Store: Send + Sync {
    /// Stores cases in one transaction, keyed by (hospital, case id); returns one outcome each.
    fn put_cases(&self, cases: &[NewCase], now: &str) -> Result<Vec<PutOutcome>, StoreError>;
    fn get_case(&self, hospital_id: &str, case_id: &str) -> Result<Option<StoredCaseRow>, StoreError>;
    /// Cases ordered by (hospital, case id), after `after` (exclusive), at most `limit`.
    /// `hospital_id` = `None` lists every hospital.
    fn list_cases(&self, hospital_id: Option<&str>, after: Option<(&str, &str)>, limit: usize) -> Result<Vec<StoredCaseRow>, StoreError>;
    /// The stored answer of a mutating request, for idempotent retries.
    fn find_request(&self, request_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn save_request(&self, request_id: &str, response: &[u8]) -> Result<(), StoreError>;
    /// Creates or updates a settlement run (an encoded message, opaque to the store).
    fn put_run(&self, run_id: &str, run: &[u8]) -> Result<(), StoreError>;
    fn get_run(&self, run_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Runs ordered by id, after `after` (exclusive), at most `limit`: (id, encoded run).
    fn list_runs(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Stores a run's statements, keyed by `key` (hospital and fund), in one transaction.
    fn put_statements(&self, run_id: &str, statements: &[(String, Vec<u8>)]) -> Result<(), StoreError>;
    /// A run's statements ordered by key, after `after`, at most `limit`; `hospital_id` filters.
    fn list_statements(
        &self,
        run_id: &str,
        hospital_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Stores (or replaces) an annotation of a case — `kind` is `violation` or `decision` — as an
    /// encoded message.
    fn put_annotation(&self, kind: &str, hospital_id: &str, case_id: &str, record: &[u8]) -> Result<(), StoreError>;
    /// Annotations of `kind` ordered by (hospital, case id), after `after`, at most `limit`.
    fn list_annotations(
        &self,
        kind: &str,
        hospital_id: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Annotation>, StoreError>;
    /// Sets a service setting (such as the active policy), replacing any earlier value.
    fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError>;
}

/// Visits every stored case in (hospital, case id) order, a page of 10,000 at a time: how
/// settlement runs and audits read the whole store.
pub fn for_each_case(store: &dyn Store, mut visit: impl FnMut(&StoredCaseRow)) -> Result<(), StoreError> {
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store.list_cases(None, after.as_ref().map(|(h, c)| (h.as_str(), c.as_str())), 10_000)?;
        let Some(last) = page.last() else { return Ok(()) };
        after = Some((last.hospital_id.clone(), last.case_id.clone()));
        page.iter().for_each(&mut visit);
    }
}

/// Now as RFC 3339 in UTC, to the second.
pub fn now_rfc3339() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (seconds / 86_400) as i32;
    let in_day = seconds % 86_400;
    let date = crate::case::Date::from_ymd(1970, 1, 1).map(|epoch| epoch.add_days(days));
    let date = date.map_or_else(|| "1970-01-01".to_string(), |d| d.to_string());
    format!("{date}T{:02}:{:02}:{:02}Z", in_day / 3600, in_day / 60 % 60, in_day % 60)
}
