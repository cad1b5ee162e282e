//! The parallel executor: the same run as [`super::reference`], fast enough for a city's year
//! (~10M cases in seconds).
//!
//! Cases are read in parallel chunks and settled by the workers with [`super::settle_case`];
//! results are merged in input order, so every output is byte-identical whatever the thread
//! count. Grouping a case is a few lookups in tables far larger than the cache, so a worker keeps
//! two cases in flight — while it settles one, the next is already parsed and the cache lines its
//! lookups need are on their way (index slots, then code facts, then the principal's rules).
//! Totals are summed per worker in a dense (hospital, fund, month) grid, repeated ids are found
//! after the merge (and taken out of the totals), and `cases.csv` lines are kept per chunk and
//! written in pieces that stay in cache between assembling and writing.

use super::{
    conclude, id_hash, note_seen, push_amount, refuse_over_quota, repeated, settle_case, unknown_annotations, Application, CaseLines,
    Outcome, Prepared, Rejected, Request, SeenIds, SettleError,
};
use crate::case::{Case, Fund};
use crate::io::case_csv::{ChunkReader, Layout};
use crate::io::chunks::map_chunks_with;
use crate::settlement::{self, MonthlyTotals, SettlementCase};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

/// What a worker hands back for one chunk: compact settlement records, a hash of each case id
/// (for duplicate checks), and the output rows (without their amount) as text. A row starts
/// with its case id, which is where a duplicate check reads the id itself.
struct ChunkResult {
    records: u64,
    /// Per accepted case, in chunk order.
    cases: Vec<SettlementCase>,
    /// [`id_hash`] of each case id.
    id_hashes: Vec<u64>,
    /// Special-review applications (few): the index of the case in `cases`, and how it settles
    /// when the application is refused.
    applications: Vec<(u32, Box<Application>)>,
    rows: Vec<u8>,
    /// End offset of each row in `rows`.
    row_ends: Vec<u32>,
    rejected: Vec<Rejected>,
    /// The records that annotations name (few): see [`super::note_seen`].
    seen: SeenIds,
}

/// What a worker sums over all its chunks: the settlement totals per (hospital, fund, month) as a
/// dense grid. Exact sums, so which worker took which chunk does not matter; repeats and refused
/// special-review applications are taken out after the merge, when they are known.
struct WorkerTotals {
    grid: Vec<settlement::Totals>,
}

impl WorkerTotals {
    fn new(hospitals: usize) -> WorkerTotals {
        WorkerTotals { grid: vec![settlement::Totals::default(); hospitals * 24] }
    }
}

impl ChunkResult {
    /// The case id of the i-th accepted case: the first field of its row, unquoted.
    fn id(&self, i: usize) -> std::borrow::Cow<'_, str> {
        let start = if i == 0 { 0 } else { self.row_ends[i - 1] as usize };
        let row = std::str::from_utf8(&self.rows[start..self.row_ends[i] as usize]).unwrap_or_default();
        match row.strip_prefix('"') {
            // A quoted id: up to the closing quote that is not doubled.
            Some(quoted) => {
                let mut id = String::new();
                let mut chars = quoted.chars().peekable();
                while let Some(c) = chars.next() {
                    match (c, chars.peek()) {
                        ('"', Some('"')) => {
                            id.push('"');
                            chars.next();
                        }
                        ('"', _) => break,
                        _ => id.push(c),
                    }
                }
                std::borrow::Cow::Owned(id)
            }
            None => std::borrow::Cow::Borrowed(row.split(',').next().unwrap_or_default()),
        }
    }
}

/// Settles one parsed case (record `record` of its chunk, `hash` its [`id_hash`]) into `result`.
fn settle_into(prepared: &Prepared<'_>, result: &mut ChunkResult, row: &mut String, case: &Case, record: u64, hash: u64) {
    if prepared.listed.might_hold(hash) {
        note_seen(&mut result.seen, prepared.request.annotations, &case.case_id, case.hospital_id.as_deref());
    }
    match settle_case(prepared, case, hash, row) {
        Ok(settled) => {
            if let Some(application) = settled.application {
                result.applications.push((result.cases.len() as u32, application));
            }
            result.rows.extend_from_slice(row.as_bytes());
            result.row_ends.push(result.rows.len() as u32);
            result.cases.push(settled.case);
            result.id_hashes.push(hash);
        }
        Err(refusal) => result.rejected.push(refusal.into_rejected(record, &case.case_id)),
    }
}

