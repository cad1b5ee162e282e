//! The settlement workbook, written with `rust_xlsxwriter`: one sheet per table, numbers as numbers
//! with the decimals the table was written with, widths fitted to the contents, a frozen bold header
//! row and an autofilter. It formats cells only; every value is the table's own text.
//!
//! A cell becomes a number only when the number reads back exactly (Excel stores an IEEE double):
//! a 27-digit exact point value, or an identifier such as `007` or a period `2026`, stays text.

use super::{is_text_name, Table};
use rust_decimal::Decimal;
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError};
use std::collections::BTreeMap;
use std::path::Path;

/// Excel's rows per sheet, header included.
const EXCEL_MAX_ROWS: usize = 1_048_576;
/// The widest a fitted column grows, in character widths.
const MAX_COLUMN_WIDTH: u32 = 48;
/// The most decimals a number format shows.
const MAX_FORMAT_DECIMALS: u32 = 10;

/// The value of a cell written as a number, when it is a plain decimal (no sign `+`, no leading zero
/// as in `007`) whose double reads back as the same decimal; with its decimals.
pub fn as_number(text: &str) -> Option<(f64, u32)> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if digits.is_empty() || leading_zero || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let decimal: Decimal = text.parse().ok()?;
    let double: f64 = text.parse().ok()?;
    let read_back: Decimal = format!("{double}").parse().ok()?;
    (read_back == decimal && double.is_finite()).then_some((double, decimal.scale()))
}

/// `#,##0` with `decimals` zeros after the point.
fn number_format(decimals: u32) -> String {
    let decimals = decimals.min(MAX_FORMAT_DECIMALS) as usize;
    if decimals == 0 {
        "#,##0".to_string()
    } else {
        format!("#,##0.{}", "0".repeat(decimals))
    }
}

/// Formats by number of decimals, made once per workbook.
#[derive(Default)]
struct NumberFormats(BTreeMap<u32, Format>);

impl NumberFormats {
    fn get(&mut self, decimals: u32) -> &Format {
        self.0.entry(decimals.min(MAX_FORMAT_DECIMALS)).or_insert_with(|| Format::new().set_num_format(number_format(decimals)))
    }
}

/// How a column is written: as text, or as numbers with one format.
#[derive(Clone, Copy, PartialEq, Debug)]
enum ColumnKind {
    Text,
    Numbers { decimals: u32 },
}

/// A column is numeric when its name is not an identifier's and every non-empty cell is a number;
/// its format shows the most decimals any of its cells has.
fn column_kinds(table: &Table) -> Vec<ColumnKind> {
    let mut kinds = Vec::with_capacity(table.header.len());
    for (c, name) in table.header.iter().enumerate() {
        if is_text_name(name) {
            kinds.push(ColumnKind::Text);
            continue;
        }
        let mut decimals = 0;
        let mut numeric = false;
        for row in &table.rows {
            let cell = row.get(c).map(String::as_str).unwrap_or("");
            if cell.is_empty() {
                continue;
            }
            match as_number(cell) {
                Some((_, scale)) => {
                    decimals = decimals.max(scale);
                    numeric = true;
                }
                None => {
                    numeric = false;
                    break;
                }
            }
        }
        kinds.push(if numeric { ColumnKind::Numbers { decimals } } else { ColumnKind::Text });
    }
    kinds
}

/// A `key,value` table (the run summary): each value is judged on its own, by its key.
fn is_key_value(table: &Table) -> bool {
    table.header.len() == 2 && table.header[0] == "key"
}

fn write_sheet(worksheet: &mut Worksheet, table: &Table, header_format: &Format, formats: &mut NumberFormats) -> Result<(), XlsxError> {
    for (c, name) in table.header.iter().enumerate() {
        worksheet.write_string_with_format(0, c as u16, name, header_format)?;
    }
    let key_value = is_key_value(table);
    let kinds = column_kinds(table);
    let room = EXCEL_MAX_ROWS - 2; // the header and a note when rows are left out
    for (r, row) in table.rows.iter().take(room).enumerate() {
        let excel_row = r as u32 + 1;
        for (c, cell) in row.iter().enumerate() {
            let column = c as u16;
            let number = match (key_value, kinds.get(c)) {
                (true, _) if c == 1 && !row.first().is_some_and(|key| is_text_name(key)) => as_number(cell),
                (false, Some(ColumnKind::Numbers { decimals })) => as_number(cell).map(|(value, _)| (value, *decimals)),
                _ => None,
            };
            match number {
                Some((value, decimals)) => worksheet.write_number_with_format(excel_row, column, value, formats.get(decimals))?,
                None if cell.is_empty() => worksheet,
                None => worksheet.write_string(excel_row, column, cell)?,
            };
        }
    }
    let written = table.rows.len().min(room);
    if written < table.rows.len() {
        let note = format!("{} more rows are in the CSV file (a sheet holds {EXCEL_MAX_ROWS} rows)", table.rows.len() - written);
        worksheet.write_string(written as u32 + 1, 0, note)?;
    }
    if !table.header.is_empty() {
        worksheet.autofilter(0, 0, written as u32, table.header.len() as u16 - 1)?;
    }
    worksheet.set_freeze_panes(1, 0)?;
    worksheet.set_autofit_max_width(MAX_COLUMN_WIDTH * 7 + 5); // pixels: 7 per character and padding
    worksheet.autofit();
    Ok(())
}

