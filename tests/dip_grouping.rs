//! DIP grouping: each preference rule of the grouper on a small catalog, and the shipped demo
//! catalog end to end.

use dipdrg::case::Case;
use dipdrg::dip::{group, DipCatalog, DipStatus};
use dipdrg::tables::source::SourceTable;
use rust_decimal_macros::dec;
use std::collections::BTreeMap;
use std::path::PathBuf;

const CATALOG: &str = "\
code,name,kind,diagnosis,procedures,treatment,score,mean_cost,mean_los,mean_cost_level_3
K80.1-001,胆囊结石伴胆囊炎 保守,core,K80.1,,,500,5000,6,6000
K80.1-002,胆囊结石伴胆囊炎 腹腔镜胆囊切除,core,K80.1,51.2300,,1500,15000,7,
K80.1-003,胆囊结石伴胆囊炎 胆囊切除+胆总管探查,core,K80.1,51.2300+51.2200/51.2201,,2500,25000,10,
K80.1-004,胆囊结石伴胆囊炎 基层,grassroots,K80.1,,,450,4800,5,
K81.0-001,急性胆囊炎 低费用,core,K81.0,,,400,5000,5,
K81.0-002,急性胆囊炎 高费用,core,K81.0,,,700,9000,7,
K80-ZS,胆石症 综合 手术,comprehensive,K80,,surgery,1800,18000,9,
K80-ZC,胆石症 综合 保守,comprehensive,K80,,conservative,450,4500,6,
K00-K93-ZT,消化系统 综合 治疗性操作,comprehensive,K00-K93,,therapeutic,900,9000,8,
A00-Z99-ZT,全部 综合 治疗性操作,comprehensive,A00-Z99,,therapeutic,950,9500,8,
";

const TYPES: &str = "\
code,type
51.2300,surgery
51.2200,surgery
51.2201,surgery
45.1300,diagnostic
99.2500,therapeutic
";

fn catalog() -> DipCatalog {
    let mut sources = BTreeMap::new();
    sources.insert("catalog.csv".to_string(), SourceTable::parse("catalog.csv", CATALOG.as_bytes()).unwrap());
    sources.insert("procedure_types.csv".to_string(), SourceTable::parse("procedure_types.csv", TYPES.as_bytes()).unwrap());
    DipCatalog::build("test".into(), &sources).expect("catalog builds")
}

fn case(diagnosis: &str, procedures: &[&str], cost: Option<rust_decimal::Decimal>) -> Case {
    Case {
        case_id: "D1".into(),
        diagnoses: vec![diagnosis.to_string()],
        procedures: procedures.iter().map(|p| p.to_string()).collect(),
        total_cost: cost,
        ..Case::default()
    }
}

fn grouped(catalog: &DipCatalog, case: &Case) -> (DipStatus, String) {
    let result = group(catalog, case, None, None);
    (result.status, result.group_code(catalog).to_string())
}

#[test]
fn the_most_specific_combination_wins() {
    let c = catalog();
    assert_eq!(grouped(&c, &case("K80.100x001", &["51.2300", "51.2201"], None)), (DipStatus::Core, "K80.1-003".into()));
    assert_eq!(grouped(&c, &case("K80.100", &["51.2300"], None)), (DipStatus::Core, "K80.1-002".into()));
    assert_eq!(grouped(&c, &case("K80.100", &["51.2201"], None)).0, DipStatus::Comprehensive, "a lone alternative is not the combination");
}

#[test]
fn core_comes_before_grassroots_and_diagnostic_procedures_stay_conservative() {
    let c = catalog();
    assert_eq!(grouped(&c, &case("K80.100", &[], None)), (DipStatus::Core, "K80.1-001".into()));
    assert_eq!(grouped(&c, &case("K80.100", &["45.1300"], None)), (DipStatus::Core, "K80.1-001".into()));
}

#[test]
fn nearest_mean_cost_breaks_a_remaining_tie() {
    let c = catalog();
    assert_eq!(grouped(&c, &case("K81.000", &[], Some(dec!(8000)))).1, "K81.0-002");
    assert_eq!(grouped(&c, &case("K81.000", &[], Some(dec!(5500)))).1, "K81.0-001");
    assert_eq!(grouped(&c, &case("K81.000", &[], None)).1, "K81.0-001", "without a cost, the code decides");
}

