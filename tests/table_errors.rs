//! A broken table set is refused at load with an error naming the file, line and column.

use dipdrg::drg::tables::{DrgTableSet, FILES, OPTIONAL_FILES};
use dipdrg::io::load::read_table_dir;
use dipdrg::tables::source::SourceTable;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn demo_sources() -> BTreeMap<String, SourceTable> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grouper-tables/demo");
    let names: Vec<&str> = FILES.iter().map(|(name, _, _)| *name).filter(|name| !OPTIONAL_FILES.contains(name)).collect();
    read_table_dir(&dir, &names, OPTIONAL_FILES).expect("demo tables read")
}

fn build_error(edit: impl FnOnce(&mut BTreeMap<String, SourceTable>)) -> String {
    let mut sources = demo_sources();
    edit(&mut sources);
    match DrgTableSet::build("broken".into(), &sources) {
        Ok(_) => "loaded".to_string(),
        Err(e) => format!("{}: {e}", e.code()),
    }
}

fn set_cell(table: &mut SourceTable, row: usize, column: &str, value: &str) {
    assert!(table.set_cell(row, column, value), "no row {row} or column {column}");
}

#[test]
fn the_demo_set_builds() {
    assert_eq!(build_error(|_| {}), "loaded");
}

#[test]
fn an_unknown_drg_condition_is_named() {
    let message = build_error(|s| set_cell(s.get_mut("drg.csv").unwrap(), 0, "condition", "sometimes"));
    assert_eq!(message, "TABLE_BAD_VALUE: drg.csv: line 2: column condition: must be always, mcc, mcc_or_cc, cc or never: \"sometimes\"");
}

#[test]
fn a_rule_in_an_unknown_mdc_is_named() {
    let message = build_error(|s| set_cell(s.get_mut("adrg.csv").unwrap(), 2, "mdc", "Q"));
    assert_eq!(message, "TABLE_BAD_VALUE: adrg.csv: line 4: column mdc: no such MDC in mdc.csv: \"Q\"");
}

#[test]
fn a_drg_of_an_unknown_adrg_is_named() {
    let message = build_error(|s| set_cell(s.get_mut("drg.csv").unwrap(), 5, "adrg", "ZZ9"));
    assert_eq!(message, "TABLE_BAD_VALUE: drg.csv: line 7: column adrg: no such ADRG in adrg.csv: \"ZZ9\"");
}

#[test]
fn an_unknown_column_is_refused() {
    let message = build_error(|s| s.get_mut("mdc.csv").unwrap().columns[3] = "colour".into());
    assert!(message.starts_with("TABLE_UNKNOWN_COLUMN: mdc.csv: unknown column colour"), "{message}");
}

#[test]
fn a_missing_file_is_refused() {
    let message = build_error(|s| {
        s.remove("mcc.csv");
    });
    assert_eq!(message, "TABLE_MISSING_FILE: table file mcc.csv is missing from the table set");
}

#[test]
fn conflicting_rows_are_refused() {
    let message = build_error(|s| {
        let mcc = s.get_mut("mcc.csv").unwrap();
        let code = mcc.row(0).next().expect("a code").to_string();
        mcc.push_row(&[&code, "99"], 99).expect("row added");
    });
    assert!(message.contains("mcc.csv: line 99") && message.contains("listed twice with different exclusion tables"), "{message}");
}

#[test]
fn a_bad_tag_expression_is_named() {
    let message = build_error(|s| {
        let adrg = s.get_mut("adrg.csv").unwrap();
        set_cell(adrg, 0, "proc_tag_list", "ADRG_AB1_PPROC");
        set_cell(adrg, 0, "proc_tag_expr", "1+x");
    });
    assert_eq!(message, "TABLE_BAD_VALUE: adrg.csv: line 2: column proc_tag_expr: expected tags 1..31 joined by + and |: \"1+x\"");
}
