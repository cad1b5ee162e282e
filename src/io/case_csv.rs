//! Reading cases from CSV: the documented layout, one record per discharge.
//!
//! Every record ends as a [`Case`] or a [`RejectedRecord`] naming the record, the field and the
//! bad value — never silently dropped. Codes are not checked here: whether a code exists is the
//! table set's business, and the grouper reports it in the result's status.
//!
//! Columns (header names; order free; unknown columns ignored):
//!
//! | column | required | content |
//! |---|---|---|
//! | `case_id` | yes | unique within the file |
//! | `diagnoses` | yes | ICD-10 codes joined by `\|`, principal first; must not be empty |
//! | `procedures` | no | ICD-9-CM-3 codes joined by `\|`, principal first; empty = none |
//! | `sex` | no | integer; 1 male, 2 female (other integers fail grouping validation) |
//! | `age`, `age_days`, `birth_weight`, `los`, `disposition` | no | non-negative integers |
//! | `icu_hours` | no | non-negative integer, hours in intensive care, at most [`MAX_ICU_HOURS`] |
//! | `department`, `hospital_id`, `patient_id` | no | text |
//! | `fund` | no | `employee`/`职工` or `resident`/`居民` |
//! | `admission_date`, `discharge_date` | no | `YYYY-MM-DD`; discharge not before admission |
//! | `total_cost`, `fund_paid`, `patient_paid` | no | yuan, decimal, not negative, at most 2 decimals and 1,000,000,000 |
//!
//! When `los` is empty and both dates are present, `los` is the number of days between them,
//! with a same-day stay counted as 1.

use crate::case::{Case, Date, Fund, MAX_ICU_HOURS};
use rust_decimal::Decimal;
use std::io::Read;
use std::str::FromStr;

/// A record that could not be read as a case.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRecord {
    /// 1-based number of the data record (the header is not counted).
    pub record: u64,
    /// Line the record starts on.
    pub line: u64,
    pub case_id: Option<String>,
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl std::fmt::Display for RejectedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}", self.record)?;
        if let Some(id) = &self.case_id {
            write!(f, " (case {id})")?;
        }
        write!(f, ": field {}: {:?} {}", self.field, self.value, self.reason)
    }
}

/// A problem with the file as a whole (no records can be read).
#[derive(Debug, thiserror::Error)]
pub enum CaseFileError {
    #[error("cannot read the header: {0}")]
    Header(String),
    #[error("required column {0} is missing from the header")]
    MissingColumn(&'static str),
    #[error("column {0} appears twice in the header")]
    DuplicateColumn(String),
}

impl CaseFileError {
    /// A stable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            CaseFileError::Header(_) => "CASE_FILE_HEADER",
            CaseFileError::MissingColumn(_) => "CASE_FILE_MISSING_COLUMN",
            CaseFileError::DuplicateColumn(_) => "CASE_FILE_DUPLICATE_COLUMN",
        }
    }
}

pub const COLUMNS: [&str; 21] = [
    "case_id",
    "hospital_id",
    "patient_id",
    "fund",
    "sex",
    "age",
    "age_days",
    "birth_weight",
    "admission_date",
    "discharge_date",
    "los",
    "disposition",
    "department",
    "diagnoses",
    "procedures",
    "total_cost",
    "fund_paid",
    "patient_paid",
    // Last of the written columns, so that case rows stored before it existed read with it empty.
    "icu_hours",
    "insured_region",
    "benefit",
];

/// The columns [`CaseWriter`] and [`case_row`] write: all but the regional ones
/// (`insured_region`, `benefit`), which are read when present.
const WRITTEN: usize = 19;

/// Column positions of the known columns, from a header.
#[derive(Debug, Clone)]
pub struct Layout {
    position: [Option<usize>; COLUMNS.len()],
}

impl Layout {
    /// The layout of a header line (the first line of a case file, newline optional).
    pub fn from_header_line(line: &[u8]) -> Result<Layout, CaseFileError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line);
        let mut header = csv::StringRecord::new();
        match reader.read_record(&mut header) {
            Ok(true) => Layout::from_header(&header),
            Ok(false) => Err(CaseFileError::Header("the file is empty".into())),
            Err(e) => Err(CaseFileError::Header(e.to_string())),
        }
    }

    fn from_header(header: &csv::StringRecord) -> Result<Layout, CaseFileError> {
        let mut position = [None; COLUMNS.len()];
        for (i, name) in header.iter().enumerate() {
            let name = name.trim_start_matches('\u{feff}');
            if let Some(k) = COLUMNS.iter().position(|c| *c == name) {
                if position[k].is_some() {
                    return Err(CaseFileError::DuplicateColumn(name.to_string()));
                }
                position[k] = Some(i);
            }
        }
        for required in [field::CASE_ID, field::DIAGNOSES] {
            if position[required].is_none() {
                return Err(CaseFileError::MissingColumn(COLUMNS[required]));
            }
        }
        Ok(Layout { position })
    }
}