fn process_chunk(prepared: &Prepared<'_>, layout: &Layout, sums: &mut WorkerTotals, bytes: &[u8]) -> ChunkResult {
    let scorer = prepared.request.scorer;
    let expected = bytes.len() / 100 + 16;
    let mut result = ChunkResult {
        records: 0,
        cases: Vec::with_capacity(expected),
        id_hashes: Vec::with_capacity(expected),
        applications: Vec::new(),
        rows: Vec::with_capacity(bytes.len()),
        row_ends: Vec::with_capacity(expected),
        rejected: Vec::new(),
        seen: SeenIds::default(),
    };
    let mut row = String::with_capacity(256);
    // Two cases in flight: the next record is parsed, and the cache lines its lookups will need
    // are requested (prefetched), before the one parsed last time is settled — so those misses
    // overlap the settling instead of stalling it.
    let mut cases = [Case::default(), Case::default()];
    // The slot the next record is parsed into; the other one holds the case waiting, if any.
    let mut next = 0;
    let mut waiting: Option<(u64, u64)> = None;
    let mut reader = ChunkReader::new(bytes, layout.clone(), 0);
    loop {
        if waiting.is_some() {
            scorer.prefetch_facts(&cases[1 - next]);
        }
        let item = reader.next_into(&mut cases[next]);
        let done = item.is_none();
        let mut parsed = None;
        if let Some(item) = item {
            result.records += 1;
            match item {
                Ok(()) => {
                    let hash = id_hash(&cases[next].case_id);
                    scorer.prefetch(&cases[next]);
                    prepared.prefetch_listed(hash);
                    parsed = Some((result.records, hash));
                }
                Err(r) => {
                    if let Some(id) = r.case_id.as_deref() {
                        note_seen(&mut result.seen, prepared.request.annotations, id, None);
                    }
                    result.rejected.push(Rejected {
                        record: result.records,
                        case_id: r.case_id.unwrap_or_default(),
                        field: r.field,
                        value: r.value,
                        reason: r.reason,
                        code: super::rejection_code::UNREADABLE,
                    })
                }
            }
        }
        if let Some((record, hash)) = waiting.take() {
            scorer.prefetch_rules(&cases[1 - next]);
            settle_into(prepared, &mut result, &mut row, &cases[1 - next], record, hash);
        }
        if let Some(waits) = parsed {
            next = 1 - next;
            waiting = Some(waits);
        }
        if done {
            break;
        }
    }
    // A settled case's rejection can follow the next record's parse rejection.
    result.rejected.sort_by_key(|r| r.record);
    // Totals in one pass after the chunk: the grid's cells are scattered over a megabyte, and a
    // tight loop overlaps their cache misses where the per-case work above would wait on each.
    for case in &result.cases {
        sums.grid[grid_slot(case.hospital, case.fund, case.month)].add(case);
    }
    result
}

/// A case's cell in a chunk's dense (hospital, fund, month) totals.
fn grid_slot(hospital: u32, fund: Fund, month: u8) -> usize {
    (hospital as usize * 2 + usize::from(fund == Fund::Resident)) * 12 + usize::from(month.clamp(1, 12)) - 1
}

/// The (hospital, fund, month) of a cell of the totals grid: [`grid_slot`] undone.
fn grid_key(slot: usize) -> (u32, Fund, u32) {
    let (statement, month) = (slot / 12, slot % 12 + 1);
    let fund = if statement % 2 == 1 { Fund::Resident } else { Fund::Employee };
    ((statement / 2) as u32, fund, month as u32)
}

/// `work(0..n)` on two threads (even and odd indices), results in index order.
fn on_two_threads<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let run = |parity: usize| (parity..n).step_by(2).map(&work).collect::<Vec<T>>();
    let (even, odd) = std::thread::scope(|scope| {
        let other = scope.spawn(|| run(1));
        (run(0), other.join().ok())
    });
    let odd = odd.unwrap_or_else(|| run(1));
    let mut out = Vec::with_capacity(n);
    let (mut even, mut odd) = (even.into_iter(), odd.into_iter());
    for i in 0..n {
        if let Some(item) = if i % 2 == 0 { even.next() } else { odd.next() } {
            out.push(item);
        }
    }
    out
}

