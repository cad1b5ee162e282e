//! VersionService: table sets and region policies listed, fetched and activated by version.
//!
//! Anyone authenticated lists and fetches; the fund office activates. A policy and a table set
//! of different schemes never form the active pair: activating one keeps the other when it
//! fits, else pairs it with the only loaded version of its scheme, else fails with
//! FAILED_PRECONDITION. The active pair is stored, so a restart keeps it.

use super::auth::{role, Role};
use super::paging::{decode_token, encode_token, page_size, task_failed, unavailable};
use super::proto::{self, version_service_server::VersionService};
use super::versions::{scheme_text, PolicyVersion, Snapshot, TableSetVersion, VersionError};
use super::AppState;
use crate::policy::Scheme;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Store settings holding the active pair.
pub const ACTIVE_POLICY: &str = "active_policy";
pub const ACTIVE_TABLE_SET: &str = "active_table_set";

pub struct VersionsApi {
    pub state: Arc<AppState>,
}

fn policy_message(version: &PolicyVersion, active: &Snapshot) -> proto::RegionPolicy {
    let policy = &version.policy;
    proto::RegionPolicy {
        name: version.name.clone(),
        region: policy.region.clone(),
        version: policy.version.clone(),
        year: policy.year,
        scheme: scheme_text(policy.scheme).into(),
        fingerprint: version.fingerprint.clone(),
        path: version.path.display().to_string(),
        active: active.policy.name == version.name,
        source: version.source.clone(),
    }
}

fn table_set_message(version: &TableSetVersion, active: &Snapshot) -> proto::TableSet {
    proto::TableSet {
        name: version.name.clone(),
        display_name: version.display_name.clone(),
        kind: scheme_text(version.scheme).into(),
        fingerprint: version.fingerprint.clone(),
        path: version.path.display().to_string(),
        active: active.table_set.name == version.name,
    }
}

/// One page of `items` (in load order) after the item named by `token`.
fn page<T: Clone>(items: &[T], name: impl Fn(&T) -> &str, size: i32, token: &str) -> Result<(Vec<T>, String), Status> {
    let size = page_size(size)?;
    let start = match decode_token(token)? {
        None => 0,
        Some(after) => {
            items.iter().position(|i| name(i) == after).map(|p| p + 1).ok_or_else(|| Status::invalid_argument("stale page_token"))?
        }
    };
    let chosen: Vec<T> = items.iter().skip(start).take(size).cloned().collect();
    let next =
        if start + chosen.len() < items.len() { chosen.last().map(|i| encode_token(name(i))).unwrap_or_default() } else { String::new() };
    Ok((chosen, next))
}

fn version_status(error: VersionError) -> Status {
    match error {
        VersionError::NotFound(_) => Status::not_found(error.to_string()),
        VersionError::Mismatch { .. } => Status::failed_precondition(error.to_string()),
        VersionError::Load { .. } => Status::internal(error.to_string()),
    }
}

/// The partner of a version of `scheme`: the active partner when its scheme fits, else the only
/// loaded version of that scheme (`loaded` lists name and scheme); `None` when neither.
fn partner<'a>(active: (&'a str, Scheme), loaded: impl Iterator<Item = (&'a str, Scheme)>, scheme: Scheme) -> Option<String> {
    if active.1 == scheme {
        return Some(active.0.to_string());
    }
    let mut fitting = loaded.filter(|(_, s)| *s == scheme);
    match (fitting.next(), fitting.next()) {
        (Some((only, _)), None) => Some(only.to_string()),
        _ => None,
    }
}

fn mismatch(policy: &PolicyVersion, table_set: &TableSetVersion) -> VersionError {
    VersionError::Mismatch {
        policy: policy.name.clone(),
        policy_scheme: scheme_text(policy.policy.scheme),
        table_set: table_set.name.clone(),
        table_scheme: scheme_text(table_set.scheme),
    }
}

impl VersionsApi {
    /// Activates the pair and stores it.
    async fn activate(&self, policy: String, table_set: String) -> Result<Arc<Snapshot>, Status> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let snapshot = state.versions.activate(&policy, &table_set).map_err(version_status)?;
            state.store.put_setting(ACTIVE_POLICY, &snapshot.policy.name).map_err(unavailable)?;
            state.store.put_setting(ACTIVE_TABLE_SET, &snapshot.table_set.name).map_err(unavailable)?;
            tracing::info!(policy = %snapshot.policy.name, table_set = %snapshot.table_set.name, "activated");
            Ok(snapshot)
        })
        .await
        .map_err(task_failed)?
    }
}