/// A known column's position in [`COLUMNS`], found at compile time (a misspelt name does not
/// compile), so that reading a field costs no name comparisons.
const fn col(name: &str) -> usize {
    let mut i = 0;
    while i < COLUMNS.len() {
        let (a, b) = (COLUMNS[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut k = 0;
            while k < a.len() && a[k] == b[k] {
                k += 1;
            }
            if k == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a case column")
}

/// Positions of the columns the parser reads.
mod field {
    use super::col;
    pub const ADMISSION_DATE: usize = col("admission_date");
    pub const AGE: usize = col("age");
    pub const AGE_DAYS: usize = col("age_days");
    pub const BIRTH_WEIGHT: usize = col("birth_weight");
    pub const CASE_ID: usize = col("case_id");
    pub const DEPARTMENT: usize = col("department");
    pub const DIAGNOSES: usize = col("diagnoses");
    pub const DISCHARGE_DATE: usize = col("discharge_date");
    pub const DISPOSITION: usize = col("disposition");
    pub const FUND: usize = col("fund");
    pub const FUND_PAID: usize = col("fund_paid");
    pub const HOSPITAL_ID: usize = col("hospital_id");
    pub const ICU_HOURS: usize = col("icu_hours");
    pub const LOS: usize = col("los");
    pub const PATIENT_ID: usize = col("patient_id");
    pub const PATIENT_PAID: usize = col("patient_paid");
    pub const PROCEDURES: usize = col("procedures");
    pub const SEX: usize = col("sex");
    pub const TOTAL_COST: usize = col("total_cost");
    pub const INSURED_REGION: usize = col("insured_region");
    pub const BENEFIT: usize = col("benefit");
}

/// Streams cases out of a CSV source. Iterating yields one `Result` per data record, in order.
pub struct CaseReader<R: Read> {
    reader: csv::Reader<R>,
    layout: Layout,
    record: csv::StringRecord,
    ranges: Vec<(u32, u32)>,
    record_number: u64,
    done: bool,
}

impl<R: Read> CaseReader<R> {
    pub fn new(source: R) -> Result<CaseReader<R>, CaseFileError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).trim(csv::Trim::None).from_reader(source);
        let header = reader.headers().map_err(|e| CaseFileError::Header(e.to_string()))?.clone();
        let layout = Layout::from_header(&header)?;
        Ok(CaseReader { reader, layout, record: csv::StringRecord::new(), ranges: Vec::new(), record_number: 0, done: false })
    }

    /// Reads records without a header line, with a layout read elsewhere (a chunk of a larger
    /// file). Record numbers start after `records_before`.
    pub fn headerless(source: R, layout: Layout, records_before: u64) -> CaseReader<R> {
        let reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::None).from_reader(source);
        CaseReader { reader, layout, record: csv::StringRecord::new(), ranges: Vec::new(), record_number: records_before, done: false }
    }

    /// Bytes consumed so far (for progress bars).
    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }
}

impl<R: Read> CaseReader<R> {
    /// Reads the next record into `case`, reusing its allocations: `None` at the end, else
    /// whether the record was accepted (then `case` holds it) or rejected.
    pub fn next_into(&mut self, case: &mut Case) -> Option<Result<(), RejectedRecord>> {
        if self.done {
            return None;
        }
        let line = self.reader.position().line();
        match self.reader.read_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                self.record_number += 1;
                let line = self.record.position().map_or(line, |p| p.line());
                let view = RecordView::of(&self.record, &mut self.ranges);
                Some(parse_record_into(&self.layout, view, self.record_number, line, case))
            }
            Err(error) => {
                self.record_number += 1;
                // A broken record (bad UTF-8, unbalanced quotes) cannot be split into fields. The
                // csv reader resumes at the next record, so later records are still read; an I/O
                // failure ends the stream.
                if matches!(error.kind(), csv::ErrorKind::Io(_)) {
                    self.done = true;
                }
                Some(Err(RejectedRecord {
                    record: self.record_number,
                    line: error.position().map_or(line, |p| p.line()),
                    case_id: None,
                    field: "(record)".to_string(),
                    value: String::new(),
                    reason: format!("cannot be read: {error}"),
                }))
            }
        }
    }
}

/// Reads the records of a chunk held in memory (a part of a larger file, without its header),
/// like [`CaseReader::headerless`] and with the same results, faster: a record on one line with
/// no quote and no stray CR is split on its commas directly; any other record goes through the
/// csv reader.
pub struct ChunkReader<'a> {
    bytes: &'a [u8],
    /// A validated stretch of whole lines, `bytes[window_start..]` as text: lines are checked as
    /// UTF-8 a window (about 64 KiB) at a time, just before they are parsed, so the check and
    /// the parse read the same bytes from cache instead of the check reading the whole chunk
    /// first.
    window: &'a str,
    window_start: usize,
    position: usize,
    /// Lines before `position` (1-based line of the next record = lines + 1).
    lines: u64,
    layout: Layout,
    record: csv::StringRecord,
    ranges: Vec<(u32, u32)>,
    record_number: u64,
}

