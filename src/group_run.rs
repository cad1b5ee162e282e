//! A grouping run: every record of a case file grouped with a DRG table set, one output row per
//! case the scheme judged (whatever its status) and one reject per record that could not be read
//! or repeats an earlier case id, both in input order.
//!
//! Two executors give byte-identical outcomes: [`reference`] (one thread over a record iterator,
//! rows written by the `csv` crate) and [`parallel`] (chunked parallel reading with
//! [`crate::io::case_csv::ChunkReader`], rows assembled by hand, merged in input order).
//! `tests/group_run.rs` proves them equal on the demo data and on perturbed inputs. No file I/O:
//! the CLI opens the files and writes the outcome.

use crate::case::Case;
use crate::drg::trace::render;
use crate::drg::{group, DrgTableSet, GroupStatus, MappingMode, NoTrace, Trace};
use crate::io::case_csv::{ChunkReader, Layout, RejectedRecord};
use crate::io::chunks::map_chunks;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap};

/// How cases are grouped and what each row carries.
#[derive(Debug, Clone, Copy)]
pub struct GroupOptions {
    pub mode: MappingMode,
    /// Add a `trace` column: every grouping step and why.
    pub trace: bool,
}

impl GroupOptions {
    /// The output's header (with its line end).
    pub fn header(&self) -> &'static str {
        if self.trace {
            "case_id,status,mdc,adrg,drg,drg_name,detail,trace\n"
        } else {
            "case_id,status,mdc,adrg,drg,drg_name,detail\n"
        }
    }
}

/// A record that was not grouped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReject {
    pub record: u64,
    /// The line the record starts on (empty for a repeated id, which is found after reading).
    pub line: Option<u64>,
    pub case_id: String,
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl GroupReject {
    fn unreadable(rejected: RejectedRecord) -> GroupReject {
        GroupReject {
            record: rejected.record,
            line: Some(rejected.line),
            case_id: rejected.case_id.unwrap_or_default(),
            field: rejected.field,
            value: rejected.value,
            reason: rejected.reason,
        }
    }

    fn repeated(record: u64, case_id: &str, first: u64) -> GroupReject {
        GroupReject {
            record,
            line: None,
            case_id: case_id.to_string(),
            field: "case_id".into(),
            value: case_id.to_string(),
            reason: format!("duplicates the case_id of record {first}"),
        }
    }
}

/// What a grouping run produced.
#[derive(Debug, PartialEq)]
pub struct GroupOutcome {
    pub submitted: u64,
    pub accepted: u64,
    /// The output rows (CSV, header not included), in input order.
    pub rows: Vec<u8>,
    pub rejects: Vec<GroupReject>,
    pub by_status: BTreeMap<GroupStatus, u64>,
    /// Grouped (SUCCESS) cases per MDC code.
    pub by_mdc: BTreeMap<String, u64>,
}

/// The header of the rejects file (with its line end).
pub const REJECTS_HEADER: &str = "record,line,case_id,field,value,reason\n";

impl GroupOutcome {
    /// The rejects as CSV rows (header not included).
    pub fn rejects_csv(&self) -> Vec<u8> {
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        for r in &self.rejects {
            let line = r.line.map(|l| l.to_string()).unwrap_or_default();
            let _ = writer.write_record([r.record.to_string().as_str(), &line, &r.case_id, &r.field, &r.value, &r.reason]);
        }
        writer.into_inner().unwrap_or_default()
    }
}

/// Groups one case and hands its row's cells to `emit`, in order (`scratch` holds the detail and
/// trace texts); returns its status and MDC code.
fn group_case<'t>(
    tables: &'t DrgTableSet,
    case: &Case,
    options: GroupOptions,
    trace: &mut Trace,
    scratch: &mut String,
    mut emit: impl FnMut(&str),
) -> (GroupStatus, &'t str) {
    let result = if options.trace {
        trace.steps.clear();
        group(tables, case, options.mode, trace)
    } else {
        group(tables, case, options.mode, &mut NoTrace)
    };
    let mdc = result.mdc_code(tables);
    for cell in
        [case.case_id.as_str(), result.status.as_str(), mdc, result.adrg_code(tables), result.drg_code(tables), result.drg_name(tables)]
    {
        emit(cell);
    }
    scratch.clear();
    result.describe_into(scratch, tables, case);
    emit(scratch);
    if options.trace {
        scratch.clear();
        for (i, step) in render(&trace.steps, tables, case).iter().enumerate() {
            if i > 0 {
                scratch.push_str("; ");
            }
            scratch.push_str(step);
        }
        emit(scratch);
    }
    (result.status, mdc)
}

fn count(outcome: &mut GroupOutcome, status: GroupStatus, mdc: &str) {
    *outcome.by_status.entry(status).or_default() += 1;
    if status == GroupStatus::Success {
        *outcome.by_mdc.entry(mdc.to_string()).or_default() += 1;
    }
}