/// Writes all of `bytes` at `offset` (the file's own position is not used), so that two threads
/// can fill one file.
#[cfg(unix)]
pub fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(not(unix))]
pub fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, Write};
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock();
    let mut file = file;
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// Finds repeated case ids: for each later occurrence, the global index of the first. Keys are
/// spread over 256 buckets by the hash's top byte (one counting pass, one scatter), and each
/// bucket — small enough to stay in cache — goes through a hash table on one of two threads; ids
/// are compared whenever hashes are equal, so a hash collision never merges two cases.
fn find_repeats(chunks: &[ChunkResult], starts: &[usize]) -> FxHashMap<u32, u32> {
    const BUCKETS: usize = 256;
    let bucket = |hash: u64| (hash >> 56) as usize;
    let locate = |global: u32| {
        let chunk = starts.partition_point(|&s| s <= global as usize) - 1;
        chunks[chunk].id(global as usize - starts[chunk])
    };
    let mut bounds = [0usize; BUCKETS + 1];
    for chunk in chunks {
        for &hash in &chunk.id_hashes {
            bounds[bucket(hash) + 1] += 1;
        }
    }
    for b in 0..BUCKETS {
        bounds[b + 1] += bounds[b];
    }
    let mut keys: Vec<(u64, u32)> = vec![(0, 0); bounds[BUCKETS]];
    let mut next = bounds;
    for (chunk, &start) in chunks.iter().zip(starts) {
        for (i, &hash) in chunk.id_hashes.iter().enumerate() {
            let b = bucket(hash);
            keys[next[b]] = (hash, (start + i) as u32);
            next[b] += 1;
        }
    }
    // One bucket through a small open-addressing table (in cache): keys arrive in
    // ascending index order, so the one found in the table is the earlier occurrence. Equal
    // hashes are confirmed by comparing the ids; a collision probes on as a different key.
    let scan = |b: usize| -> Vec<(u32, u32)> {
        const EMPTY: u32 = u32::MAX;
        let keys = &keys[bounds[b]..bounds[b + 1]];
        let size = (keys.len() * 2).max(16).next_power_of_two();
        let mut table = vec![(0u64, EMPTY); size];
        let mask = size - 1;
        let mut repeats = Vec::new();
        for &(hash, index) in keys {
            // The top byte chose the bucket: the low bits choose the slot.
            let mut at = hash as usize & mask;
            loop {
                let (seen_hash, seen_index) = table[at];
                if seen_index == EMPTY {
                    table[at] = (hash, index);
                    break;
                }
                if seen_hash == hash && locate(seen_index) == locate(index) {
                    repeats.push((index, seen_index));
                    break;
                }
                at = (at + 1) & mask;
            }
        }
        repeats
    };
    on_two_threads(BUCKETS, scan).into_iter().flatten().collect()
}

/// The `cases.csv` lines of a parallel run: each chunk's rows (the repeats among them skipped)
/// and each kept row's amount.
pub struct ParallelLines {
    chunks: Vec<ChunkResult>,
    /// Global index of each chunk's first accepted case (repeats included).
    starts: Vec<usize>,
    repeats: FxHashMap<u32, u32>,
    /// Each chunk's amounts as text (`,amount\n` per kept row), with each one's end and the
    /// chunk's length in the file.
    texts: Vec<(Vec<u8>, Vec<u32>, u64)>,
    /// Rows replaced by global index: the cases whose special-review application was refused.
    replaced: FxHashMap<u32, String>,
}

impl ParallelLines {
    fn kept(&self, global: usize) -> bool {
        self.repeats.is_empty() || !self.repeats.contains_key(&(global as u32))
    }