impl<'a> ChunkReader<'a> {
    pub fn new(bytes: &'a [u8], layout: Layout, records_before: u64) -> ChunkReader<'a> {
        ChunkReader {
            bytes,
            window: "",
            window_start: 0,
            position: 0,
            lines: 0,
            layout,
            record: csv::StringRecord::new(),
            ranges: Vec::new(),
            record_number: records_before,
        }
    }

    /// Reads the next record into `case`, reusing its allocations: see [`CaseReader::next_into`].
    pub fn next_into(&mut self, case: &mut Case) -> Option<Result<(), RejectedRecord>> {
        loop {
            let rest = self.bytes.get(self.position..).filter(|r| !r.is_empty())?;
            // One pass to the line end: the commas, and whether the line needs a closer look.
            self.ranges.clear();
            let mut start = 0u32;
            let mut end = rest.len();
            let mut plain = true;
            for (i, &byte) in rest.iter().enumerate() {
                match byte {
                    b',' => {
                        self.ranges.push((start, i as u32));
                        start = i as u32 + 1;
                    }
                    b'\n' => {
                        end = i;
                        break;
                    }
                    b'"' | b'\r' => {
                        plain = false;
                        break;
                    }
                    _ => {}
                }
            }
            if plain {
                let next = (end + 1).min(rest.len());
                if end == 0 {
                    // A blank line is no record (as for the csv reader).
                    self.position += next;
                    self.lines += 1;
                    continue;
                }
                // Lines are checked as UTF-8 a window at a time; a line is a slice of its window.
                let text = self.line_text(end);
                if let Some(text) = text {
                    self.ranges.push((start, end as u32));
                    return Some(self.parse_line(text, next, case));
                }
            } else if let Some(outcome) = self.quote_or_cr_line(rest, case) {
                match outcome {
                    Some(outcome) => return Some(outcome),
                    None => continue,
                }
            }
            if let Some(outcome) = self.slow_record(rest, case) {
                return Some(outcome);
            }
        }
    }

    /// The text of the line `bytes[position..position + end]` (which ends at a newline or the end
    /// of the chunk), from the validated window, validating the next window when the line lies
    /// beyond it; `None` when the line is not UTF-8.
    fn line_text(&mut self, end: usize) -> Option<&'a str> {
        const WINDOW: usize = 64 << 10;
        let (start, stop) = (self.position, self.position + end);
        if start < self.window_start || stop > self.window_start + self.window.len() {
            // From this line's start (a character boundary) to the end of the last whole line
            // within the window's length, and at least to this line's end.
            let limit = (start + WINDOW).min(self.bytes.len());
            let cut = match self.bytes.get(stop..limit).and_then(|tail| memchr::memrchr(b'\n', tail)) {
                Some(i) => stop + i + 1,
                None => stop,
            };
            let candidate = &self.bytes[start..cut];
            self.window_start = start;
            self.window = match std::str::from_utf8(candidate) {
                Ok(text) => text,
                // Keep the whole lines before the bad byte; the bad line takes the slow path.
                Err(error) => {
                    let valid = &candidate[..error.valid_up_to()];
                    let whole = memchr::memrchr(b'\n', valid).map_or(0, |i| i + 1);
                    std::str::from_utf8(&valid[..whole]).unwrap_or("")
                }
            };
        }
        self.window.get(start - self.window_start..stop - self.window_start)
    }

    /// A line with a quote or a CR: a CRLF line end is dropped and a line without quotes or other
    /// CRs is still split directly (`Some(Some(..))`), a blank line is skipped (`Some(None)`);
    /// anything else is left to the csv reader (`None`).
    #[allow(clippy::option_option)]
    fn quote_or_cr_line(&mut self, rest: &'a [u8], case: &mut Case) -> Option<Option<Result<(), RejectedRecord>>> {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let mut line = &rest[..end];
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if line.is_empty() {
            self.position += (end + 1).min(rest.len());
            self.lines += 1;
            return Some(None);
        }
        if memchr::memchr2(b'"', b'\r', line).is_some() {
            return None;
        }
        let text = std::str::from_utf8(line).ok()?;
        self.ranges.clear();
        let mut start = 0u32;
        for comma in memchr::memchr_iter(b',', line) {
            self.ranges.push((start, comma as u32));
            start = comma as u32 + 1;
        }
        self.ranges.push((start, line.len() as u32));
        Some(Some(self.parse_line(text, (end + 1).min(rest.len()), case)))
    }

