//! Table sets and region policies by version, and the active pair.
//!
//! Every policy file and table set named in the configuration is loaded at start and never
//! edited. A version's name is its content fingerprint (`policies/{fingerprint}`,
//! `tableSets/{fingerprint}`), so a name always means the same rules. The active pair is an
//! immutable [`Snapshot`] (policy, table set, scorer) behind an `Arc`: activation builds a new
//! snapshot and swaps it whole; requests in flight finish on the one they started with.

use crate::policy::{Policy, Scheme};
use crate::scoring::Scorer;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A loaded region policy.
#[derive(Debug)]
pub struct PolicyVersion {
    /// `policies/{fingerprint}`.
    pub name: String,
    pub fingerprint: String,
    pub path: PathBuf,
    /// The file as loaded.
    pub source: String,
    pub policy: Arc<Policy>,
}

/// A loaded table set (its tables are loaded again, into a scorer, when it is activated).
#[derive(Debug)]
pub struct TableSetVersion {
    /// `tableSets/{fingerprint}`.
    pub name: String,
    pub display_name: String,
    pub scheme: Scheme,
    pub fingerprint: String,
    pub path: PathBuf,
}

/// What a request prices with: one policy, one table set, and the scorer built from both.
#[derive(Debug)]
pub struct Snapshot {
    pub policy: Arc<PolicyVersion>,
    pub table_set: Arc<TableSetVersion>,
    pub scorer: Arc<Scorer>,
}

impl Snapshot {
    pub fn policy(&self) -> &Policy {
        &self.policy.policy
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("{0} is not a loaded version (list them with ListPolicies / ListTableSets)")]
    NotFound(String),
    #[error("{policy} is a {policy_scheme} policy but {table_set} is a {table_scheme} table set: activate a matching pair")]
    Mismatch { policy: String, policy_scheme: &'static str, table_set: String, table_scheme: &'static str },
    #[error("loading {path}: {message}")]
    Load { path: String, message: String },
}

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Drg => "drg",
        Scheme::Dip => "dip",
    }
}

/// FNV-1a over a sequence of byte strings (each followed by a separator), shown as hex.
#[derive(Default)]
pub struct Fingerprint(fnv::FnvHasher);

impl Fingerprint {
    pub fn feed(&mut self, part: &[u8]) {
        use std::hash::Hasher;
        self.0.write(part);
        self.0.write(&[0xff]);
    }

    pub fn hex(&self) -> String {
        use std::hash::Hasher;
        format!("{:016x}", self.0.finish())
    }
}

fn fnv_hex(parts: &[&[u8]]) -> String {
    let mut fingerprint = Fingerprint::default();
    for part in parts {
        fingerprint.feed(part);
    }
    fingerprint.hex()
}

/// The loaded versions and the active snapshot.
#[derive(Debug)]
pub struct Versions {
    pub policies: Vec<Arc<PolicyVersion>>,
    pub table_sets: Vec<Arc<TableSetVersion>>,
    active: RwLock<Arc<Snapshot>>,
}

fn load_policy(path: &Path) -> Result<PolicyVersion, VersionError> {
    let load = |message: String| VersionError::Load { path: path.display().to_string(), message };
    let source = std::fs::read_to_string(path).map_err(|e| load(e.to_string()))?;
    let policy = Policy::load(path).map_err(|e| load(e.to_string()))?;
    // A DRG policy's weights are part of its rules.
    let weights = match &policy.drg_weights {
        Some(name) => {
            let weights_path = path.parent().unwrap_or(Path::new(".")).join(name);
            std::fs::read(&weights_path).map_err(|e| load(format!("{}: {e}", weights_path.display())))?
        }
        None => Vec::new(),
    };
    let fingerprint = fnv_hex(&[source.as_bytes(), &weights]);
    Ok(PolicyVersion { name: format!("policies/{fingerprint}"), fingerprint, path: path.to_path_buf(), source, policy: Arc::new(policy) })
}

fn load_table_set(path: &Path) -> Result<TableSetVersion, VersionError> {
    let load = |message: String| VersionError::Load { path: path.display().to_string(), message };
    let (scheme, fingerprint) = if path.join("catalog.csv").exists() {
        (Scheme::Dip, crate::dip::DipCatalog::load_dir(path).map_err(|e| load(e.to_string()))?.fingerprint)
    } else {
        (Scheme::Drg, crate::drg::DrgTableSet::load_dir(path).map_err(|e| load(e.to_string()))?.fingerprint)
    };
    let display_name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().to_string());
    Ok(TableSetVersion { name: format!("tableSets/{fingerprint}"), display_name, scheme, fingerprint, path: path.to_path_buf() })
}