    /// Chunk `c`'s kept rows with their amounts, handed to `emit` a piece at a time.
    fn assemble(
        &self,
        c: usize,
        buffer: &mut Vec<u8>,
        piece: usize,
        mut emit: impl FnMut(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let chunk = &self.chunks[c];
        let (text, ends, _) = &self.texts[c];
        let (mut from, mut text_from, mut kept_index) = (0usize, 0usize, 0usize);
        for (i, &end) in chunk.row_ends.iter().enumerate() {
            let end = end as usize;
            if self.kept(self.starts[c] + i) {
                match self.replaced.get(&((self.starts[c] + i) as u32)) {
                    Some(row) => buffer.extend_from_slice(row.as_bytes()),
                    None => buffer.extend_from_slice(&chunk.rows[from..end]),
                }
                let text_end = ends[kept_index] as usize;
                buffer.extend_from_slice(&text[text_from..text_end]);
                text_from = text_end;
                kept_index += 1;
                if buffer.len() >= piece {
                    emit(buffer)?;
                }
            }
            from = end;
        }
        if !buffer.is_empty() {
            emit(buffer)?;
        }
        Ok(())
    }
}

impl CaseLines for ParallelLines {
    fn to_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buffer = Vec::new();
        for c in 0..self.chunks.len() {
            let _ = self.assemble(c, &mut buffer, usize::MAX, |piece| {
                all.append(piece);
                Ok(())
            });
        }
        all
    }

    /// Both of two threads assemble every other chunk and write it at its own offset; the file
    /// comes out in input order either way.
    fn write_at(&self, file: &File, offset: u64) -> std::io::Result<()> {
        let mut offsets = Vec::with_capacity(self.chunks.len());
        let mut at = offset;
        for (_, _, length) in &self.texts {
            offsets.push(at);
            at += length;
        }
        let write_turn = std::sync::Mutex::new(());
        // Rows are assembled and written a piece at a time: a piece stays in cache between the
        // copy that assembles it and the one that writes it.
        const PIECE: usize = 2 << 20;
        let write_chunks = |parity: usize| -> std::io::Result<()> {
            let mut buffer: Vec<u8> = Vec::with_capacity(PIECE + 4096);
            for c in (parity..self.chunks.len()).step_by(2) {
                let mut offset = offsets[c];
                self.assemble(c, &mut buffer, PIECE, |piece| {
                    // One writer at a time: the file's lock would make a second one spin, not write.
                    let _turn = write_turn.lock();
                    write_at(file, piece, offset)?;
                    offset += piece.len() as u64;
                    piece.clear();
                    Ok(())
                })?;
            }
            Ok(())
        };
        let (mine, other) = std::thread::scope(|scope| {
            let other = scope.spawn(|| write_chunks(1));
            (write_chunks(0), other.join())
        });
        mine.and(other.unwrap_or_else(|_| write_chunks(1)))
    }
}

/// How long each phase of a parallel run took.
#[derive(Debug, Default, Clone)]
pub struct Phases {
    pub read_and_assess: Duration,
    pub merge: Duration,
    pub settle: Duration,
    pub split_amounts: Duration,
}

