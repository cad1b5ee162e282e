//! Reports: the same tables as CSV, XLSX and an HTML page a fund office reads first. Adapters
//! only: they format what settlement computed and compute nothing themselves beyond sums of its
//! columns (totals, the per-month trend). They read the tables by column name and treat columns
//! they do not know generically, so a new column of the engine's flows into every report.

pub mod html;
pub mod trend;
pub mod xlsx;

use rust_decimal::Decimal;
use std::path::Path;

/// A table of text cells with a header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The value of `key` in a `key,value` table (the run summary).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.rows.iter().find(|row| row.first().is_some_and(|k| k == key)).and_then(|row| row.get(1)).map(String::as_str)
    }
}

/// Column (or key) names whose values are identifiers or labels, never quantities, even when they
/// read as numbers: the last `_`- or `.`-separated word of the name decides.
const TEXT_NAME_ENDINGS: [&str; 13] =
    ["id", "name", "code", "period", "version", "fingerprint", "group", "fund", "mode", "scheme", "region", "key", "level"];

/// Whether a column holds identifiers or labels (`hospital_id`, `period`, `level`).
pub fn is_text_name(name: &str) -> bool {
    let last = name.rsplit(['_', '.']).next().unwrap_or(name).to_ascii_lowercase();
    TEXT_NAME_ENDINGS.contains(&last.as_str())
}

/// Words in a column name that mark a quantity which does not add up across rows: a rate, an
/// index or a score.
const NOT_ADDITIVE_WORDS: [&str; 10] =
    ["cmi", "point_value", "assessment", "ratio", "rate", "score", "factor", "index", "share", "percent"];

/// Whether a column's values add up across rows (cases, points, yuan) and are all numbers.
pub fn is_additive(table: &Table, column: usize) -> bool {
    let Some(name) = table.header.get(column) else { return false };
    let lower = name.to_ascii_lowercase();
    if is_text_name(name) || NOT_ADDITIVE_WORDS.iter().any(|word| lower.contains(word)) {
        return false;
    }
    table.rows.iter().all(|row| row.get(column).is_some_and(|cell| cell.is_empty() || cell.parse::<Decimal>().is_ok()))
        && !table.rows.is_empty()
}

/// A cell as a decimal; an empty cell is zero.
pub fn decimal(cell: &str) -> Option<Decimal> {
    if cell.is_empty() {
        return Some(Decimal::ZERO);
    }
    cell.parse().ok()
}

/// A sum as text with the decimals of its terms, and never `-0.00`.
pub fn sum_text(mut sum: Decimal) -> String {
    if sum.is_zero() {
        sum.set_sign_positive(true);
    }
    sum.to_string()
}

/// A decimal text with thousands separators in its whole part (`1234567.80` → `1,234,567.80`);
/// any other text unchanged. The decimals are the table's own.
pub fn group_thousands(text: &str) -> String {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(whole) || fraction.is_some_and(|f| !is_digits(f)) {
        return text.to_string();
    }
    let mut grouped = String::with_capacity(text.len() + whole.len() / 3);
    grouped.push_str(sign);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if let Some(fraction) = fraction {
        grouped.push('.');
        grouped.push_str(fraction);
    }
    grouped
}

/// The tables of one settlement run that the XLSX and HTML reports show.
pub struct RunTables<'a> {
    pub statements: &'a Table,
    pub summary: &'a Table,
    /// Per discharge month and fund, from the cases ([`trend::monthly_trend`]).
    pub trend: &'a Table,
    pub rejects: &'a Table,
}

/// Writes `settlement.xlsx` (sheets statements, summary, trend, rejects) and `report.html` into `out`.
pub fn write_reports(out: &Path, tables: &RunTables<'_>) -> std::io::Result<()> {
    let period = tables.summary.value("period").unwrap_or("");
    let sheets = [("statements", tables.statements), ("summary", tables.summary), ("trend", tables.trend), ("rejects", tables.rejects)];
    xlsx::write(&out.join("settlement.xlsx"), &sheets, period)?;
    std::fs::write(out.join("report.html"), html::settlement_report(tables.statements, tables.summary, Some(tables.trend)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped_and_decimals_kept() {
        assert_eq!(group_thousands("1234567.80"), "1,234,567.80");
        assert_eq!(group_thousands("-944853.93"), "-944,853.93");
        assert_eq!(group_thousands("999"), "999");
        assert_eq!(group_thousands("1000"), "1,000");
        assert_eq!(group_thousands("18.8444"), "18.8444");
        assert_eq!(group_thousands("0.00"), "0.00");
        assert_eq!(group_thousands("budget"), "budget");
        assert_eq!(group_thousands("1.2.3"), "1.2.3");
        assert_eq!(group_thousands("-"), "-");
        assert_eq!(group_thousands(""), "");
    }

    #[test]
    fn sums_never_show_negative_zero() {
        let sum: Decimal = ["1.00", "-1.00"].iter().map(|t| t.parse::<Decimal>().unwrap()).sum();
        assert_eq!(sum_text(sum), "0.00");
        assert_eq!(sum_text(-Decimal::new(0, 2)), "0.00");
        assert_eq!(sum_text(Decimal::new(-150, 2)), "-1.50");
    }

    #[test]
    fn additive_columns_are_the_quantities() {
        let table = Table {
            header: ["hospital_id", "level", "cases", "cmi", "point_value", "gross", "assessment"].map(String::from).to_vec(),
            rows: vec![["H001", "3", "19", "2.5538", "18.8444", "556231.47", "0.98"].map(String::from).to_vec()],
        };
        let additive: Vec<&str> = (0..table.header.len()).filter(|&c| is_additive(&table, c)).map(|c| table.header[c].as_str()).collect();
        assert_eq!(additive, ["cases", "gross"]);
    }
}
