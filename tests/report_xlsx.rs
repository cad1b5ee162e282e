//! `settlement.xlsx` read back: with `calamine`, every cell of the statements, summary and rejects
//! sheets equals its CSV table (numbers to the fen and beyond: exactly), the trend sheet equals
//! the cases summed by month; from the package's XML, the number formats, the frozen header row,
//! the autofilter and the fitted widths.

use calamine::{Data, Reader};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `dipdrg settle` on the demo data (DRG annual 2026 or DIP monthly 2026-03) into `out`.
pub(crate) fn settle_demo(scheme: &str, mode: &str, out: &Path) {
    let (policy, tables) = match scheme {
        "dip" => ("policies/demo-city-2026-dip.toml", "grouper-tables/demo-dip"),
        _ => ("policies/demo-city-2026-drg.toml", "grouper-tables/demo"),
    };
    let period = if mode == "monthly" { "2026-03" } else { "2026" };
    let output = Command::new(env!("CARGO_BIN_EXE_dipdrg"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["settle", "-q", "--policy", policy, "--tables", tables, "--cases", "grouper-tables/demo/cases.csv"])
        .args(["--violations", "grouper-tables/demo/violations.csv", "--reviews", "grouper-tables/demo/reviews.csv"])
        .args(["--mode", mode, "--period", period, "--out"])
        .arg(out)
        .output()
        .expect("dipdrg runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dipdrg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CSV file as header and rows of text.
pub(crate) fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader.records().map(|r| r.unwrap().iter().map(String::from).collect()).collect();
    (header, rows)
}

/// A sheet's cell as the text the CSV has: numbers must read back as exactly the CSV's decimal.
fn cell_equals(cell: &Data, csv_text: &str) -> bool {
    match cell {
        Data::Empty => csv_text.is_empty(),
        Data::String(text) => text == csv_text,
        Data::Float(value) => {
            let written: Decimal = format!("{value}").parse().unwrap();
            csv_text.parse::<Decimal>().is_ok_and(|expected| expected == written)
        }
        Data::Int(value) => csv_text.parse::<Decimal>().is_ok_and(|expected| expected == Decimal::from(*value)),
        _ => false,
    }
}

fn sheet(workbook: &mut calamine::Xlsx<std::io::Cursor<Vec<u8>>>, name: &str) -> calamine::Range<Data> {
    workbook.worksheet_range(name).unwrap_or_else(|e| panic!("sheet {name}: {e}"))
}

fn assert_sheet_equals_csv(range: &calamine::Range<Data>, csv: &Path) {
    let (header, rows) = read_csv(csv);
    let sheet_rows: Vec<&[Data]> = range.rows().collect();
    assert_eq!(sheet_rows.len(), rows.len() + 1, "{}: rows", csv.display());
    for (c, name) in header.iter().enumerate() {
        assert_eq!(sheet_rows[0].get(c), Some(&Data::String(name.clone())), "{}: header {c}", csv.display());
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, text) in row.iter().enumerate() {
            let cell = sheet_rows[r + 1].get(c).unwrap_or(&Data::Empty);
            assert!(cell_equals(cell, text), "{}: record {} field {}: sheet has {cell:?}, CSV {text:?}", csv.display(), r + 1, header[c]);
        }
    }
}

/// The XML of one part of the workbook package.
fn part(bytes: &[u8], name: &str) -> String {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut text = String::new();
    archive.by_name(name).unwrap_or_else(|e| panic!("{name}: {e}")).read_to_string(&mut text).unwrap();
    text
}

/// The value of `attribute` in an XML start tag.
fn attribute<'a>(tag: &'a str, attribute: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {attribute}=\""))? + attribute.len() + 3;
    tag[start..].split('"').next()
}

/// The number format code of each cell style index (`cellXfs` order).
fn style_formats(styles: &str) -> Vec<String> {
    let mut codes: BTreeMap<String, String> = BTreeMap::new();
    for tag in styles.split("<numFmt ").skip(1) {
        let tag = format!(" {tag}");
        let tag = tag.as_str();
        codes.insert(attribute(tag, "numFmtId").unwrap().into(), attribute(tag, "formatCode").unwrap().replace("&quot;", "\""));
    }
    let cell_xfs = styles.split("<cellXfs").nth(1).unwrap().split("</cellXfs>").next().unwrap();
    cell_xfs
        .split("<xf ")
        .skip(1)
        .map(|tag| {
            let tag = format!(" {tag}");
            let id = attribute(&tag, "numFmtId").unwrap_or("0");
            codes.get(id).cloned().unwrap_or_else(|| format!("builtin {id}"))
        })
        .collect()
}

/// The number format of the cell at `reference` (`P2`) in a sheet's XML.
fn cell_format(sheet_xml: &str, formats: &[String], reference: &str) -> String {
    let tag = sheet_xml.split(&format!("<c r=\"{reference}\"")).nth(1).unwrap_or_else(|| panic!("no cell {reference}"));
    let tag = tag.split('>').next().unwrap();
    let style: usize = attribute(tag, "s").map(|s| s.parse().unwrap()).unwrap_or(0);
    formats[style].clone()
}