/// Settles the CSV records of `source` (positioned after the header, which `layout` describes)
/// on `threads` workers, reading `chunk_bytes` at a time ([`crate::io::chunks::CHUNK_BYTES`] for
/// files; `size_hint` is the source's length when known, so the last chunks can be smaller).
pub fn run<R: Read>(
    request: &Request<'_>,
    source: R,
    layout: &Layout,
    size_hint: Option<u64>,
    threads: usize,
    chunk_bytes: usize,
) -> Result<(Outcome<ParallelLines>, Phases), SettleError> {
    let started = Instant::now();
    let prepared = Prepared::new(request);
    let hospitals = prepared.hospital_ids.len();
    let (mut chunks, sums) = map_chunks_with(
        source,
        threads,
        chunk_bytes,
        size_hint,
        || WorkerTotals::new(hospitals),
        |sums, _, bytes| process_chunk(&prepared, layout, sums, bytes),
    )?;
    let mut phases = Phases { read_and_assess: started.elapsed(), ..Phases::default() };

    // Merge in input order: record numbers, duplicates, every record accounted for.
    let mut starts = Vec::with_capacity(chunks.len());
    let mut accepted_before = 0usize;
    for chunk in &chunks {
        starts.push(accepted_before);
        accepted_before += chunk.cases.len();
    }
    if accepted_before > u32::MAX as usize {
        return Err(SettleError::TooManyCases { cases: accepted_before });
    }
    let repeats = find_repeats(&chunks, &starts);
    let mut seen = SeenIds::default();
    for chunk in &mut chunks {
        for (id, hospitals) in std::mem::take(&mut chunk.seen) {
            seen.entry(id).or_default().extend(hospitals);
        }
    }
    let mut warnings = unknown_annotations(request.annotations, &seen);
    // Record numbers: each chunk's records before it, and its rejected records (ascending), from
    // which an accepted case's record number follows (no number stored per case).
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut chunk_records_before = Vec::with_capacity(chunks.len());
    let mut chunk_rejected_records: Vec<Vec<u64>> = Vec::with_capacity(chunks.len());
    let mut records_before = 0u64;
    for chunk in &mut chunks {
        chunk_records_before.push(records_before);
        chunk_rejected_records.push(chunk.rejected.iter().map(|r| r.record).collect());
        for mut r in chunk.rejected.drain(..) {
            r.record += records_before;
            rejected.push(r);
        }
        records_before += chunk.records;
    }
    let record_of = |global: u32| -> u64 {
        let chunk = starts.partition_point(|&s| s <= global as usize) - 1;
        // The (j+1)-th accepted record: step past each rejected record at or before it.
        let mut record = (global as usize - starts[chunk]) as u64 + 1;
        for &skipped in &chunk_rejected_records[chunk] {
            if skipped > record {
                break;
            }
            record += 1;
        }
        chunk_records_before[chunk] + record
    };
    for (&later, &first) in &repeats {
        let chunk = starts.partition_point(|&s| s <= later as usize) - 1;
        let id = chunks[chunk].id(later as usize - starts[chunk]).to_string();
        rejected.push(repeated(&id, record_of(first)).into_rejected(record_of(later), &id));
    }
    let kept = |global: usize| !repeats.contains_key(&(global as u32));
    // The workers' totals, less the repeats the workers could not know about.
    let mut monthly_totals = MonthlyTotals::new();
    for worker in &sums {
        for (slot, totals) in worker.grid.iter().enumerate() {
            if totals.cases > 0 {
                monthly_totals.entry(grid_key(slot)).or_default().merge(totals);
            }
        }
    }
    for &later in repeats.keys() {
        let chunk = starts.partition_point(|&s| s <= later as usize) - 1;
        let local = later as usize - starts[chunk];
        let case = &chunks[chunk].cases[local];
        if let Some(totals) = monthly_totals.get_mut(&(case.hospital, case.fund, u32::from(case.month))) {
            totals.subtract(case);
        }
    }
    // The special-review quota over the kept applications, in input order: a refused one's case
    // settles without its review (totals, case and row swapped).
    let mut kept_applications: Vec<(usize, usize)> = Vec::new();
    for (c, chunk) in chunks.iter().enumerate() {
        for (j, (local, _)) in chunk.applications.iter().enumerate() {
            if kept(starts[c] + *local as usize) {
                kept_applications.push((c, j));
            }
        }
    }
    let application_ids: Vec<String> =
        kept_applications.iter().map(|&(c, j)| chunks[c].id(chunks[c].applications[j].0 as usize).into_owned()).collect();
    let keys: Vec<(u32, u8, &str, &str)> = kept_applications
        .iter()
        .zip(&application_ids)
        .map(|(&(c, j), id)| {
            let case = &chunks[c].cases[chunks[c].applications[j].0 as usize];
            (case.hospital, case.month, id.as_str(), prepared.hospital_ids[case.hospital as usize].as_str())
        })
        .collect();
    let refusals = refuse_over_quota(request.policy, &monthly_totals, &keys);
    drop(keys);
    let mut replaced: FxHashMap<u32, String> = FxHashMap::default();
    for (&(c, j), refusal) in kept_applications.iter().zip(refusals) {
        let Some(warning) = refusal else { continue };
        let local = chunks[c].applications[j].0 as usize;
        let application = &chunks[c].applications[j].1;
        let reviewed = &chunks[c].cases[local];
        if let Some(totals) = monthly_totals.get_mut(&(reviewed.hospital, reviewed.fund, u32::from(reviewed.month))) {
            totals.subtract(reviewed);
            totals.add(&application.unreviewed);
        }
        let (unreviewed, row) = (application.unreviewed.clone(), application.row.clone());
        chunks[c].cases[local] = unreviewed;
        replaced.insert((starts[c] + local) as u32, row);
        warnings.push(warning);
    }
    warnings.sort();
    monthly_totals.retain(|_, t| t.cases > 0);
    // Repeats leave their chunk's records in place (no copy into one big vector).
    for (chunk, &start) in chunks.iter_mut().zip(&starts) {
        if !repeats.is_empty() {
            let mut i = 0;
            chunk.cases.retain(|_| {
                i += 1;
                kept(start + i - 1)
            });
        }
        chunk.id_hashes = Vec::new();
        chunk.applications = Vec::new();
    }
    rejected.sort_by_key(|r| r.record);
    let accepted: u64 = chunks.iter().map(|c| c.cases.len() as u64).sum();
    let submitted = records_before;
    if accepted + rejected.len() as u64 != submitted {
        return Err(SettleError::Unbalanced { accepted, rejected: rejected.len() as u64, submitted });
    }
    phases.merge = started.elapsed() - phases.read_and_assess;

    let statements = conclude(&prepared, monthly_totals)?;
    phases.settle = started.elapsed() - phases.read_and_assess - phases.merge;

    // Per-case amounts: each statement's gross split over its cases, by counted points. One pass
    // in input order gathers each statement's weights (reading the cases in order, not by index,
    // which missed the cache once per case), the statements are split on two threads, and a
    // second pass in input order hands each case the next part of its statement.
    let cases = || chunks.iter().flat_map(|c| c.cases.iter());
    let slot = |hospital: u32, fund: Fund| hospital as usize * 2 + usize::from(fund == Fund::Resident);
    let mut counts = vec![0usize; hospitals * 2];
    for case in cases() {
        counts[slot(case.hospital, case.fund)] += 1;
    }
    let mut weights: Vec<Vec<Decimal>> = counts.iter().map(|&n| Vec::with_capacity(n)).collect();
    for case in cases() {
        weights[slot(case.hospital, case.fund)].push(case.counted_points());
    }
    let jobs: Vec<(usize, i64)> = statements
        .gross_by_statement()
        .into_iter()
        .map(|((hospital, fund), gross)| (slot(hospital, fund), crate::settlement::fen(gross)))
        .collect();
    let split = on_two_threads(jobs.len(), |k| super::split_over_cases(jobs[k].1, &weights[jobs[k].0]));
    drop(weights);
    let mut parts: Vec<std::vec::IntoIter<i64>> = (0..counts.len()).map(|_| Vec::new().into_iter()).collect();
    for (&(statement, _), split) in jobs.iter().zip(split) {
        parts[statement] = split.into_iter();
    }
    // A case of a statement without a gross (none in practice) gets 0.
    let case_amounts: Vec<i64> = cases().map(|case| parts[slot(case.hospital, case.fund)].next().unwrap_or(0)).collect();
    drop(parts);

    // Each chunk's amounts as text, and so its length in the file.
    let mut amount_starts = Vec::with_capacity(chunks.len());
    let mut kept_before = 0usize;
    for chunk in &chunks {
        amount_starts.push(kept_before);
        kept_before += chunk.cases.len();
    }
    let amount_text = |c: usize| -> (Vec<u8>, Vec<u32>, u64) {
        let chunk = &chunks[c];
        let mut text = Vec::with_capacity(chunk.row_ends.len() * 12);
        let mut ends = Vec::with_capacity(chunk.row_ends.len());
        let mut amounts = case_amounts[amount_starts[c]..].iter();
        let mut kept_cases = chunk.cases.iter();
        let mut line = String::with_capacity(32);
        let (mut from, mut rows_length) = (0usize, 0u64);
        for (i, &end) in chunk.row_ends.iter().enumerate() {
            let end = end as usize;
            if repeats.is_empty() || kept(starts[c] + i) {
                rows_length += replaced.get(&((starts[c] + i) as u32)).map_or(end - from, String::len) as u64;
                line.clear();
                if let Some(case) = kept_cases.next() {
                    push_amount(&mut line, amounts.next().copied().unwrap_or(0), case);
                }
                text.extend_from_slice(line.as_bytes());
                ends.push(text.len() as u32);
            }
            from = end;
        }
        let length = rows_length + text.len() as u64;
        (text, ends, length)
    };
    let texts = on_two_threads(chunks.len(), amount_text);
    phases.split_amounts = started.elapsed() - phases.read_and_assess - phases.merge - phases.settle;
    let lines = ParallelLines { chunks, starts, repeats, texts, replaced };
    Ok((Outcome { submitted, accepted, rejected, statements, hospital_ids: prepared.hospital_ids, cases: lines, warnings }, phases))
}