/// The workbook's creation date (year, month; day 1): the first day of the run's period (`YYYY-MM`
/// or `YYYY`), so the same run writes the same bytes; 2000-01 when the period does not read as one.
fn creation_month(period: &str) -> (u16, u8) {
    let mut parts = period.split('-');
    let year = parts.next().and_then(|y| y.parse::<u16>().ok()).filter(|y| (1900..=9999).contains(y));
    let month = parts.next().and_then(|m| m.parse::<u8>().ok()).filter(|m| (1..=12).contains(m)).unwrap_or(1);
    match year {
        Some(year) => (year, month),
        None => (2000, 1),
    }
}

/// The workbook's bytes: one sheet per `(name, table)`, in order.
pub fn workbook(sheets: &[(&str, &Table)], period: &str) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let (year, month) = creation_month(period);
    let created = ExcelDateTime::from_ymd(year, month, 1)?;
    let properties = DocProperties::new().set_title("dipdrg settlement").set_author("dipdrg").set_creation_datetime(&created);
    workbook.set_properties(&properties);
    let header_format = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Top)
        .set_border_bottom(FormatBorder::Thin)
        .set_background_color(0xF0F0F0);
    let mut formats = NumberFormats::default();
    for (name, table) in sheets {
        let worksheet = workbook.add_worksheet();
        worksheet.set_name(*name)?;
        write_sheet(worksheet, table, &header_format, &mut formats)?;
    }
    workbook.save_to_buffer()
}

/// Writes an `.xlsx` file.
pub fn write(path: &Path, sheets: &[(&str, &Table)], period: &str) -> std::io::Result<()> {
    let bytes = workbook(sheets, period).map_err(|e| std::io::Error::other(format!("writing {}: {e}", path.display())))?;
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back_exactly_or_stay_text() {
        assert_eq!(as_number("350000.00"), Some((350000.0, 2)));
        assert_eq!(as_number("-1.5"), Some((-1.5, 1)));
        assert_eq!(as_number("0.98"), Some((0.98, 2)));
        assert_eq!(as_number("007"), None, "an id with a leading zero");
        assert_eq!(as_number("+3"), None);
        assert_eq!(as_number("1e5"), None);
        assert_eq!(as_number(""), None);
        assert_eq!(as_number("18.844444444444444444444444444"), None, "more digits than a double holds");
        assert_eq!(as_number("12345678901234567.89"), None);
    }

    #[test]
    fn identifier_columns_stay_text() {
        assert!(is_text_name("hospital_id") && is_text_name("tables_fingerprint") && is_text_name("period"));
        assert!(!is_text_name("gross") && !is_text_name("cases"));
        let table = Table {
            header: vec!["hospital_id".into(), "amount".into(), "note".into()],
            rows: vec![vec!["1001".into(), "1.50".into(), "3".into()], vec!["1002".into(), "2".into(), "x".into()]],
        };
        assert_eq!(column_kinds(&table), [ColumnKind::Text, ColumnKind::Numbers { decimals: 2 }, ColumnKind::Text]);
    }

    #[test]
    fn number_formats_show_the_decimals() {
        assert_eq!(number_format(0), "#,##0");
        assert_eq!(number_format(2), "#,##0.00");
        assert_eq!(number_format(4), "#,##0.0000");
    }

    #[test]
    fn creation_date_comes_from_the_period() {
        assert_eq!(creation_month("2026-03"), (2026, 3));
        assert_eq!(creation_month("2026"), (2026, 1));
        assert_eq!(creation_month("garbage"), (2000, 1));
    }

    #[test]
    fn same_tables_same_bytes() {
        let table = Table { header: vec!["id".into(), "amount".into()], rows: vec![vec!["H<1>".into(), "350000.00".into()]] };
        let first = workbook(&[("statements", &table)], "2026-03").unwrap();
        let second = workbook(&[("statements", &table)], "2026-03").unwrap();
        assert_eq!(first, second);
        assert_eq!(&first[..2], b"PK");
    }
}