fn column_letter(index: usize) -> String {
    assert!(index < 26 * 27);
    if index < 26 {
        ((b'A' + index as u8) as char).to_string()
    } else {
        format!("{}{}", (b'A' + (index / 26 - 1) as u8) as char, (b'A' + (index % 26) as u8) as char)
    }
}

#[test]
fn workbook_cells_equal_the_csv_tables_with_number_formats_and_a_frozen_header() {
    for (scheme, mode) in [("drg", "annual"), ("dip", "monthly")] {
        let out = scratch(&format!("xlsx-{scheme}-{mode}"));
        settle_demo(scheme, mode, &out);
        let bytes = std::fs::read(out.join("settlement.xlsx")).unwrap();
        let mut workbook: calamine::Xlsx<_> = calamine::Xlsx::new(std::io::Cursor::new(bytes.clone())).unwrap();
        assert_eq!(workbook.sheet_names(), ["statements", "summary", "trend", "rejects"]);
        for (name, csv) in [("statements", "statements.csv"), ("summary", "summary.csv"), ("rejects", "rejects.csv")] {
            assert_sheet_equals_csv(&sheet(&mut workbook, name), &out.join(csv));
        }

        // The trend sheet: the cases of cases.csv counted and their amounts summed per month and fund.
        let (header, cases) = read_csv(&out.join("cases.csv"));
        let column = |name: &str| header.iter().position(|h| h == name).unwrap();
        let (month, fund, amount) = (column("month"), column("fund"), column("amount"));
        let mut by_month: BTreeMap<(u32, String), (u64, Decimal)> = BTreeMap::new();
        for case in &cases {
            let entry = by_month.entry((case[month].parse().unwrap(), case[fund].clone())).or_default();
            entry.0 += 1;
            entry.1 += case[amount].parse::<Decimal>().unwrap();
        }
        let trend = sheet(&mut workbook, "trend");
        let trend_rows: Vec<&[Data]> = trend.rows().collect();
        let trend_header: Vec<String> = trend_rows[0].iter().map(|c| c.to_string()).collect();
        let amount_column = trend_header.iter().position(|h| h == "amount").unwrap();
        assert_eq!(trend_rows.len(), by_month.len() + 2, "{scheme} {mode}: a row per month and fund, and the total");
        let year = "2026";
        for (row, ((m, f), (count, sum))) in trend_rows[1..].iter().zip(&by_month) {
            assert_eq!(row[0], Data::String(format!("{year}-{m:02}")));
            assert_eq!(row[1], Data::String(f.clone()));
            assert!(cell_equals(&row[2], &count.to_string()), "{row:?}");
            assert!(cell_equals(&row[amount_column], &sum.to_string()), "{row:?} against {sum}");
        }
        let total: Decimal = by_month.values().map(|(_, sum)| sum).sum();
        assert!(cell_equals(&trend_rows.last().unwrap()[amount_column], &total.to_string()));
        if mode == "monthly" {
            assert!(by_month.keys().all(|(m, _)| *m == 3), "a monthly run's trend holds its month");
        } else {
            assert!(by_month.keys().map(|(m, _)| m).collect::<std::collections::BTreeSet<_>>().len() > 6, "the year's months");
        }

        // Number formats: money with 2 decimals, counts without, the point value with its 4.
        let formats = style_formats(&part(&bytes, "xl/styles.xml"));
        let statements_xml = part(&bytes, "xl/worksheets/sheet1.xml");
        let (statements_header, statements_rows) = read_csv(&out.join("statements.csv"));
        let at = |name: &str| column_letter(statements_header.iter().position(|h| h == name).unwrap());
        for money in ["gross", "patient_paid", "total_cost"] {
            assert_eq!(cell_format(&statements_xml, &formats, &format!("{}2", at(money))), "#,##0.00", "{money}");
        }
        assert_eq!(cell_format(&statements_xml, &formats, &format!("{}2", at("cases"))), "#,##0");
        let point_value_decimals =
            statements_rows[0][statements_header.iter().position(|h| h == "point_value").unwrap()].split('.').nth(1).map_or(0, str::len);
        assert_eq!(
            cell_format(&statements_xml, &formats, &format!("{}2", at("point_value"))),
            format!("#,##0.{}", "0".repeat(point_value_decimals))
        );
        assert_eq!(cell_format(&statements_xml, &formats, "A2"), "builtin 0", "hospital ids stay text");

        // Every sheet: a frozen header row, an autofilter over the table, fitted column widths.
        for n in 1..=4 {
            let xml = part(&bytes, &format!("xl/worksheets/sheet{n}.xml"));
            assert!(xml.contains(r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#), "sheet {n}");
            assert!(xml.contains("<autoFilter ref=\"A1:"), "sheet {n}");
            assert!(xml.contains("customWidth=\"1\""), "sheet {n}");
        }
        let _ = std::fs::remove_dir_all(out);
    }
}