    /// Parses a one-line record split into `self.ranges`, then moves `advance` bytes on.
    fn parse_line(&mut self, text: &str, advance: usize, case: &mut Case) -> Result<(), RejectedRecord> {
        self.position += advance;
        self.lines += 1;
        self.record_number += 1;
        let view = RecordView { text, ranges: &self.ranges };
        parse_record_into(&self.layout, view, self.record_number, self.lines, case)
    }

    /// One record through the csv reader (quotes, a stray CR, bad UTF-8); `None` when what was
    /// left held no record (only line ends).
    fn slow_record(&mut self, rest: &'a [u8], case: &mut Case) -> Option<Result<(), RejectedRecord>> {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::None).buffer_capacity(4096).from_reader(rest);
        let line = self.lines + 1;
        let outcome = reader.read_record(&mut self.record);
        // Where the record ended (for a broken record too: the csv reader resumes after it);
        // always move on, even if the reader consumed nothing.
        let consumed = (reader.position().byte() as usize).clamp(1, rest.len());
        self.lines += memchr::memchr_iter(b'\n', &rest[..consumed]).count() as u64;
        self.position += consumed;
        if matches!(outcome, Ok(false)) {
            return None;
        }
        self.record_number += 1;
        Some(match outcome {
            Ok(_) => {
                let view = RecordView::of(&self.record, &mut self.ranges);
                parse_record_into(&self.layout, view, self.record_number, line, case)
            }
            Err(error) => Err(RejectedRecord {
                record: self.record_number,
                line,
                case_id: None,
                field: "(record)".to_string(),
                value: String::new(),
                reason: format!("cannot be read: {error}"),
            }),
        })
    }
}

impl<R: Read> Iterator for CaseReader<R> {
    type Item = Result<Case, RejectedRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut case = Case::default();
        self.next_into(&mut case).map(|result| result.map(|()| case))
    }
}

/// One record's fields: the record's text and each field's byte range in it.
#[derive(Clone, Copy)]
struct RecordView<'r> {
    text: &'r str,
    ranges: &'r [(u32, u32)],
}

impl<'r> RecordView<'r> {
    fn get(&self, i: usize) -> Option<&'r str> {
        let &(start, end) = self.ranges.get(i)?;
        self.text.get(start as usize..end as usize)
    }

    /// The view of a record the csv reader read; `ranges` is the buffer to fill.
    fn of(record: &'r csv::StringRecord, ranges: &'r mut Vec<(u32, u32)>) -> RecordView<'r> {
        ranges.clear();
        ranges.extend((0..record.len()).filter_map(|i| record.range(i)).map(|r| (r.start as u32, r.end as u32)));
        RecordView { text: record.as_slice(), ranges }
    }
}

struct Fields<'r> {
    layout: &'r Layout,
    record: RecordView<'r>,
    record_number: u64,
    line: u64,
    case_id: Option<&'r str>,
}

impl<'r> Fields<'r> {
    /// The text of column `column` (a position in [`COLUMNS`]), empty when the file lacks it.
    fn raw(&self, column: usize) -> &'r str {
        self.layout.position[column].and_then(|i| self.record.get(i)).unwrap_or("")
    }

    fn reject(&self, column: usize, reason: impl Into<String>) -> RejectedRecord {
        RejectedRecord {
            record: self.record_number,
            line: self.line,
            case_id: self.case_id.map(str::to_string),
            field: COLUMNS[column].to_string(),
            value: self.raw(column).to_string(),
            reason: reason.into(),
        }
    }

    fn count(&self, name: usize) -> Result<Option<i64>, RejectedRecord> {
        let raw = self.raw(name);
        if raw.is_empty() {
            return Ok(None);
        }
        match raw.parse::<i64>() {
            Ok(v) if v < 0 => Err(self.reject(name, "is negative")),
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(self.reject(name, "is not a whole number")),
        }
    }

    /// `sex` may be any integer (validity is the grouper's check), but must be a number.
    fn integer(&self, name: usize) -> Result<Option<i64>, RejectedRecord> {
        let raw = self.raw(name);
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse::<i64>().map(Some).map_err(|_| self.reject(name, "is not a whole number"))
    }

    fn money(&self, name: usize) -> Result<Option<Decimal>, RejectedRecord> {
        let raw = self.raw(name);
        if raw.is_empty() {
            return Ok(None);
        }
        let value = match plain_amount(raw) {
            Some(value) => value,
            None => Decimal::from_str(raw).map_err(|_| self.reject(name, "is not a decimal amount"))?,
        };
        if value.is_sign_negative() && !value.is_zero() {
            return Err(self.reject(name, "is negative"));
        }
        if value.scale() > 2 {
            return Err(self.reject(name, "has more than 2 decimal places (amounts are in yuan to the fen)"));
        }
        if value > crate::case::MAX_AMOUNT {
            return Err(self.reject(name, "is above the largest amount a case may hold (1000000000 yuan)"));
        }
        Ok(Some(value))
    }

    fn date(&self, name: usize) -> Result<Option<Date>, RejectedRecord> {
        let raw = self.raw(name);
        if raw.is_empty() {
            return Ok(None);
        }
        Date::parse(raw).map(Some).ok_or_else(|| self.reject(name, "is not a valid date (YYYY-MM-DD)"))
    }
}