/// The reference executor: records in order on one thread, rows written by the `csv` crate.
pub fn reference(
    tables: &DrgTableSet,
    options: GroupOptions,
    records: impl IntoIterator<Item = Result<Case, RejectedRecord>>,
) -> GroupOutcome {
    let mut outcome = GroupOutcome {
        submitted: 0,
        accepted: 0,
        rows: Vec::new(),
        rejects: Vec::new(),
        by_status: BTreeMap::new(),
        by_mdc: BTreeMap::new(),
    };
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let mut first_seen: HashMap<String, u64> = HashMap::new();
    let mut trace = Trace::default();
    for record in records {
        outcome.submitted += 1;
        let case = match record {
            Ok(case) => case,
            Err(rejected) => {
                outcome.rejects.push(GroupReject::unreadable(rejected));
                continue;
            }
        };
        if let Some(&first) = first_seen.get(&case.case_id) {
            outcome.rejects.push(GroupReject::repeated(outcome.submitted, &case.case_id, first));
            continue;
        }
        first_seen.insert(case.case_id.clone(), outcome.submitted);
        outcome.accepted += 1;
        let mut cells: Vec<String> = Vec::with_capacity(8);
        let (status, mdc) = group_case(tables, &case, options, &mut trace, &mut String::new(), |cell| cells.push(cell.to_string()));
        count(&mut outcome, status, mdc);
        let _ = writer.write_record(&cells);
    }
    outcome.rows = writer.into_inner().unwrap_or_default();
    outcome
}

/// One chunk's rows, ids and rejects.
struct ChunkGroups<'t> {
    records: u64,
    /// Lines in the chunk.
    lines: u64,
    rows: Vec<u8>,
    row_ends: Vec<u32>,
    /// Per grouped case: its record number in the chunk, id, status and MDC code.
    cases: Vec<(u64, String, GroupStatus, &'t str)>,
    rejects: Vec<GroupReject>,
}

/// A CSV cell as the `csv` crate writes it: quoted when it holds a comma, quote, CR or LF (or
/// is the only, empty cell of a record), quotes doubled.
fn push_cell(out: &mut Vec<u8>, text: &str) {
    if text.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &b in text.as_bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

fn group_chunk<'t>(tables: &'t DrgTableSet, options: GroupOptions, layout: &Layout, bytes: &[u8]) -> ChunkGroups<'t> {
    let mut chunk = ChunkGroups {
        records: 0,
        lines: memchr::memchr_iter(b'\n', bytes).count() as u64,
        rows: Vec::with_capacity(bytes.len()),
        row_ends: Vec::new(),
        cases: Vec::new(),
        rejects: Vec::new(),
    };
    let mut reader = ChunkReader::new(bytes, layout.clone(), 0);
    let mut case = Case::default();
    let mut trace = Trace::default();
    let mut scratch = String::new();
    while let Some(item) = reader.next_into(&mut case) {
        chunk.records += 1;
        if let Err(rejected) = item {
            chunk.rejects.push(GroupReject::unreadable(rejected));
            continue;
        }
        let rows = &mut chunk.rows;
        let mut first = true;
        let (status, mdc) = group_case(tables, &case, options, &mut trace, &mut scratch, |cell| {
            if !std::mem::take(&mut first) {
                rows.push(b',');
            }
            push_cell(rows, cell);
        });
        chunk.rows.push(b'\n');
        chunk.row_ends.push(chunk.rows.len() as u32);
        chunk.cases.push((chunk.records, std::mem::take(&mut case.case_id), status, mdc));
    }
    chunk
}

/// The parallel executor: `source` (positioned after the header `layout` describes) read in
/// chunks of `chunk_bytes` on `threads` workers, grouped, merged in input order.
pub fn parallel<R: std::io::Read>(
    tables: &DrgTableSet,
    options: GroupOptions,
    source: R,
    layout: &Layout,
    size_hint: Option<u64>,
    threads: usize,
    chunk_bytes: usize,
) -> std::io::Result<GroupOutcome> {
    let chunks = map_chunks(source, threads, chunk_bytes, size_hint, |_, bytes| group_chunk(tables, options, layout, bytes))?;
    let mut outcome = GroupOutcome {
        submitted: 0,
        accepted: 0,
        rows: Vec::with_capacity(chunks.iter().map(|c| c.rows.len()).sum()),
        rejects: Vec::new(),
        by_status: BTreeMap::new(),
        by_mdc: BTreeMap::new(),
    };
    let mut first_seen: FxHashMap<&str, u64> = FxHashMap::default();
    // Line 1 is the header.
    let mut lines_before = 1u64;
    for chunk in &chunks {
        let records_before = outcome.submitted;
        let mut rejects = chunk.rejects.iter().cloned().map(|mut r| {
            r.record += records_before;
            r.line = r.line.map(|line| line + lines_before);
            r
        });
        let mut next_reject = rejects.next();
        let mut from = 0usize;
        for ((record, id, status, mdc), &end) in chunk.cases.iter().zip(&chunk.row_ends) {
            let record = records_before + record;
            while let Some(r) = next_reject.take_if(|r| r.record < record) {
                outcome.rejects.push(r);
                next_reject = rejects.next();
            }
            let row = &chunk.rows[from..end as usize];
            from = end as usize;
            if let Some(&first) = first_seen.get(id.as_str()) {
                outcome.rejects.push(GroupReject::repeated(record, id, first));
                continue;
            }
            first_seen.insert(id, record);
            outcome.accepted += 1;
            count(&mut outcome, *status, mdc);
            outcome.rows.extend_from_slice(row);
        }
        outcome.rejects.extend(next_reject);
        outcome.rejects.extend(rejects);
        outcome.submitted += chunk.records;
        lines_before += chunk.lines;
    }
    Ok(outcome)
}
