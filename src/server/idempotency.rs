//! Idempotent mutating calls: a `request_id` is a key scoped by caller and method
//! ([`RequestKey`]), claimed in the store before any work starts.
//!
//! - The first call with a key claims it, does the work and completes the key with its answer.
//! - A later call with the key gets that answer and changes nothing.
//! - A concurrent call with the key waits (polling the store, so it works across connections
//!   and, on PostgreSQL, across server processes) until the first completes, then answers the
//!   same; after [`WAIT`] it answers ABORTED (`REQUEST_IN_PROGRESS`): retry later. A waiting
//!   upload keeps reading its stream meanwhile ([`begin_draining`]).
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
use tokio_stream::{Stream, StreamExt};
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
    begin_inner(store, role, method, request_id, None::<&mut tokio_stream::Empty<()>>).await
}

/// [`begin`] for a client stream whose first message carried the key: while a concurrent call
/// holds the key, this call keeps reading `rest` of its stream and drops it. An unread stream
/// holds HTTP/2 connection flow-control window, so waiting without reading could starve the
/// very call being waited for when both share one connection (a client retrying concurrently
/// over one channel). Its answer is the first call's; if the first call fails after records of
/// this one were dropped, this one answers ABORTED (`REQUEST_ATTEMPT_FAILED`): send it again.
pub async fn begin_draining<S, T>(
    store: &Arc<dyn Store>,
    role: &Role,
    method: &str,
    request_id: &str,
    rest: &mut S,
) -> Result<Option<Begin>, Status>
where
    S: Stream<Item = T> + Unpin,
{
    begin_inner(store, role, method, request_id, Some(rest)).await
}

async fn begin_inner<S, T>(
    store: &Arc<dyn Store>,
    role: &Role,
    method: &str,
    request_id: &str,
    mut rest: Option<&mut S>,
) -> Result<Option<Begin>, Status>
where
    S: Stream<Item = T> + Unpin,
{
    if request_id.is_empty() {
        return Ok(None);
    }
    check_request_id(request_id)?;
    let key = RequestKey { caller: caller(role), method: method.to_string(), request_id: request_id.to_string() };
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    let mut dropped: u64 = 0;
    let mut stream_ended = false;
    loop {
        let (claim_store, claim_key) = (store.clone(), key.clone());
        let claim = tokio::task::spawn_blocking(move || claim_store.claim_request(&claim_key, &now_rfc3339()))
            .await
            .map_err(task_failed)?
            .map_err(unavailable)?;
        match claim {
            Claim::Claimed if dropped > 0 => {
                let _release = Claimed { store: store.clone(), key: Some(key) };
                return Err(coded(
                    Code::Aborted,
                    "REQUEST_ATTEMPT_FAILED",
                    format!("a concurrent {method} with request_id {request_id:?} failed while this one waited: send it again"),
                ));
            }
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
                let sleep = tokio::time::sleep(pause);
                tokio::pin!(sleep);
                match rest.as_deref_mut() {
                    Some(stream) if !stream_ended => loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            item = stream.next() => match item {
                                Some(_) => dropped += 1,
                                None => { stream_ended = true; sleep.as_mut().await; break }
                            },
                        }
                    },
                    _ => sleep.await,
                }
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}