/// The common spelling of an amount — digits, then at most two decimals (`8008.73`) — read
/// without the general decimal parser; `None` for anything else, which that parser then reads.
/// Same value and scale as `Decimal::from_str`.
fn plain_amount(raw: &str) -> Option<Decimal> {
    let (whole, fraction) = match raw.bytes().position(|b| b == b'.') {
        Some(dot) if (2..=3).contains(&(raw.len() - dot)) => (&raw.as_bytes()[..dot], &raw.as_bytes()[dot + 1..]),
        Some(_) => return None,
        None => (raw.as_bytes(), &[][..]),
    };
    if whole.is_empty() || whole.len() > 16 {
        return None;
    }
    let mut mantissa: i64 = 0;
    for &byte in whole.iter().chain(fraction) {
        if !byte.is_ascii_digit() {
            return None;
        }
        mantissa = mantissa * 10 + i64::from(byte - b'0');
    }
    Some(Decimal::new(mantissa, fraction.len() as u32))
}

/// Sets `slot` to `raw`'s codes, reusing the strings already there.
fn split_codes_into(raw: &str, slot: &mut Vec<String>) {
    let mut n = 0;
    if !raw.is_empty() {
        // Split on `|` by bytes (an ASCII byte never occurs inside a multi-byte character).
        let mut from = 0;
        let bytes = raw.as_bytes();
        let codes = std::iter::from_fn(|| {
            let rest = bytes.get(from..)?;
            let len = rest.iter().position(|&b| b == b'|').unwrap_or(rest.len());
            let code = raw.get(from..from + len);
            from += len + 1;
            code
        });
        for code in codes {
            match slot.get_mut(n) {
                Some(existing) => {
                    existing.clear();
                    existing.push_str(code);
                }
                None => slot.push(code.to_string()),
            }
            n += 1;
        }
    }
    slot.truncate(n);
}

/// Sets `slot` to `raw` (`None` when empty), reusing its string.
fn set_text(slot: &mut Option<String>, raw: &str) {
    if raw.is_empty() {
        *slot = None;
    } else {
        let text = slot.get_or_insert_with(String::new);
        text.clear();
        text.push_str(raw);
    }
}

/// Parses one record into `case`, reusing its allocations. On a rejection `case` holds partial
/// data and must not be used.
fn parse_record_into(
    layout: &Layout,
    record: RecordView<'_>,
    record_number: u64,
    line: u64,
    case: &mut Case,
) -> Result<(), RejectedRecord> {
    let mut fields = Fields { layout, record, record_number, line, case_id: None };
    let case_id = fields.raw(field::CASE_ID);
    if case_id.is_empty() {
        return Err(fields.reject(field::CASE_ID, "is empty"));
    }
    fields.case_id = Some(case_id);
    split_codes_into(fields.raw(field::DIAGNOSES), &mut case.diagnoses);
    if case.diagnoses.is_empty() {
        return Err(fields.reject(field::DIAGNOSES, "is empty: a case needs a principal diagnosis"));
    }
    let fund = match fields.raw(field::FUND) {
        "" => None,
        raw => Some(Fund::parse(raw).ok_or_else(|| fields.reject(field::FUND, "is not employee/职工 or resident/居民"))?),
    };
    let admission_date = fields.date(field::ADMISSION_DATE)?;
    let discharge_date = fields.date(field::DISCHARGE_DATE)?;
    let stay_from_dates = match (admission_date, discharge_date) {
        (Some(admitted), Some(discharged)) => {
            let days = discharged.days_since(admitted);
            if days < 0 {
                return Err(fields.reject(field::DISCHARGE_DATE, format!("is before admission_date {admitted}")));
            }
            Some(i64::from(days.max(1)))
        }
        _ => None,
    };
    let los = fields.count(field::LOS)?.or(stay_from_dates);
    let total_cost = fields.money(field::TOTAL_COST)?;
    let fund_paid = fields.money(field::FUND_PAID)?;
    let patient_paid = fields.money(field::PATIENT_PAID)?;
    if let (Some(total), Some(fund), Some(patient)) = (total_cost, fund_paid, patient_paid) {
        if fund + patient > total {
            return Err(fields.reject(field::FUND_PAID, format!("plus patient_paid {patient} exceeds total_cost {total}")));
        }
    }
    case.sex = fields.integer(field::SEX)?;
    case.age = fields.count(field::AGE)?;
    case.age_days = fields.count(field::AGE_DAYS)?;
    case.birth_weight = fields.count(field::BIRTH_WEIGHT)?;
    case.disposition = fields.count(field::DISPOSITION)?;
    // Most files have no ICU column: then nothing is parsed.
    case.icu_hours = match fields.count(field::ICU_HOURS)? {
        Some(hours) if hours > MAX_ICU_HOURS => {
            return Err(fields.reject(field::ICU_HOURS, format!("is more than {MAX_ICU_HOURS} hours")));
        }
        hours => hours,
    };
    case.case_id.clear();
    case.case_id.push_str(case_id);
    set_text(&mut case.hospital_id, fields.raw(field::HOSPITAL_ID));
    set_text(&mut case.patient_id, fields.raw(field::PATIENT_ID));
    set_text(&mut case.department, fields.raw(field::DEPARTMENT));
    set_text(&mut case.insured_region, fields.raw(field::INSURED_REGION));
    set_text(&mut case.benefit, fields.raw(field::BENEFIT));
    split_codes_into(fields.raw(field::PROCEDURES), &mut case.procedures);
    case.fund = fund;
    case.admission_date = admission_date;
    case.discharge_date = discharge_date;
    case.los = los;
    case.total_cost = total_cost;
    case.fund_paid = fund_paid;
    case.patient_paid = patient_paid;
    if let Some((field, reason)) = crate::case::bound_problems(case).into_iter().next() {
        let column = COLUMNS.iter().position(|c| *c == field).unwrap_or(field::CASE_ID);
        return Err(fields.reject(column, reason));
    }
    Ok(())
}

