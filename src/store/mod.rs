//! Storage: one trait, several backends. The service stores cases, upload answers (for
//! idempotent retries) and, later, settlement runs; it never talks SQL itself.
//!
//! Backends: [`sqlite::SqliteStore`] (embedded, the default: a file under the data directory, WAL)
//! and `postgres::PostgresStore` (feature `postgres`, chosen by `database_url`).
//! Every backend must pass the same conformance suite (`store_test_suite!` in `tests/store.rs`,
//! instantiated once per backend). Calls are blocking; the server runs them on tokio's blocking
//! pool.
//!
//! Text: no stored text (ids, keys, rows) may contain NUL — PostgreSQL's `TEXT` cannot hold it —
//! so both backends refuse it alike with [`StoreError::InvalidText`] before touching the database.
//!
//! Idempotency keys ([`RequestKey`]) are scoped by caller and method and claimed atomically
//! before the work starts ([`Store::claim_request`]); the claim is completed with the answer or
//! released when the work fails. The service assumes one server process per database (schema):
//! at start it releases the claims a killed process left unfinished.

#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

/// Why a storage call failed. The server maps [`StoreError::Backend`] to `UNAVAILABLE` (the
/// client may retry) and [`StoreError::InvalidText`] to `INVALID_ARGUMENT` (a retry never helps).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend: {0}")]
    Backend(String),
    /// A text value the store cannot hold (a NUL character), named by what it is.
    #[error("{0} contains a NUL character, which cannot be stored")]
    InvalidText(&'static str),
}

impl StoreError {
    /// A stable code for the error (gRPC `ErrorInfo.reason`).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Backend(_) => "STORE_UNAVAILABLE",
            StoreError::InvalidText(_) => "TEXT_HAS_NUL",
        }
    }
}

/// [`StoreError::InvalidText`] when `value` holds a NUL: every backend checks its text with it.
pub fn check_text(what: &'static str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::InvalidText(what));
    }
    Ok(())
}

/// An idempotency key: the caller (`fund-office` or `hospitals/{id}`), the method
/// (`IngestCases`, `CreateSettlementRun`, …) and the client's `request_id`. Two callers, or two
/// methods, never share a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub caller: String,
    pub method: String,
    pub request_id: String,
}

impl RequestKey {
    fn check(&self) -> Result<(), StoreError> {
        check_text("the caller", &self.caller)?;
        check_text("the method", &self.method)?;
        check_text("request_id", &self.request_id)
    }
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now this call's: do the work, then complete or release it.
    Claimed,
    /// An earlier call with this key finished: its answer.
    Done(Vec<u8>),
    /// An earlier call with this key is still working (claimed, not completed).
    InProgress,
}

/// A statement to store: its hospital (for the hospital filter), its key (unique in the run,
/// the order of listing) and the encoded statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRow {
    pub hospital_id: String,
    pub key: String,
    pub statement: Vec<u8>,
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
    /// Every stored case in (hospital, case id) order as one consistent snapshot: uploads that
    /// commit during the visit are not seen, and every case is seen as it was at the start (a
    /// run reads one state of the store). `visit` must not call the store.
    fn for_each_case(&self, visit: &mut dyn FnMut(&StoredCaseRow)) -> Result<(), StoreError> {
        for_each_case_paged(self.as_dyn(), visit)
    }
    /// `self` as a trait object (for the provided methods).
    fn as_dyn(&self) -> &dyn Store;
    /// Cases ordered by (hospital, case id), after `after` (exclusive), at most `limit`.
    /// `hospital_id` = `None` lists every hospital.
    fn list_cases(&self, hospital_id: Option<&str>, after: Option<(&str, &str)>, limit: usize) -> Result<Vec<StoredCaseRow>, StoreError>;
    /// Claims an idempotency key atomically: of two concurrent calls with one key exactly one
    /// gets [`Claim::Claimed`]; the other [`Claim::InProgress`] until the first completes
    /// ([`Claim::Done`] with its answer) or releases it (then a new claim succeeds).
    fn claim_request(&self, key: &RequestKey, now: &str) -> Result<Claim, StoreError>;
    /// Completes a claimed key with its answer (kept for every later call with the key).
    fn complete_request(&self, key: &RequestKey, response: &[u8]) -> Result<(), StoreError>;
    /// Releases an unfinished claim (the work failed): a retry with the key starts afresh.
    /// A completed key is left alone.
    fn release_request(&self, key: &RequestKey) -> Result<(), StoreError>;
    /// Releases every unfinished claim (at start: the process that claimed them is gone);
    /// returns how many.
    fn release_unfinished_requests(&self) -> Result<u64, StoreError>;
    /// Forgets the completed keys of `method` whose answer is `response` (at start: the run a
    /// `CreateSettlementRun` key answered with was interrupted, so the request may be re-sent);
    /// returns how many.
    fn forget_answer(&self, method: &str, response: &[u8]) -> Result<u64, StoreError>;
    /// Creates or updates a settlement run (an encoded message, opaque to the store).
    fn put_run(&self, run_id: &str, run: &[u8]) -> Result<(), StoreError>;
    fn get_run(&self, run_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Runs ordered by id, after `after` (exclusive), at most `limit`: (id, encoded run).
    fn list_runs(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Stores a run's statements in one transaction (a statement with an existing key replaces it).
    fn put_statements(&self, run_id: &str, statements: &[StatementRow]) -> Result<(), StoreError>;
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

/// Visits every stored case in (hospital, case id) order, as one consistent snapshot (see
/// [`Store::for_each_case`]): how settlement runs and audits read the whole store.
pub fn for_each_case(store: &dyn Store, mut visit: impl FnMut(&StoredCaseRow)) -> Result<(), StoreError> {
    store.for_each_case(&mut visit)
}

/// Visits every stored case, a page of 10,000 at a time: pages are separate reads, so a
/// concurrent upload may show in later pages and not in earlier ones. Backends override
/// [`Store::for_each_case`] with a snapshot.
pub fn for_each_case_paged(store: &dyn Store, visit: &mut dyn FnMut(&StoredCaseRow)) -> Result<(), StoreError> {
    let mut after: Option<(String, String)> = None;
    loop {
        let page = store.list_cases(None, after.as_ref().map(|(h, c)| (h.as_str(), c.as_str())), 10_000)?;
        let Some(last) = page.last() else { return Ok(()) };
        after = Some((last.hospital_id.clone(), last.case_id.clone()));
        page.iter().for_each(&mut *visit);
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
