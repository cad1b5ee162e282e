//! Idempotent mutating calls: a `request_id` is a key scoped by caller and method
//! ([`RequestKey`]), claimed in the store before any work starts.
//!
//! - The first call with a key claims it, does the work and completes the key with its answer.
//! - A later call with the key gets that answer and changes nothing.
//! - A concurrent call with the key waits (polling the store, so it works across connections
//!   and, on PostgreSQL, across server processes) until the first completes, then answers the
//!   same; after [`WAIT`] it answers ABORTED (`REQUEST_IN_PROGRESS`): retry later.
//! - A call that fails (or whose client goes away) releases its claim, so a retry starts afresh.
//!
//! Two hospitals, or a hospital and the fund office, never share a key; nor do two methods (an
//! upload's `request_id` cannot collide with a review's).

use super::auth::Role;
use super::errors::{check_request_id, coded};
use super::paging::{task_failed, unavailable};
use crate::store::{now_rfc3339, Claim, RequestKey, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Code, Status};

/// How long a call waits for a concurrent call with the same key to finish.
pub const WAIT: Duration = Duration::from_secs(60);

/// The caller part of a key: `fund-office` (every fund-office token acts for the one office) or
/// `hospitals/{id}`.
pub fn caller(role: &Role) -> String {
    match role {
        Role::FundOffice => "fund-office".to_string(),
        Role::Hospital(id) => format!("hospitals/{id}"),
    }
}

/// What [`begin`] found.
pub enum Begin {
    /// This call holds the key: do the work, then [`Claimed::complete`].
    Fresh(Claimed),
    /// An earlier call with the key finished: its answer.
    Earlier(Vec<u8>),
}

/// A claimed key; released when dropped without [`Claimed::complete`] (the work failed or the
/// call was cancelled).
pub struct Claimed {
    store: Arc<dyn Store>,
    key: Option<RequestKey>,
}

impl Claimed {
    /// Stores the answer under the key. A storage failure here is logged, not answered: the
    /// work is done; the claim is released, and a retry redoes the (idempotent) work.
    pub async fn complete(mut self, response: Vec<u8>) {
        let Some(key) = self.key.take() else { return };
        let store = self.store.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let outcome = store.complete_request(&key, &response);
            if outcome.is_err() {
                let _ = store.release_request(&key);
            }
            outcome
        })
        .await;
        if let Ok(Err(error)) = outcome {
            tracing::warn!(error = %error, "the answer of an idempotent request could not be stored");
        }
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let store = self.store.clone();
        let release = move || {
            if let Err(error) = store.release_request(&key) {
                tracing::warn!(error = %error, request_id = %key.request_id, "an unfinished request could not be released");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(release);
            }
            Err(_) => release(),
        }
    }
}

/// Claims `request_id` for `role` and `method`, waiting for a concurrent call with the same key.
/// An empty `request_id` is no key: `Ok(None)`, the call is not idempotent.
pub async fn begin(store: &Arc<dyn Store>, role: &Role, method: &str, request_id: &str) -> Result<Option<Begin>, Status> {
    if request_id.is_empty() {
        return Ok(None);
    }
    check_request_id(request_id)?;
    let key = RequestKey { caller: caller(role), method: method.to_string(), request_id: request_id.to_string() };
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        let (claim_store, claim_key) = (store.clone(), key.clone());
        let claim = tokio::task::spawn_blocking(move || claim_store.claim_request(&claim_key, &now_rfc3339()))
            .await
            .map_err(task_failed)?
            .map_err(unavailable)?;
        match claim {
            Claim::Claimed => return Ok(Some(Begin::Fresh(Claimed { store: store.clone(), key: Some(key) }))),
            Claim::Done(answer) => return Ok(Some(Begin::Earlier(answer))),
            Claim::InProgress if started.elapsed() >= WAIT => {
                return Err(coded(
                    Code::Aborted,
                    "REQUEST_IN_PROGRESS",
                    format!("a {method} with request_id {request_id:?} is still in progress: retry later for its answer"),
                ))
            }
            Claim::InProgress => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}
