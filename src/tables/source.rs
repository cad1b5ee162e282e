//! Source tables: the CSV files of a table set as plain rows, before any meaning is given to them.
//!
//! Owns column lookup by name, the known/optional column check and error messages that name the
//! file, line and column. Pure: reading from disk is [`crate::io::load::read_table_dir`].

use std::collections::BTreeMap;

/// Errors met while reading or interpreting a table set. Each has a stable code (`code()`), so
/// that a fund office can search for it in the documentation and the logs.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TableError {
    #[error("{file}: cannot read: {message}")]
    Io { file: String, message: String },
    #[error("{file}: line {line}: malformed csv: {message}")]
    Csv { file: String, line: u64, message: String },
    #[error("table file {file} is missing from the table set")]
    MissingFile { file: String },
    #[error("{file}: required column {column} is missing from the header")]
    MissingColumn { file: String, column: String },
    #[error("{file}: unknown column {column}; known columns are {known}")]
    UnknownColumn { file: String, column: String, known: String },
    #[error("{file}: line {line}: column {column}: {message}: {value:?}")]
    BadValue { file: String, line: u64, column: String, value: String, message: String },
    #[error("{file}: line {line}: {message}")]
    BadRow { file: String, line: u64, message: String },
}

impl TableError {
    /// Stable, documented error code.
    pub fn code(&self) -> &'static str {
        match self {
            TableError::Io { .. } => "TABLE_IO",
            TableError::Csv { .. } => "TABLE_CSV",
            TableError::MissingFile { .. } => "TABLE_MISSING_FILE",
            TableError::MissingColumn { .. } => "TABLE_MISSING_COLUMN",
            TableError::UnknownColumn { .. } => "TABLE_UNKNOWN_COLUMN",
            TableError::BadValue { .. } => "TABLE_BAD_VALUE",
            TableError::BadRow { .. } => "TABLE_BAD_ROW",
        }
    }
}

/// One CSV file held in memory: its header and its rows, with the line each row started on.
///
/// The cells are kept in one text buffer, each row a run of byte ranges into it: a table set has
/// some half a million cells, and a string apiece made allocation most of the load time.
#[derive(Debug, Clone, Default)]
pub struct SourceTable {
    pub file: String,
    pub columns: Vec<String>,
    /// Every cell's text, one after another.
    text: String,
    /// Each cell's byte range in `text`, row after row.
    cells: Vec<(u32, u32)>,
    /// Where each row's cells start in `cells` (one more entry than rows: the end).
    row_starts: Vec<u32>,
    lines: Vec<u64>,
}

/// The columns a file may have: `required` must be present, `optional` may be (a missing optional
/// column reads as empty in every row), and any other column is an error — a table set written
/// for a newer format must not be half-understood.
pub struct ColumnSpec<'a> {
    pub required: &'a [&'a str],
    pub optional: &'a [&'a str],
}

/// A view of a [`SourceTable`] whose columns were checked against a [`ColumnSpec`].
pub struct CheckedTable<'t> {
    table: &'t SourceTable,
    index: BTreeMap<&'t str, usize>,
}

/// One row of a [`CheckedTable`].
#[derive(Clone, Copy)]
pub struct Row<'t> {
    table: &'t SourceTable,
    index: &'t BTreeMap<&'t str, usize>,
    text: &'t str,
    cells: &'t [(u32, u32)],
    pub line: u64,
}