impl Versions {
    /// Loads every policy and table set; the first of each is active unless `active` names a
    /// loaded pair (the one stored by an earlier activation).
    pub fn load(policies: &[PathBuf], table_sets: &[PathBuf], active: Option<(&str, &str)>) -> Result<Versions, VersionError> {
        let mut loaded_policies: Vec<Arc<PolicyVersion>> = Vec::new();
        for path in policies {
            let version = load_policy(path)?;
            if !loaded_policies.iter().any(|p| p.name == version.name) {
                loaded_policies.push(Arc::new(version));
            }
        }
        let mut loaded_tables: Vec<Arc<TableSetVersion>> = Vec::new();
        for path in table_sets {
            let version = load_table_set(path)?;
            if !loaded_tables.iter().any(|t| t.name == version.name) {
                loaded_tables.push(Arc::new(version));
            }
        }
        let (Some(first_policy), Some(first_tables)) = (loaded_policies.first(), loaded_tables.first()) else {
            return Err(VersionError::NotFound("a policy and a table set".into()));
        };
        let default = (first_policy.name.clone(), first_tables.name.clone());
        let mut versions = Versions {
            active: RwLock::new(Arc::new(Snapshot {
                policy: first_policy.clone(),
                table_set: first_tables.clone(),
                scorer: Arc::new(build_scorer(first_policy, first_tables)?),
            })),
            policies: loaded_policies,
            table_sets: loaded_tables,
        };
        let chosen =
            active.and_then(|(p, t)| versions.snapshot(p, t).ok()).map(Ok).unwrap_or_else(|| versions.snapshot(&default.0, &default.1))?;
        versions.active = RwLock::new(Arc::new(chosen));
        Ok(versions)
    }

    pub fn active(&self) -> Arc<Snapshot> {
        match self.active.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn policy(&self, name: &str) -> Option<Arc<PolicyVersion>> {
        self.policies.iter().find(|p| p.name == name).cloned()
    }

    pub fn table_set(&self, name: &str) -> Option<Arc<TableSetVersion>> {
        self.table_sets.iter().find(|t| t.name == name).cloned()
    }

    /// A snapshot of a loaded pair (not activated): what a re-run of an old run prices with.
    pub fn snapshot(&self, policy: &str, table_set: &str) -> Result<Snapshot, VersionError> {
        let policy = self.policy(policy).ok_or_else(|| VersionError::NotFound(policy.to_string()))?;
        let table_set = self.table_set(table_set).ok_or_else(|| VersionError::NotFound(table_set.to_string()))?;
        let active = self.active();
        // The active pair's scorer serves again when nothing changed.
        if active.policy.name == policy.name && active.table_set.name == table_set.name {
            return Ok(Snapshot { policy, table_set, scorer: active.scorer.clone() });
        }
        let scorer = Arc::new(build_scorer(&policy, &table_set)?);
        Ok(Snapshot { policy, table_set, scorer })
    }

    /// Makes `policy` and `table_set` the active pair; returns the new snapshot.
    pub fn activate(&self, policy: &str, table_set: &str) -> Result<Arc<Snapshot>, VersionError> {
        let snapshot = Arc::new(self.snapshot(policy, table_set)?);
        match self.active.write() {
            Ok(mut guard) => *guard = snapshot.clone(),
            Err(poisoned) => *poisoned.into_inner() = snapshot.clone(),
        }
        Ok(snapshot)
    }
}

fn build_scorer(policy: &PolicyVersion, table_set: &TableSetVersion) -> Result<Scorer, VersionError> {
    if policy.policy.scheme != table_set.scheme {
        return Err(VersionError::Mismatch {
            policy: policy.name.clone(),
            policy_scheme: scheme_name(policy.policy.scheme),
            table_set: table_set.name.clone(),
            table_scheme: scheme_name(table_set.scheme),
        });
    }
    Scorer::load(&policy.policy, &policy.path, &table_set.path)
        .map_err(|e| VersionError::Load { path: table_set.path.display().to_string(), message: e.to_string() })
}

/// `drg` or `dip`.
pub fn scheme_text(scheme: Scheme) -> &'static str {
    scheme_name(scheme)
}
