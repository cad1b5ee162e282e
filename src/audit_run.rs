//! An audit run: every record of a case file assessed with the policy's scorer and run through
//! the detectors ([`crate::audit`]); flags in the detectors' fixed order (split admissions, then
//! single-case flags in case order, then hospital patterns), unreadable records counted.
//!
//! Two executors give the same outcome: [`reference`] (one thread over a record iterator, then
//! [`audit::audit`]) and [`parallel`] (chunked parallel reading with
//! [`crate::io::case_csv::ChunkReader`], single-case detectors per chunk, split admissions
//! scanned in patient shards on the workers). `tests/audit_run.rs` proves them equal. No file
//! I/O: the CLI and the server hand over the records and write or send the flags.

use crate::audit::{self, check_case, AuditCase, FamilyCounts, Flag, FlagKind, PatientStays};
use crate::case::Case;
use crate::io::case_csv::{ChunkReader, Layout, RejectedRecord};
use crate::io::chunks::map_chunks;
use crate::policy::Policy;
use crate::scoring::Scorer;
use std::collections::BTreeMap;

/// What an audit run found.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditOutcome {
    /// Records read (accepted + unreadable).
    pub submitted: u64,
    /// Cases assessed and audited.
    pub audited: u64,
    /// Records that could not be read as a case (`dipdrg group` names them).
    pub unreadable: u64,
    pub flags: Vec<Flag>,
}

/// The header of the flags file (with its line end).
pub const FLAGS_HEADER: &str = "kind,score,case_id,related_case_id,hospital_id,group,evidence\n";

impl AuditOutcome {
    /// The flags as CSV rows (header not included), as the `csv` crate writes them.
    pub fn flags_csv(&self) -> Vec<u8> {
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        for flag in &self.flags {
            let _ = writer.write_record([
                flag.kind.as_str(),
                &flag.score.to_string(),
                &flag.case_id,
                flag.related_case_id.as_deref().unwrap_or(""),
                &flag.hospital_id,
                &flag.group,
                &flag.evidence,
            ]);
        }
        writer.into_inner().unwrap_or_default()
    }

    /// Flags per kind.
    pub fn flags_per_kind(&self) -> BTreeMap<FlagKind, u64> {
        let mut per_kind = BTreeMap::new();
        for flag in &self.flags {
            *per_kind.entry(flag.kind).or_default() += 1;
        }
        per_kind
    }
}

/// What the detectors need of one case: its assessment under the policy.
fn assess(policy: &Policy, scorer: &Scorer, case: &Case) -> AuditCase {
    AuditCase::new(case, &scorer.classify(policy, case))
}

/// The reference executor: records in order on one thread, then every detector over all cases.
pub fn reference(policy: &Policy, scorer: &Scorer, records: impl IntoIterator<Item = Result<Case, RejectedRecord>>) -> AuditOutcome {
    let mut cases = Vec::new();
    let mut submitted = 0u64;
    let mut unreadable = 0u64;
    for record in records {
        submitted += 1;
        match record {
            Ok(case) => cases.push(assess(policy, scorer, &case)),
            Err(_) => unreadable += 1,
        }
    }
    let flags = audit::audit(&policy.audit, &cases);
    AuditOutcome { submitted, audited: cases.len() as u64, unreadable, flags }
}

/// One chunk's assessed cases, single-case flags and family counts.
struct ChunkAudit {
    cases: Vec<AuditCase>,
    case_flags: Vec<Flag>,
    counts: FamilyCounts,
    records: u64,
    unreadable: u64,
}

fn audit_chunk(policy: &Policy, scorer: &Scorer, layout: &Layout, bytes: &[u8]) -> ChunkAudit {
    let mut chunk = ChunkAudit {
        cases: Vec::with_capacity(bytes.len() / 100),
        case_flags: Vec::new(),
        counts: FamilyCounts::default(),
        records: 0,
        unreadable: 0,
    };
    let mut case = Case::default();
    let mut reader = ChunkReader::new(bytes, layout.clone(), 0);
    while let Some(item) = reader.next_into(&mut case) {
        chunk.records += 1;
        if item.is_err() {
            chunk.unreadable += 1;
            continue;
        }
        let audited = assess(policy, scorer, &case);
        chunk.case_flags.extend(check_case(&policy.audit, &audited));
        chunk.counts.add(&audited);
        chunk.cases.push(audited);
    }
    chunk
}

/// The parallel executor: `source` (positioned after the header `layout` describes) read in
/// chunks of `chunk_bytes` on `threads` workers, each assessing its cases, running the
/// single-case detectors and counting families; then the split-admission scan in `threads`
/// patient shards, one per worker. Same flags, same order as [`reference`].
pub fn parallel<R: std::io::Read>(
    policy: &Policy,
    scorer: &Scorer,
    source: R,
    layout: &Layout,
    size_hint: Option<u64>,
    threads: usize,
    chunk_bytes: usize,
) -> std::io::Result<AuditOutcome> {
    let threads = threads.max(1);
    let chunks = map_chunks(source, threads, chunk_bytes, size_hint, |_, bytes| audit_chunk(policy, scorer, layout, bytes))?;
    // The chunks' cases stay where they are: the split detector reads them in place.
    let mut parts: Vec<Vec<AuditCase>> = Vec::with_capacity(chunks.len());
    let mut case_flags = Vec::new();
    let mut counts = FamilyCounts::default();
    let (mut submitted, mut unreadable) = (0u64, 0u64);
    for chunk in chunks {
        parts.push(chunk.cases);
        case_flags.extend(chunk.case_flags);
        counts.merge(chunk.counts);
        submitted += chunk.records;
        unreadable += chunk.unreadable;
    }
    let slices: Vec<&[AuditCase]> = parts.iter().map(Vec::as_slice).collect();
    let audited = slices.iter().map(|p| p.len() as u64).sum();
    let mut stays = PatientStays::new(&slices, threads);
    let (cases, shards) = stays.shards_mut();
    let rules = &policy.audit;
    let shard_flags: Vec<Vec<Flag>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards.into_iter().map(|shard| scope.spawn(move || shard.scan(rules, cases))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    let mut flags: Vec<Flag> = shard_flags.into_iter().flatten().collect();
    flags.extend(case_flags);
    flags.extend(counts.flags(rules));
    Ok(AuditOutcome { submitted, audited, unreadable, flags })
}
