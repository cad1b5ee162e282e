//! Reading history for a catalog build: every record of each history file (one file a year,
//! oldest first) reduced to a [`HistoryCase`] under its group key (a DIP combination or a DRG),
//! or skipped with a reason counted; keys interned in order of first appearance.
//!
//! Two executors give the same outcome: [`reference`] (one thread over each file's records) and
//! [`parallel`] (each file read in chunks on worker threads with
//! [`crate::io::case_csv::ChunkReader`], chunks merged in file order). `tests/catalog_run.rs`
//! proves them equal. No file I/O: the CLI opens the files; [`crate::catalog_build`] turns the
//! outcome into scores.

use crate::case::Case;
use crate::catalog_build::HistoryCase;
use crate::io::case_csv::{ChunkReader, Layout, RejectedRecord};
use crate::io::chunks::map_chunks;
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::hash::Hash;

/// The group key of a history case, or why it has none ([`crate::catalog_build::dip_key`],
/// [`crate::catalog_build::drg_key`]).
pub type KeyOf<'a, K> = &'a (dyn Fn(&Case) -> Result<K, String> + Sync);

/// What the history files hold.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryOutcome<K> {
    /// Group keys; `keys[k]` is key `k` of the cases.
    pub keys: Vec<K>,
    /// Per file (year), its used cases in file order.
    pub years: Vec<Vec<HistoryCase>>,
    /// Skipped records by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Records read.
    pub read: u64,
}

impl<K> HistoryOutcome<K> {
    /// Cases used (every record read is used or skipped).
    pub fn used(&self) -> u64 {
        self.years.iter().map(|y| y.len() as u64).sum()
    }

    /// Skipped records.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Keys interned in order of first appearance.
struct Interner<K> {
    keys: Vec<K>,
    ids: FxHashMap<K, u32>,
}

impl<K: Hash + Eq + Clone> Interner<K> {
    fn new() -> Interner<K> {
        Interner { keys: Vec::new(), ids: FxHashMap::default() }
    }

    fn id(&mut self, key: &K) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.keys.len() as u32;
        self.keys.push(key.clone());
        self.ids.insert(key.clone(), id);
        id
    }
}

/// The rule for one record: a history case under its key, or the reason it is skipped.
fn history_case<K>(
    record: Result<&Case, &RejectedRecord>,
    hospital_levels: &FxHashMap<String, u8>,
    key_of: KeyOf<'_, K>,
) -> Result<(K, Decimal, Option<i64>, Option<u8>), String> {
    let case = record.map_err(|rejected| format!("unreadable ({})", rejected.field))?;
    let Some(cost) = case.total_cost.filter(|c| *c > Decimal::ZERO) else {
        return Err("no total_cost".into());
    };
    let key = key_of(case)?;
    let level = case.hospital_id.as_ref().and_then(|h| hospital_levels.get(h)).copied();
    Ok((key, cost, case.los, level))
}

/// The reference executor: each file's records in order on one thread.
pub fn reference<K, I>(files: Vec<I>, hospital_levels: &FxHashMap<String, u8>, key_of: KeyOf<'_, K>) -> HistoryOutcome<K>
where
    K: Hash + Eq + Clone,
    I: IntoIterator<Item = Result<Case, RejectedRecord>>,
{
    let mut interner = Interner::new();
    let mut years = Vec::new();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut read = 0u64;
    for records in files {
        let mut year = Vec::new();
        for record in records {
            read += 1;
            match history_case(record.as_ref(), hospital_levels, key_of) {
                Ok((key, cost, los, level)) => year.push(HistoryCase { key: interner.id(&key), cost, los, level }),
                Err(reason) => *skipped.entry(reason).or_default() += 1,
            }
        }
        years.push(year);
    }
    HistoryOutcome { keys: interner.keys, years, skipped, read }
}

/// One history file for the parallel executor: its source positioned after the header `layout`
/// describes, and its length when known.
pub struct HistoryFile<R> {
    pub source: R,
    pub layout: Layout,
    pub size_hint: Option<u64>,
}

/// One chunk's history: local keys, cases under local key ids, skipped records.
struct ChunkHistory<K> {
    keys: Vec<K>,
    cases: Vec<HistoryCase>,
    skipped: BTreeMap<String, u64>,
    read: u64,
}

fn chunk_history<K: Hash + Eq + Clone>(
    bytes: &[u8],
    layout: &Layout,
    hospital_levels: &FxHashMap<String, u8>,
    key_of: KeyOf<'_, K>,
) -> ChunkHistory<K> {
    let mut interner = Interner::new();
    let mut chunk = ChunkHistory { keys: Vec::new(), cases: Vec::with_capacity(bytes.len() / 100), skipped: BTreeMap::new(), read: 0 };
    let mut reader = ChunkReader::new(bytes, layout.clone(), 0);
    let mut case = Case::default();
    while let Some(item) = reader.next_into(&mut case) {
        chunk.read += 1;
        let record = match &item {
            Ok(()) => Ok(&case),
            Err(rejected) => Err(rejected),
        };
        match history_case(record, hospital_levels, key_of) {
            Ok((key, cost, los, level)) => chunk.cases.push(HistoryCase { key: interner.id(&key), cost, los, level }),
            Err(reason) => *chunk.skipped.entry(reason).or_default() += 1,
        }
    }
    chunk.keys = interner.keys;
    chunk
}

/// The parallel executor: the files one after another, each read in chunks of `chunk_bytes` on
/// `threads` workers; chunk keys merged into one interner in file and chunk order, so keys,
/// cases and counts are those of [`reference`].
pub fn parallel<K, R>(
    files: Vec<HistoryFile<R>>,
    hospital_levels: &FxHashMap<String, u8>,
    key_of: KeyOf<'_, K>,
    threads: usize,
    chunk_bytes: usize,
) -> std::io::Result<HistoryOutcome<K>>
where
    K: Hash + Eq + Clone + Send,
    R: std::io::Read,
{
    let mut interner = Interner::new();
    let mut years = Vec::new();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut read = 0u64;
    for file in files {
        let chunks = map_chunks(file.source, threads, chunk_bytes, file.size_hint, |_, bytes| {
            chunk_history(bytes, &file.layout, hospital_levels, key_of)
        })?;
        let mut year = Vec::with_capacity(chunks.iter().map(|c| c.cases.len()).sum());
        for chunk in chunks {
            let remap: Vec<u32> = chunk.keys.iter().map(|k| interner.id(k)).collect();
            year.extend(chunk.cases.into_iter().map(|mut case| {
                case.key = remap[case.key as usize];
                case
            }));
            for (reason, n) in chunk.skipped {
                *skipped.entry(reason).or_default() += n;
            }
            read += chunk.read;
        }
        years.push(year);
    }
    Ok(HistoryOutcome { keys: interner.keys, years, skipped, read })
}
