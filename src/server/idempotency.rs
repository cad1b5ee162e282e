//! Idempotent mutating calls: a `request_id` is a key scoped by caller and method
//! ([`RequestKey`]), claimed in the store before any work starts.
//!
//! - The first call with a key claims it, does the work and completes the key with its answer.
//! - A later call with the key gets that answer and changes nothing.
//! - A concurrent call with the key waits (polling the store, so it works across connections
//!   and, on PostgreSQL, across server processes) until the first completes, then answers the
//!   same; after [`WAIT`] it answers ABORTED (`REQUEST_IN_PROGRESS`): retry later. A waiting
//!   upload keeps reading its stream meanwhile ([`begin_draining`]).
//! - A call that fails releases its key before it answers, so an immediate retry finds it free.
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

impl Claimed {
    /// Releases the key now, before the caller answers: a retry sent right after the error
    /// finds the key free (a release left to [`Drop`] runs in the background and could race it).
    pub async fn release(mut self) {
        let Some(key) = self.key.take() else { return };
        let store = self.store.clone();
        let released = tokio::task::spawn_blocking(move || store.release_request(&key)).await;
        if let Ok(Err(error)) = released {
            tracing::warn!(error = %error, "an unfinished request could not be released");
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
    begin_inner::<tokio_stream::Empty<()>, (), fn(&()) -> usize>(store, role, method, request_id, None).await
}

/// [`begin`] for a client stream whose first message carried the key: while a concurrent call
/// holds the key, this call keeps reading `rest` of its stream. An unread stream holds HTTP/2
/// connection flow-control window, so waiting without reading could starve the very call being
/// waited for when both share one connection (a client retrying concurrently over one channel).
/// The records read meanwhile are kept, up to [`WAIT_BUFFER`] bytes (`size` measures one), and
/// returned: if the first call fails and frees the key, this call claims it and goes on with
/// them. Beyond the budget they are dropped: the answer is then the first call's, or ABORTED
/// (`REQUEST_ATTEMPT_FAILED`: send it again) if the first call fails.
pub async fn begin_draining<S, T>(
    store: &Arc<dyn Store>,
    role: &Role,
    method: &str,
    request_id: &str,
    rest: &mut S,
    size: impl Fn(&T) -> usize,
) -> Result<(Option<Begin>, Vec<T>), Status>
where
    S: Stream<Item = T> + Unpin,
{
    let mut kept = Kept { items: Vec::new(), bytes: 0, dropped: false, size: &size };
    let begun = begin_inner(store, role, method, request_id, Some((rest, &mut kept))).await?;
    Ok((begun, kept.items))
}

/// How many bytes of its own stream a waiting call keeps (see [`begin_draining`]).
pub const WAIT_BUFFER: usize = 16 << 20;

struct Kept<'a, T, F: Fn(&T) -> usize> {
    items: Vec<T>,
    bytes: usize,
    dropped: bool,
    size: &'a F,
}

impl<T, F: Fn(&T) -> usize> Kept<'_, T, F> {
    fn push(&mut self, item: T) {
        if self.dropped {
            return;
        }
        self.bytes = self.bytes.saturating_add((self.size)(&item));
        if self.bytes > WAIT_BUFFER {
            self.items = Vec::new();
            self.dropped = true;
        } else {
            self.items.push(item);
        }
    }
}

async fn begin_inner<S, T, F>(
    store: &Arc<dyn Store>,
    role: &Role,
    method: &str,
    request_id: &str,
    mut rest: Option<(&mut S, &mut Kept<'_, T, F>)>,
) -> Result<Option<Begin>, Status>
where
    S: Stream<Item = T> + Unpin,
    F: Fn(&T) -> usize,
{
    if request_id.is_empty() {
        return Ok(None);
    }
    check_request_id(request_id)?;
    let key = RequestKey { caller: caller(role), method: method.to_string(), request_id: request_id.to_string() };
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    let mut stream_ended = false;
    loop {
        let (claim_store, claim_key) = (store.clone(), key.clone());
        let claim = tokio::task::spawn_blocking(move || claim_store.claim_request(&claim_key, &now_rfc3339()))
            .await
            .map_err(task_failed)?
            .map_err(unavailable)?;
        match claim {
            Claim::Claimed if rest.as_ref().is_some_and(|(_, kept)| kept.dropped) => {
                // Freed before the answer, like any failed call's key: the resend finds it free.
                Claimed { store: store.clone(), key: Some(key) }.release().await;
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
                match rest.as_mut() {
                    Some((stream, kept)) if !stream_ended => loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            item = stream.next() => match item {
                                Some(item) => kept.push(item),
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