/// The layout of files written by [`CaseWriter`] (all columns, in order).
pub fn standard_layout() -> Layout {
    let mut position = [None; COLUMNS.len()];
    for (i, slot) in position.iter_mut().enumerate().take(WRITTEN) {
        *slot = Some(i);
    }
    Layout { position }
}

/// One case as a CSV row (no header, no line end) in the standard layout: how stores keep cases.
pub fn case_row(case: &Case) -> String {
    // The csv writer's rules (quote a field holding a comma, quote, CR or LF; double the quotes),
    // written directly: stores call this once per ingested case.
    let mut out = String::with_capacity(160);
    for (i, field) in case_fields(case).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out
}

fn case_fields(case: &Case) -> [String; WRITTEN] {
    fn opt<T: ToString>(value: &Option<T>) -> String {
        value.as_ref().map(ToString::to_string).unwrap_or_default()
    }
    [
        case.case_id.clone(),
        opt(&case.hospital_id),
        opt(&case.patient_id),
        case.fund.map(|f| f.as_str().to_string()).unwrap_or_default(),
        opt(&case.sex),
        opt(&case.age),
        opt(&case.age_days),
        opt(&case.birth_weight),
        opt(&case.admission_date),
        opt(&case.discharge_date),
        opt(&case.los),
        opt(&case.disposition),
        opt(&case.department),
        case.diagnoses.join("|"),
        case.procedures.join("|"),
        opt(&case.total_cost),
        opt(&case.fund_paid),
        opt(&case.patient_paid),
        opt(&case.icu_hours),
    ]
}

/// Reads back a row written by [`case_row`].
pub fn parse_case_row(row: &str) -> Result<Case, RejectedRecord> {
    let mut reader = CaseReader::headerless(row.as_bytes(), standard_layout(), 0);
    reader.next().unwrap_or_else(|| {
        Err(RejectedRecord { record: 1, line: 1, case_id: None, field: "(record)".into(), value: String::new(), reason: "is empty".into() })
    })
}

/// Writes cases in the layout [`CaseReader`] reads (all columns, header first).
pub struct CaseWriter<W: std::io::Write> {
    writer: csv::Writer<W>,
}

impl<W: std::io::Write> CaseWriter<W> {
    pub fn new(sink: W) -> csv::Result<CaseWriter<W>> {
        let mut writer = csv::Writer::from_writer(sink);
        writer.write_record(&COLUMNS[..WRITTEN])?;
        Ok(CaseWriter { writer })
    }