impl SourceTable {
    /// Parses CSV text (RFC 4180, header row first). Fields are kept exactly as written: no trimming.
    pub fn parse(file: &str, text: &[u8]) -> Result<SourceTable, TableError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::None).from_reader(text);
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| TableError::Csv { file: file.to_string(), line: 1, message: e.to_string() })?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut table = SourceTable {
            file: file.to_string(),
            columns,
            text: String::with_capacity(text.len()),
            cells: Vec::new(),
            row_starts: vec![0],
            lines: Vec::new(),
        };
        let too_large = || TableError::Io { file: file.to_string(), message: "larger than 4 GiB".to_string() };
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    let base = u32::try_from(table.text.len()).map_err(|_| too_large())?;
                    table.text.push_str(record.as_slice());
                    for i in 0..record.len() {
                        let range = record.range(i).unwrap_or(0..0);
                        table.cells.push((base + range.start as u32, base + range.end as u32));
                    }
                    table.row_starts.push(u32::try_from(table.cells.len()).map_err(|_| too_large())?);
                    table.lines.push(line);
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    return Err(TableError::Csv { file: file.to_string(), line, message: e.to_string() });
                }
            }
        }
        Ok(table)
    }

    /// The line each row started on.
    pub fn lines(&self) -> &[u64] {
        &self.lines
    }

    /// Number of data rows.
    pub fn row_count(&self) -> usize {
        self.lines.len()
    }

    /// The cells of row `row` (0-based), as written.
    pub fn row(&self, row: usize) -> impl Iterator<Item = &str> + '_ {
        self.row_ranges(row).iter().map(|&(start, end)| self.text.get(start as usize..end as usize).unwrap_or(""))
    }

    fn row_ranges(&self, row: usize) -> &[(u32, u32)] {
        match (self.row_starts.get(row), self.row_starts.get(row + 1)) {
            (Some(&start), Some(&end)) => self.cells.get(start as usize..end as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Appends a row that started on `line` (for tests and generated tables).
    pub fn push_row(&mut self, cells: &[&str], line: u64) -> Result<(), TableError> {
        let too_large = || TableError::Io { file: self.file.clone(), message: "larger than 4 GiB".to_string() };
        for cell in cells {
            let start = u32::try_from(self.text.len()).map_err(|_| too_large())?;
            self.text.push_str(cell);
            let end = u32::try_from(self.text.len()).map_err(|_| too_large())?;
            self.cells.push((start, end));
        }
        self.row_starts.push(u32::try_from(self.cells.len()).map_err(|_| too_large())?);
        self.lines.push(line);
        Ok(())
    }

    /// Replaces one cell (row 0-based, column by name): for tests that break a table on purpose.
    /// `false` when there is no such row or column.
    pub fn set_cell(&mut self, row: usize, column: &str, value: &str) -> bool {
        let Some(position) = self.columns.iter().position(|c| c == column) else { return false };
        let Some(&start) = self.row_starts.get(row) else { return false };
        let index = start as usize + position;
        if row + 1 >= self.row_starts.len() || index >= self.row_starts[row + 1] as usize {
            return false;
        }
        let (Ok(begin), Ok(end)) = (u32::try_from(self.text.len()), u32::try_from(self.text.len() + value.len())) else { return false };
        self.text.push_str(value);
        self.cells[index] = (begin, end);
        true
    }

    /// Checks the header against `spec` and returns a view with by-name access.
    pub fn check(&self, spec: &ColumnSpec<'_>) -> Result<CheckedTable<'_>, TableError> {
        let mut index = BTreeMap::new();
        for (position, column) in self.columns.iter().enumerate() {
            let known = spec.required.contains(&column.as_str()) || spec.optional.contains(&column.as_str());
            if !known {
                let all: Vec<&str> = spec.required.iter().chain(spec.optional).copied().collect();
                return Err(TableError::UnknownColumn { file: self.file.clone(), column: column.clone(), known: all.join(", ") });
            }
            index.insert(column.as_str(), position);
        }
        for column in spec.required {
            if !index.contains_key(column) {
                return Err(TableError::MissingColumn { file: self.file.clone(), column: column.to_string() });
            }
        }
        Ok(CheckedTable { table: self, index })
    }
}

impl<'t> CheckedTable<'t> {
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> + '_ {
        let table = self.table;
        table.lines.iter().enumerate().map(move |(i, &line)| Row {
            table,
            index: &self.index,
            text: &table.text,
            cells: table.row_ranges(i),
            line,
        })
    }

    pub fn len(&self) -> usize {
        self.table.row_count()
    }

    pub fn is_empty(&self) -> bool {
        self.table.row_count() == 0
    }
}

impl<'t> Row<'t> {
    /// The cell of `column`, exactly as written; empty when the optional column is absent or the
    /// row is short.
    pub fn get(&self, column: &str) -> &'t str {
        self.index
            .get(column)
            .and_then(|&i| self.cells.get(i))
            .and_then(|&(start, end)| self.text.get(start as usize..end as usize))
            .unwrap_or("")
    }

    /// The cell, or `None` when empty.
    pub fn non_empty(&self, column: &str) -> Option<&'t str> {
        Some(self.get(column)).filter(|v| !v.is_empty())
    }

    /// A required, non-empty cell.
    pub fn required(&self, column: &str) -> Result<&'t str, TableError> {
        self.non_empty(column).ok_or_else(|| self.bad(column, "must not be empty"))
    }

    /// An optional integer cell.
    pub fn int(&self, column: &str) -> Result<Option<i64>, TableError> {
        match self.non_empty(column) {
            None => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| self.bad(column, "not an integer")),
        }
    }

    /// An optional flag cell: empty or `0` = false, `1` = true.
    pub fn flag(&self, column: &str) -> Result<bool, TableError> {
        match self.get(column) {
            "" | "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(self.bad(column, "must be empty, 0 or 1")),
        }
    }

    /// An error about `column` in this row.
    pub fn bad(&self, column: &str, message: &str) -> TableError {
        TableError::BadValue {
            file: self.table.file.clone(),
            line: self.line,
            column: column.to_string(),
            value: self.get(column).to_string(),
            message: message.to_string(),
        }
    }

    /// An error about the row as a whole.
    pub fn bad_row(&self, message: String) -> TableError {
        TableError::BadRow { file: self.table.file.clone(), line: self.line, message }
    }
}