#[test]
fn cases_no_core_group_takes_fall_into_comprehensive_groups() {
    let c = catalog();
    // K80.2 has no core group: its category's surgical comprehensive group.
    assert_eq!(grouped(&c, &case("K80.200", &["51.2300"], None)), (DipStatus::Comprehensive, "K80-ZS".into()));
    // A therapeutic procedure: no K80 therapeutic group, so the narrowest range that has one.
    assert_eq!(grouped(&c, &case("K80.100", &["99.2500"], None)), (DipStatus::Comprehensive, "K00-K93-ZT".into()));
    assert_eq!(grouped(&c, &case("J18.900", &["99.2500"], None)), (DipStatus::Comprehensive, "A00-Z99-ZT".into()));
    // Nothing for a conservative J18: not grouped.
    assert_eq!(grouped(&c, &case("J18.900", &[], None)), (DipStatus::NotGrouped, String::new()));
}

#[test]
fn the_trace_says_why() {
    let c = catalog();
    let mut trace = Vec::new();
    group(&c, &case("K80.100", &["51.2300", "99.9999"], None), None, Some(&mut trace));
    assert_eq!(
        trace,
        vec![
            "treatment type of the case: surgery",
            "core group K80.1-001 (K80.1 + conservative) does not match",
            "core group K80.1-002 (K80.1 + 51.2300) matches",
            "core group K80.1-003 (K80.1 + 51.2300+51.2200/51.2201) does not match",
            "grassroots group K80.1-004 (K80.1 + conservative) does not match",
            "chosen core K80.1-002",
        ]
    );
    let result = group(&c, &case("K80.100", &["51.2300", "99.9999"], None), None, None);
    assert_eq!(result.untyped_procedures.as_slice(), &[1], "the unknown procedure is named, not dropped");
}

#[test]
fn level_mean_costs_are_used_when_known() {
    let c = catalog();
    let g = &c.groups[c.group_index("K80.1-001").unwrap()];
    assert_eq!(g.mean_cost_at(Some("3")), dec!(6000));
    assert_eq!(g.mean_cost_at(Some("2")), dec!(5000), "no level-2 mean: the overall mean");
}

#[test]
fn malformed_catalog_rows_are_refused_with_their_line() {
    let broken = |from: &str, to: &str| {
        let mut sources = BTreeMap::new();
        let text = CATALOG.replace(from, to);
        sources.insert("catalog.csv".to_string(), SourceTable::parse("catalog.csv", text.as_bytes()).unwrap());
        sources.insert("procedure_types.csv".to_string(), SourceTable::parse("procedure_types.csv", TYPES.as_bytes()).unwrap());
        DipCatalog::build("t".into(), &sources).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert_eq!(
        broken("K80-ZS,胆石症 综合 手术,comprehensive,K80,,surgery", "K80-ZS,胆石症 综合 手术,comprehensive,K80,,"),
        "catalog.csv: line 8: column treatment: a comprehensive group needs a treatment type: \"\""
    );
    assert_eq!(
        broken("K81.0-001,急性胆囊炎 低费用,core,K81.0", "K81.0-001,急性胆囊炎 低费用,core,K81"),
        "catalog.csv: line 6: column diagnosis: a core group takes a subcategory: \"K81\""
    );
    assert_eq!(broken(",500,5000,6,6000", ",-500,5000,6,6000"), "catalog.csv: line 2: column score: must not be negative: \"-500\"");
    assert!(broken("K81.0-002,", "K81.0-001,").contains("group already defined on line 6"));
}

#[test]
fn the_demo_catalog_groups_the_demo_cases() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let catalog = DipCatalog::load_dir(&root.join("grouper-tables/demo-dip")).expect("demo catalog");
    let file = std::fs::File::open(root.join("grouper-tables/demo/cases.csv")).unwrap();
    let mut counts: BTreeMap<DipStatus, u32> = BTreeMap::new();
    for case in dipdrg::io::case_csv::CaseReader::new(file).unwrap().flatten() {
        *counts.entry(group(&catalog, &case, None, None).status).or_default() += 1;
    }
    let total: u32 = counts.values().sum();
    assert_eq!(total, 1996);
    let not_grouped = counts.get(&DipStatus::NotGrouped).copied().unwrap_or(0);
    assert!(counts[&DipStatus::Core] * 100 / total >= 40, "a large share reaches a core group: {counts:?}");
    assert!(not_grouped * 100 / total <= 10, "few cases stay ungrouped: {counts:?}");
}
