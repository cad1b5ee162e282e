//! Properties that must hold for any input: the grouper never panics and always returns a
//! well-formed result; the case reader accounts for every record.

use super::demo_grouping::demo_tables;
use dipdrg::case::Case;
use dipdrg::drg::trace::render;
use dipdrg::drg::{group, GroupStatus, MappingMode, Trace};
use dipdrg::io::case_csv::{CaseReader, ChunkReader, Layout};
use proptest::prelude::*;

/// Codes from the demo tables mixed with arbitrary strings, so that cases reach deep rules.
fn code() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "J18.900", "J96.000", "J44.100", "I10.x00", "I10.x01", "K35.800", "K35.300", "47.0100", "47.09", "31.1x00", "96.7200", "P07.300",
        "C61.x00", "O80.000", "74.1x00", "Z51.100", "99.2500", "E11.900", "A41.900", "S72.000", "81.5100", "",
    ]);
    prop_oneof![4 => known.prop_map(str::to_string), 1 => "\\PC{0,12}"]
}

fn any_case() -> impl Strategy<Value = Case> {
    (
        prop::option::of(-3i64..5),
        prop::option::of(0i64..120),
        prop::option::of(0i64..400),
        prop::option::of(0i64..5000),
        prop::option::of(0i64..90),
        prop::collection::vec(code(), 0..8),
        prop::collection::vec(code(), 0..6),
    )
        .prop_map(|(sex, age, age_days, birth_weight, los, diagnoses, procedures)| Case {
            case_id: "P".into(),
            sex,
            age,
            age_days,
            birth_weight,
            los,
            diagnoses,
            procedures,
            ..Case::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn grouping_any_case_never_panics_and_is_well_formed(case in any_case(), no_map in any::<bool>()) {
        let tables = demo_tables();
        let mode = if no_map { MappingMode::NoMap } else { MappingMode::Map };
        let mut trace = Trace::default();
        let result = group(tables, &case, mode, &mut trace);
        let lines = render(&trace.steps, tables, &case);
        prop_assert!(!lines.is_empty());
        match result.status {
            GroupStatus::Success => {
                prop_assert!(result.mdc.is_some() && result.adrg.is_some());
                prop_assert_eq!(result.drg_code(tables).len(), 4);
            }
            _ => prop_assert_eq!(result.drg_code(tables), "0000"),
        }
        // Same input, same answer.
        prop_assert_eq!(group(tables, &case, mode, &mut dipdrg::drg::NoTrace), result);
    }

    #[test]
    fn every_record_is_accepted_or_rejected(lines in prop::collection::vec(
        prop::collection::vec(prop_oneof!["[0-9]{0,3}", "-?[0-9]{1,4}\\.[0-9]{1,3}", "\\PC{0,6}", Just("2024-02-30".to_string())], 6..7), 0..30)) {
        let mut text = String::from("case_id,age,diagnoses,total_cost,admission_date,discharge_date\n");
        for fields in &lines {
            let escaped: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect();
            text.push_str(&escaped.join(","));
            text.push('\n');
        }
        let results: Vec<_> = CaseReader::new(text.as_bytes()).unwrap().collect();
        prop_assert_eq!(results.len(), lines.len());
        for (i, result) in results.iter().enumerate() {
            if let Err(rejected) = result {
                prop_assert_eq!(rejected.record, i as u64 + 1);
                prop_assert!(!rejected.reason.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut text = b"case_id,diagnoses,los\n".to_vec();
        text.extend_from_slice(&bytes);
        if let Ok(reader) = CaseReader::new(&text[..]) {
            let mut accepted = 0;
            let mut rejected = 0;
            for item in reader {
                match item { Ok(_) => accepted += 1, Err(_) => rejected += 1 }
            }
            prop_assert!(accepted + rejected <= bytes.len() + 1);
        }
    }

    /// The chunk reader's fast path (records split on commas) gives what the csv reader gives:
    /// the same cases and the same rejections, for text built from awkward pieces (quotes,
    /// stray CRs, blank lines, CRLF, bad UTF-8, short and long records).
    #[test]
    fn the_chunk_reader_reads_what_the_csv_reader_reads(pieces in prop::collection::vec(prop_oneof![
        6 => prop::sample::select(vec!["C1", "C2,H1", "J18.900|J96.000", "2024-01-02", "2024-01-05", "12", "-3", "1.234", "99.5", "employee", "x"])
            .prop_map(|s| s.as_bytes().to_vec()),
        6 => Just(b",".to_vec()),
        3 => Just(b"\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        1 => Just(b"\"".to_vec()),
        1 => Just(b"\"a,\"\"b\"".to_vec()),
        1 => Just(vec![0xff, 0xfe]),
        1 => Just("住院".as_bytes().to_vec()),
    ], 0..80)) {
        let header = b"case_id,diagnoses,admission_date,discharge_date,los,total_cost,fund";
        let layout = Layout::from_header_line(header).unwrap();
        let body: Vec<u8> = pieces.concat();
        let summary = |r: Result<Case, dipdrg::io::case_csv::RejectedRecord>| match r {
            Ok(case) => Ok(case),
            // The csv reader's own message names positions in its buffer: compare the rest.
            Err(rejected) => Err((rejected.record, rejected.case_id, rejected.field, rejected.value, rejected.reason.starts_with("cannot be read"))),
        };
        let expected: Vec<_> = CaseReader::headerless(&body[..], layout.clone(), 0).map(summary).collect();
        let mut reader = ChunkReader::new(&body, layout, 0);
        let mut got = Vec::new();
        let mut case = Case::default();
        while let Some(item) = reader.next_into(&mut case) {
            got.push(summary(item.map(|()| case.clone())));
        }
        prop_assert_eq!(got, expected);
    }
}