    pub fn write(&mut self, case: &Case) -> csv::Result<()> {
        self.writer.write_record(case_fields(case))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<Result<Case, RejectedRecord>> {
        CaseReader::new(text.as_bytes()).unwrap().collect()
    }

    #[test]
    fn plain_amounts_read_as_the_decimal_parser_reads_them() {
        let mut spellings: Vec<String> = [
            "0",
            "00",
            "7",
            "007",
            "0.5",
            "0.50",
            "12.30",
            "8008.73",
            "9999999999999999.99",
            "1.",
            ".5",
            "1.234",
            "+1",
            "-1",
            "1e3",
            "1_0",
            "",
            ".",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let whole = seed % 10u64.pow((seed >> 60) as u32 % 17 + 1);
            spellings.push(match (seed >> 40) % 3 {
                0 => format!("{whole}"),
                1 => format!("{whole}.{}", seed % 10),
                _ => format!("{whole}.{:02}", seed % 100),
            });
        }
        for text in &spellings {
            if let Some(fast) = plain_amount(text) {
                let general = Decimal::from_str(text).unwrap();
                assert_eq!((fast, fast.scale()), (general, general.scale()), "{text}");
            }
        }
        assert!(plain_amount("8008.73").is_some() && plain_amount("12").is_some());
        for odd in ["1.", ".5", "1.234", "+1", "-1", "1e3", "1_0", "", ".", "12345678901234567"] {
            assert_eq!(plain_amount(odd), None, "{odd}");
        }
    }

    #[test]
    fn grouping_columns_alone_are_enough() {
        let rows = read("case_id,sex,age,age_days,birth_weight,department,los,disposition,diagnoses,procedures,expected_drg\nC1,1,66,,,0401,36,2,G04.801|K27.501,,BU31\n");
        let case = rows[0].as_ref().unwrap();
        assert_eq!(case.case_id, "C1");
        assert_eq!(case.diagnoses, vec!["G04.801", "K27.501"]);
        assert!(case.procedures.is_empty());
        assert_eq!((case.sex, case.age, case.age_days, case.los), (Some(1), Some(66), None, Some(36)));
        assert_eq!(case.department.as_deref(), Some("0401"));
    }

    #[test]
    fn icu_hours_are_optional_whole_hours_within_bounds() {
        // Placed where a data set puts it (after disposition), found by name.
        let rows = read(
            "case_id,los,disposition,icu_hours,diagnoses\n\
             C1,3,1,121,K35.800\n\
             C2,3,1,,K35.800\n\
             C3,3,1,-4,K35.800\n\
             C4,3,1,87673,K35.800\n\
             C5,3,1,1.5,K35.800\n",
        );
        let outcome: Vec<String> = rows
            .iter()
            .map(|r| match r {
                Ok(case) => format!("ok {:?}", case.icu_hours),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            outcome,
            vec![
                "ok Some(121)",
                "ok None",
                "record 3 (case C3): field icu_hours: \"-4\" is negative",
                "record 4 (case C4): field icu_hours: \"87673\" is more than 87672 hours",
                "record 5 (case C5): field icu_hours: \"1.5\" is not a whole number",
            ]
        );
        // A file without the column: no case has ICU hours.
        assert_eq!(read("case_id,diagnoses\nC1,K35.800\n")[0].as_ref().unwrap().icu_hours, None);
    }

    #[test]
    fn malformed_records_are_rejected_with_record_field_and_value() {
        let rows = read(
            "case_id,age,diagnoses,total_cost,admission_date,discharge_date\n\
             C1,abc,K35.800,100,,\n\
             C2,30,,100,,\n\
             C3,30,K35.800,-5,,\n\
             C4,30,K35.800,100,2024-03-05,2024-03-01\n\
             C5,30,K35.800,100.5,2024-03-01,2024-03-05\n\
             ,30,K35.800,1,,\n",
        );
        let messages: Vec<String> = rows
            .iter()
            .map(|r| match r {
                Ok(case) => format!("ok {} los {:?}", case.case_id, case.los),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            messages,
            vec![
                "record 1 (case C1): field age: \"abc\" is not a whole number",
                "record 2 (case C2): field diagnoses: \"\" is empty: a case needs a principal diagnosis",
                "record 3 (case C3): field total_cost: \"-5\" is negative",
                "record 4 (case C4): field discharge_date: \"2024-03-01\" is before admission_date 2024-03-05",
                "ok C5 los Some(4)",
                "record 6: field case_id: \"\" is empty",
            ]
        );
    }

    #[test]
    fn codes_are_kept_exactly_and_sex_is_left_to_the_grouper() {
        let rows = read("case_id,sex,diagnoses,procedures\nC1,9, k35.800|A01,47.0900\nC2,1,A01,47.0900|\nC3,1,A01||B02,\n");
        let case = rows[0].as_ref().unwrap();
        assert_eq!(case.sex, Some(9));
        assert_eq!(case.diagnoses, vec![" k35.800", "A01"]);
        assert_eq!(case.procedures, vec!["47.0900"]);
        // An empty code (a trailing or doubled separator) is refused, naming the list and code.
        let refused = rows[1].as_ref().unwrap_err();
        assert_eq!((refused.field.as_str(), refused.reason.as_str()), ("procedures", "code 2 is empty"));
        let refused = rows[2].as_ref().unwrap_err();
        assert_eq!((refused.field.as_str(), refused.reason.as_str()), ("diagnoses", "code 2 is empty"));
    }

    #[test]
    fn written_cases_read_back_identically() {
        let text = "case_id,hospital_id,patient_id,fund,sex,age,age_days,birth_weight,admission_date,discharge_date,los,disposition,department,diagnoses,procedures,total_cost,fund_paid,patient_paid,icu_hours\n\
                    C1,H1,P1,resident,2,0,10,2900,2026-01-03,2026-01-08,5,1,0701,P59.900|P22.100,,3500.50,2310.33,1190.17,12\n";
        let case = read(text).remove(0).unwrap();
        let mut out = Vec::new();
        let mut writer = CaseWriter::new(&mut out).unwrap();
        writer.write(&case).unwrap();
        writer.flush().unwrap();
        drop(writer);
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }

    #[test]
    fn a_case_row_round_trips() {
        let case =
            read("case_id,diagnoses,procedures,total_cost,fund\nC1,\"K80.100,x\"|I10.x00,51.2300,12.50,employee\n").remove(0).unwrap();
        assert_eq!(parse_case_row(&case_row(&case)).unwrap(), case);
        // The same bytes as the csv writer's, quotes, commas and line breaks included.
        let tricky =
            Case { case_id: "Q\"1,\n2".into(), department: Some("a\rb".into()), diagnoses: vec!["K80.100".into(), "I10,x".into()], ..case };
        let mut out = Vec::new();
        {
            let mut writer = csv::WriterBuilder::new().has_headers(false).terminator(csv::Terminator::Any(b'\n')).from_writer(&mut out);
            writer.write_record(case_fields(&tricky)).unwrap();
        }
        assert_eq!(format!("{}\n", case_row(&tricky)), String::from_utf8(out).unwrap());
        // Control characters are refused on reading (bounds); quotes and commas round-trip.
        assert_eq!(parse_case_row(&case_row(&tricky)).unwrap_err().field, "case_id");
        let quoted = Case { case_id: "Q\"1,2".into(), department: Some("a,\"b".into()), ..tricky };
        assert_eq!(parse_case_row(&case_row(&quoted)).unwrap(), quoted);
    }

    #[test]
    fn missing_required_column_is_a_file_error() {
        let err = CaseReader::new("case_id,sex\nC1,1\n".as_bytes()).err().unwrap();
        assert_eq!(err.to_string(), "required column diagnoses is missing from the header");
    }

    #[test]
    fn a_broken_record_does_not_hide_the_next_one() {
        let mut text = b"case_id,diagnoses\nC1,K35.800\nC2,\xff\xfe\nC3,K35.800\n".to_vec();
        text.extend_from_slice(b"");
        let rows: Vec<_> = CaseReader::new(&text[..]).unwrap().collect();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].is_ok());
        assert!(rows[1].as_ref().err().unwrap().reason.contains("cannot be read"));
        assert_eq!(rows[2].as_ref().unwrap().case_id, "C3");
    }

    #[test]
    fn the_chunk_reader_checks_utf8_window_by_window() {
        // Several 64 KiB windows, bad bytes in some lines (one at a window's edge), and a line
        // longer than a window: the same cases and rejections as the csv reader.
        let mut bytes = Vec::new();
        for i in 0..6000 {
            let line: Vec<u8> = match i {
                5 | 2400 | 2401 | 5999 => [format!("C{i},K35.").into_bytes(), vec![0xff], b"800\n".to_vec()].concat(),
                3000 => format!("C{i},{}\n", "K35.800|".repeat(10_000)).into_bytes(),
                _ => format!("C{i},K35.800|中文{i}\n").into_bytes(),
            };
            bytes.extend_from_slice(&line);
        }
        let layout = Layout::from_header_line(b"case_id,diagnoses\n").unwrap();
        let mut reader = ChunkReader::new(&bytes, layout, 0);
        let mut case = Case::default();
        let mut fast = Vec::new();
        while let Some(item) = reader.next_into(&mut case) {
            fast.push(item.map(|()| case.clone()));
        }
        let mut with_header = b"case_id,diagnoses\n".to_vec();
        with_header.extend_from_slice(&bytes);
        let slow: Vec<_> = CaseReader::new(&with_header[..]).unwrap().collect();
        // Rejections name the same record, line and field (the csv reader's message quotes its
        // own byte offsets, and its lines count the header).
        let key = |r: &Result<Case, RejectedRecord>, header: u64| r.clone().map_err(|e| (e.record, e.line - header, e.field));
        assert_eq!(fast.len(), 6000);
        let differing = (0..6000).filter(|&i| key(&fast[i], 0) != key(&slow[i], 1)).collect::<Vec<_>>();
        assert!(differing.is_empty(), "records differ at {differing:?}");
        let rejected: Vec<u64> = fast.iter().filter_map(|r| r.as_ref().err().map(|e| e.record)).collect();
        // Record 3001, longer than a window, holds more codes than a case may have.
        assert_eq!(rejected, [6, 2401, 2402, 3001, 6000]);
    }
}