fn fund_office<T>(request: &Request<T>) -> Result<(), Status> {
    match role(request)? {
        Role::FundOffice => Ok(()),
        Role::Hospital(_) => Err(Status::permission_denied("only a fund-office token may activate versions")),
    }
}

#[tonic::async_trait]
impl VersionService for VersionsApi {
    async fn list_table_sets(
        &self,
        request: Request<proto::ListVersionsRequest>,
    ) -> Result<Response<proto::ListTableSetsResponse>, Status> {
        role(&request)?;
        let request = request.into_inner();
        let versions = &self.state.versions;
        let active = versions.active();
        let (chosen, next_page_token) = page(&versions.table_sets, |t| &t.name, request.page_size, &request.page_token)?;
        let table_sets = chosen.iter().map(|t| table_set_message(t, &active)).collect();
        Ok(Response::new(proto::ListTableSetsResponse { table_sets, next_page_token }))
    }

    async fn get_table_set(&self, request: Request<proto::GetVersionRequest>) -> Result<Response<proto::TableSet>, Status> {
        role(&request)?;
        let name = request.into_inner().name;
        let version = self.state.versions.table_set(&name).ok_or_else(|| version_status(VersionError::NotFound(name)))?;
        Ok(Response::new(table_set_message(&version, &self.state.versions.active())))
    }

    async fn activate_table_set(&self, request: Request<proto::ActivateVersionRequest>) -> Result<Response<proto::TableSet>, Status> {
        fund_office(&request)?;
        let name = request.into_inner().name;
        let version = self.state.versions.table_set(&name).ok_or_else(|| version_status(VersionError::NotFound(name.clone())))?;
        let versions = &self.state.versions;
        let active = versions.active();
        let policies = versions.policies.iter().map(|p| (p.name.as_str(), p.policy.scheme));
        let policy = partner((&active.policy.name, active.policy.policy.scheme), policies, version.scheme)
            .ok_or_else(|| version_status(mismatch(&active.policy, &version)))?;
        let snapshot = self.activate(policy, version.name.clone()).await?;
        Ok(Response::new(table_set_message(&version, &snapshot)))
    }

    async fn list_policies(&self, request: Request<proto::ListVersionsRequest>) -> Result<Response<proto::ListPoliciesResponse>, Status> {
        role(&request)?;
        let request = request.into_inner();
        let versions = &self.state.versions;
        let active = versions.active();
        let (chosen, next_page_token) = page(&versions.policies, |p| &p.name, request.page_size, &request.page_token)?;
        let policies = chosen.iter().map(|p| policy_message(p, &active)).collect();
        Ok(Response::new(proto::ListPoliciesResponse { policies, next_page_token }))
    }

    async fn get_policy(&self, request: Request<proto::GetVersionRequest>) -> Result<Response<proto::RegionPolicy>, Status> {
        role(&request)?;
        let name = request.into_inner().name;
        let version = self.state.versions.policy(&name).ok_or_else(|| version_status(VersionError::NotFound(name)))?;
        Ok(Response::new(policy_message(&version, &self.state.versions.active())))
    }

    async fn activate_policy(&self, request: Request<proto::ActivateVersionRequest>) -> Result<Response<proto::RegionPolicy>, Status> {
        fund_office(&request)?;
        let name = request.into_inner().name;
        let version = self.state.versions.policy(&name).ok_or_else(|| version_status(VersionError::NotFound(name.clone())))?;
        let versions = &self.state.versions;
        let active = versions.active();
        let table_sets = versions.table_sets.iter().map(|t| (t.name.as_str(), t.scheme));
        let table_set = partner((&active.table_set.name, active.table_set.scheme), table_sets, version.policy.scheme)
            .ok_or_else(|| version_status(mismatch(&version, &active.table_set)))?;
        let snapshot = self.activate(version.name.clone(), table_set).await?;
        Ok(Response::new(policy_message(&version, &snapshot)))
    }
}
