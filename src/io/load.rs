//! Loading from disk: the thin file-reading side of the table sets, DIP catalogs, DRG weights,
//! region policies and scorers. Each loader reads bytes or text and hands them to the core's
//! parse/build function; nothing here decides anything about the data.

use crate::dip::catalog::{DipCatalog, OPTIONAL_FILES as DIP_OPTIONAL_FILES};
use crate::drg::tables::{FILES as DRG_FILES, OPTIONAL_FILES as DRG_OPTIONAL_FILES};
use crate::drg::DrgTableSet;
use crate::policy::{Policy, PolicyError, Scheme};
use crate::scoring::{DipTerms, DrgWeights, Scorer, WeightIndex};
use crate::tables::source::{SourceTable, TableError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Reads the named CSV files of a table-set directory into memory, keyed by file name. `required`
/// files must exist; `optional` ones read as absent when missing. Other files in the directory
/// (READMEs, test cases) are not read.
pub fn read_table_dir(dir: &Path, required: &[&str], optional: &[&str]) -> Result<BTreeMap<String, SourceTable>, TableError> {
    if !dir.is_dir() {
        return Err(TableError::Io { file: dir.display().to_string(), message: "not a directory".to_string() });
    }
    let mut tables = BTreeMap::new();
    for &name in required.iter().chain(optional) {
        let path = dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && optional.contains(&name) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(TableError::MissingFile { file: path.display().to_string() }),
            Err(e) => return Err(TableError::Io { file: path.display().to_string(), message: e.to_string() }),
        };
        tables.insert(name.to_string(), SourceTable::parse(name, &bytes)?);
    }
    Ok(tables)
}

/// A directory's name (after resolving `.` and links), for naming the table set it holds.
fn dir_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| dir.display().to_string())
}

impl DrgTableSet {
    /// Loads a table-set directory. `name` defaults to the directory's name.
    pub fn load_dir(dir: &Path) -> Result<DrgTableSet, TableError> {
        let required: Vec<&str> = DRG_FILES.iter().map(|(f, _, _)| *f).filter(|f| !DRG_OPTIONAL_FILES.contains(f)).collect();
        let sources = read_table_dir(dir, &required, DRG_OPTIONAL_FILES)?;
        DrgTableSet::build(dir_name(dir), &sources)
    }
}

impl DipCatalog {
    /// Loads a DIP catalog directory (`catalog.csv`, `procedure_types.csv`, optional files).
    pub fn load_dir(dir: &Path) -> Result<DipCatalog, TableError> {
        let sources = read_table_dir(dir, &["catalog.csv", "procedure_types.csv"], DIP_OPTIONAL_FILES)?;
        DipCatalog::build(dir_name(dir), &sources)
    }
}

impl DrgWeights {
    /// Reads a relative-weights file.
    pub fn load(path: &Path) -> Result<DrgWeights, TableError> {
        let bytes = std::fs::read(path).map_err(|e| TableError::Io { file: path.display().to_string(), message: e.to_string() })?;
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().to_string());
        DrgWeights::parse(&SourceTable::parse(&name, &bytes)?)
    }
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Syntax(format!("cannot read {}: {e}", path.display())))?;
        Policy::parse(&text)
    }
}

impl Scorer {
    /// Loads what a policy's scheme needs: `tables` is the DRG table set (DRG) or the DIP catalog
    /// directory (DIP); DRG weights come from the policy's `drg_weights`, relative to `policy_path`.
    pub fn load(policy: &Policy, policy_path: &Path, tables: &Path) -> Result<Scorer, TableError> {
        match policy.scheme {
            Scheme::Drg => {
                let weights_name = policy.drg_weights.clone().unwrap_or_default();
                let weights_path = policy_path.parent().unwrap_or(Path::new(".")).join(weights_name);
                let tables = DrgTableSet::load_dir(tables)?;
                let weights = WeightIndex::new(&tables, &DrgWeights::load(&weights_path)?);
                Ok(Scorer::Drg { tables: Arc::new(tables), weights: Arc::new(weights) })
            }
            Scheme::Dip => {
                let catalog = DipCatalog::load_dir(tables)?;
                let terms = DipTerms::resolve(policy, &catalog)?;
                Ok(Scorer::Dip { catalog: Arc::new(catalog), terms: Arc::new(terms) })
            }
        }
    }
}
