//! The catalog build's history executors against each other: the reference executor (one
//! thread over each file's records) and the parallel executor (each file read in chunks on any
//! number of threads) give the same keys, cases per year and skip counts — and so the same DIP
//! catalog and DRG weights — on generated history years, on the demo cases, and on randomly
//! perturbed copies (blank lines, unreadable records, repeated ids, empty fields).

use super::demo_grouping::demo_tables;
use dipdrg::catalog_build::{build_dip_catalog, build_drg_weights, dip_key, drg_key, suggested_procedure_types, DipBuildOptions, Trim};
use dipdrg::catalog_run::{parallel, reference, HistoryFile, HistoryOutcome, KeyOf};
use dipdrg::dip::catalog::Treatment;
use dipdrg::generate::{Generator, Options};
use dipdrg::io::case_csv::{CaseReader, CaseWriter, Layout};
use proptest::prelude::*;
use rust_decimal_macros::dec;
use rustc_hash::FxHashMap;
use std::sync::OnceLock;

/// Three generated history years on the demo tables, as CSV text.
fn years() -> &'static Vec<String> {
    static YEARS: OnceLock<Vec<String>> = OnceLock::new();
    YEARS.get_or_init(|| {
        (2023..2026)
            .map(|year| {
                let options = Options {
                    cases: 3_000,
                    hospitals: 10,
                    year,
                    seed: year as u64,
                    violation_rate: 0.02,
                    case_prefix: format!("Y{year}-"),
                };
                let mut out = Vec::new();
                {
                    let mut writer = CaseWriter::new(&mut out).unwrap();
                    for (case, _) in Generator::new(demo_tables(), options) {
                        writer.write(&case).unwrap();
                    }
                    writer.flush().unwrap();
                }
                String::from_utf8(out).unwrap()
            })
            .collect()
    })
}

/// The procedure types `dipdrg tables procedure-types` suggests for the demo tables.
fn types() -> FxHashMap<String, Treatment> {
    suggested_procedure_types(demo_tables()).into_iter().collect()
}

fn levels() -> FxHashMap<String, u8> {
    (1..=10).map(|h| (format!("H{h:03}"), (h % 3) as u8)).collect()
}

/// Runs both executors on `texts` and checks they agree; returns the reference outcome.
fn both<K>(texts: &[String], key_of: KeyOf<'_, K>, threads: usize, chunk_bytes: usize) -> HistoryOutcome<K>
where
    K: std::hash::Hash + Eq + Clone + Send + std::fmt::Debug,
{
    let hospital_levels = levels();
    let expected = reference(texts.iter().map(|t| CaseReader::new(t.as_bytes()).unwrap()).collect(), &hospital_levels, key_of);
    let files = texts
        .iter()
        .map(|text| {
            let (header, body) = text.split_at(text.find('\n').unwrap() + 1);
            HistoryFile {
                source: body.as_bytes(),
                layout: Layout::from_header_line(header.as_bytes()).unwrap(),
                size_hint: Some(body.len() as u64),
            }
        })
        .collect();
    let got = parallel(files, &hospital_levels, key_of, threads, chunk_bytes).unwrap();
    assert_eq!(expected, got, "threads {threads}, chunks of {chunk_bytes}");
    assert_eq!(got.used() + got.skipped_total(), got.read);
    expected
}

#[test]
fn the_history_executors_agree_and_build_the_same_dip_catalog_and_drg_weights() {
    let texts = years();
    let types = types();
    let dip = |case: &dipdrg::case::Case| dip_key(&types, case);
    let drg = |case: &dipdrg::case::Case| drg_key(demo_tables(), case);
    let weights = [dec!(1), dec!(2), dec!(7)];
    let mut catalogs = Vec::new();
    let mut drg_weights = Vec::new();
    for (threads, chunk_bytes) in [(1, 1 << 20), (2, 30_000), (4, 3_000)] {
        let history = both(texts, &dip, threads, chunk_bytes);
        assert_eq!(history.read, 9_000);
        assert!(history.keys.len() > 20, "enough combinations to intern in different orders");
        let options = DipBuildOptions {
            weights: weights.to_vec(),
            scale: dec!(1000),
            min_cases: 15,
            coverage: dec!(0.85),
            trim: Trim::StdDev(dec!(3)),
            score_decimals: 2,
            grassroots: Vec::new(),
        };
        catalogs.push(build_dip_catalog(&history.keys, history.years, &["a".into(), "b".into(), "c".into()], &options));
        let history = both(texts, &drg, threads, chunk_bytes);
        drg_weights.push(build_drg_weights(demo_tables(), &history.keys, &history.years, &weights, Trim::StdDev(dec!(3)), 3, 4));
    }
    assert!(catalogs[0].as_ref().is_some_and(|(rows, _)| !rows.is_empty()));
    assert!(drg_weights[0].as_ref().is_some_and(|(rows, _)| !rows.is_empty()));
    assert!(catalogs.windows(2).all(|w| w[0] == w[1]));
    assert!(drg_weights.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn the_history_executors_agree_on_the_demo_cases() {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grouper-tables/demo/cases.csv")).unwrap();
    let drg = |case: &dipdrg::case::Case| drg_key(demo_tables(), case);
    for (threads, chunk_bytes) in [(1, 1 << 20), (2, 4096), (4, 500)] {
        let history = both(std::slice::from_ref(&text), &drg, threads, chunk_bytes);
        assert_eq!(history.read, 2000);
        assert!(history.skipped_total() > 0, "the demo cases include ones that do not group to a DRG");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_history_executors_agree_on_perturbed_inputs(
        edits in prop::collection::vec((0usize..3, 0usize..3000, 0u8..6), 0..80),
        threads in 1usize..5,
        chunk_bytes in 200usize..40_000,
    ) {
        let mut files: Vec<Vec<String>> = years().iter().map(|t| t.lines().take(800).map(str::to_string).collect()).collect();
        for (file, at, kind) in edits {
            let lines = &mut files[file];
            let at = 1 + at % (lines.len() - 1);
            let line = lines[at].clone();
            match kind {
                0 => lines.insert(at, line),                              // repeated id
                1 => lines.insert(at, String::new()),                     // blank line
                2 => lines[at] = line.replacen(",2", ",x2", 1),           // unreadable value
                3 => lines[at] = line.replacen(',', ",,", 1),             // a field too many
                4 => lines[at] = line.replace(",K", ",,K"),               // shifted (empty) diagnosis field
                _ => lines[at] = line.rsplitn(4, ',').last().unwrap_or("").to_string() + ",,,", // empty amounts
            }
        }
        let texts: Vec<String> = files.into_iter().map(|lines| lines.join("\n") + "\n").collect();
        let types = types();
        let dip = |case: &dipdrg::case::Case| dip_key(&types, case);
        both(&texts, &dip, threads, chunk_bytes);
        let drg = |case: &dipdrg::case::Case| drg_key(demo_tables(), case);
        both(&texts, &drg, threads, chunk_bytes);
    }
}