/// A 64-bit FNV-1a fingerprint of a table set's files (name and bytes, in name order), so that a
/// result can say exactly which table content produced it.
pub fn fingerprint(tables: &BTreeMap<String, SourceTable>) -> u64 {
    use std::hash::Hasher;
    let mut hasher = fnv::FnvHasher::default();
    for (name, table) in tables {
        hasher.write(name.as_bytes());
        hasher.write(&[0xff]);
        for column in &table.columns {
            hasher.write(column.as_bytes());
            hasher.write(&[0x1f]);
        }
        for row in 0..table.row_count() {
            for cell in table.row(row) {
                hasher.write(cell.as_bytes());
                hasher.write(&[0x1f]);
            }
            hasher.write(&[0x1e]);
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ColumnSpec<'static> = ColumnSpec { required: &["code", "name"], optional: &["extra"] };

    #[test]
    fn fields_are_not_trimmed_and_quotes_are_honoured() {
        let table = SourceTable::parse("t.csv", b"code,name\n A1,\"x, y\"\nB2 ,z\n").unwrap();
        let checked = table.check(&SPEC).unwrap();
        let rows: Vec<_> = checked.rows().collect();
        assert_eq!(rows[0].get("code"), " A1");
        assert_eq!(rows[0].get("name"), "x, y");
        assert_eq!(rows[1].get("code"), "B2 ");
        assert_eq!(rows[1].get("extra"), "", "absent optional column reads as empty");
        assert_eq!(rows[1].line, 3);
    }

    #[test]
    fn the_fingerprint_covers_names_columns_and_cells() {
        // FNV-1a over name 0xff, each column 0x1f, each cell 0x1f and 0x1e after each row: the
        // value results and stores recorded before the cells moved to one buffer.
        let table = SourceTable::parse("t.csv", b"code,name\n A1,\"x, y\"\nB2 ,z\n").unwrap();
        let tables = BTreeMap::from([("t.csv".to_string(), table.clone())]);
        assert_eq!(fingerprint(&tables), 0xbbba_a84f_39f3_3623);
        let mut changed = table;
        assert!(changed.set_cell(1, "name", "y"));
        assert_ne!(fingerprint(&BTreeMap::from([("t.csv".to_string(), changed)])), 0xbbba_a84f_39f3_3623);
    }

    #[test]
    fn unknown_and_missing_columns_are_named() {
        let table = SourceTable::parse("t.csv", b"code,colour\nA,red\n").unwrap();
        let err = table.check(&SPEC).err().unwrap();
        assert_eq!(err.code(), "TABLE_UNKNOWN_COLUMN");
        assert!(err.to_string().contains("colour"), "{err}");
        let table = SourceTable::parse("t.csv", b"code\nA\n").unwrap();
        let err = table.check(&SPEC).err().unwrap();
        assert_eq!(err.to_string(), "t.csv: required column name is missing from the header");
    }

    #[test]
    fn bad_values_name_file_line_and_column() {
        let table = SourceTable::parse("t.csv", b"code,name\nA,1\nB,x\n").unwrap();
        let checked = table.check(&SPEC).unwrap();
        let row = checked.rows().nth(1).unwrap();
        let err = row.int("name").err().unwrap();
        assert_eq!(err.to_string(), "t.csv: line 3: column name: not an integer: \"x\"");
    }
}
