//! Settlement: the worked examples, and conservation to the fen on random inputs.

use dipdrg::case::Fund;
use dipdrg::policy::{FundPolicy, PaidAt, PointValueMethod, Policy, SettlementBasis, WeightedAmount};
use dipdrg::settlement::{
    annual, band_adjustment, budget_point_value, check_special_review_quota, largest_remainder, monthly, year_end_point_value, CaseTerms,
    SettlementCase, Totals,
};
use dipdrg::units::{Points, Yuan};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::path::PathBuf;

fn demo_policy() -> Policy {
    Policy::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/demo-city-2026-dip.toml")).expect("demo policy")
}

fn fund_policy(method: PointValueMethod, basis: SettlementBasis) -> FundPolicy {
    FundPolicy {
        year_end_method: method,
        annual_budget: dec!(56000000),
        settlement_basis: basis,
        reimbursement_ratio: Some(dec!(0.70)),
        budget_point_value: None,
        budget_history: vec![WeightedAmount { amount: dec!(81400000), weight: dec!(1) }],
        expected_points: Some(dec!(8140000)),
        fixed_point_value: Some(dec!(9.5)),
        floating_band: Some(dec!(0.05)),
        balanced_fixed_weight: Some(dec!(0.5)),
        monthly_payment_share: dec!(0.9),
        paid_at: PaidAt::Exact,
    }
}

fn policy_with(employee: FundPolicy) -> Policy {
    let mut policy = demo_policy();
    if let Some(funds) = policy.funds.as_mut() {
        funds.employee = employee;
    }
    policy
}

#[test]
fn budget_81_4_million_over_8_14_million_points_is_10_yuan() {
    let (value, inputs) = budget_point_value(&fund_policy(PointValueMethod::Budget, SettlementBasis::FundOverRatio));
    assert_eq!(value, dec!(10));
    assert_eq!(inputs, vec![("weighted_past_total", dec!(81400000)), ("expected_points", dec!(8140000))]);
}

#[test]
fn fund_56_million_over_ratio_0_70_and_8_million_points_is_10_yuan() {
    let policy = policy_with(fund_policy(PointValueMethod::Settlement, SettlementBasis::FundOverRatio));
    let record = year_end_point_value(&policy, Fund::Employee, Points(dec!(8000000)), Yuan(dec!(0))).unwrap();
    assert_eq!(record.value.value(), dec!(10));
    assert_eq!(record.basis, Some(Yuan(dec!(80000000))));
    assert_eq!(
        record.inputs,
        vec![("annual_budget", dec!(56000000)), ("reimbursement_ratio", dec!(0.70)), ("region_counted_points", dec!(8000000))]
    );
}

#[test]
fn other_point_value_methods() {
    let points = Points(dec!(8000000));
    let value = |method| {
        let policy = policy_with(fund_policy(method, SettlementBasis::FundOverRatio));
        year_end_point_value(&policy, Fund::Employee, points, Yuan::ZERO).unwrap().value.value()
    };
    assert_eq!(value(PointValueMethod::Fixed), dec!(9.5));
    assert_eq!(value(PointValueMethod::Budget), dec!(10));
    assert_eq!(value(PointValueMethod::Floating), dec!(10), "settlement 10 lies within budget 10 ± 5%");
    assert_eq!(value(PointValueMethod::Balanced), dec!(9.75), "0.5 × 9.5 + 0.5 × 10");
    let tight = {
        let mut fund = fund_policy(PointValueMethod::Floating, SettlementBasis::FundOverRatio);
        fund.annual_budget = dec!(70000000); // settlement value 12.5, capped at 10 × 1.05
        policy_with(fund)
    };
    assert_eq!(year_end_point_value(&tight, Fund::Employee, points, Yuan::ZERO).unwrap().value.value(), dec!(10.5));
    let plus_patient = policy_with(fund_policy(PointValueMethod::Settlement, SettlementBasis::FundPlusPatient));
    let record = year_end_point_value(&plus_patient, Fund::Employee, points, Yuan(dec!(24000000))).unwrap();
    assert_eq!(record.value.value(), dec!(10), "(56M + 24M) ÷ 8M");
}

fn terms(points: Decimal) -> CaseTerms {
    CaseTerms { points, group_score: Some(dec!(100)), ..CaseTerms::default() }
}

fn case(hospital: u32, points: Decimal, patient_paid: Decimal) -> SettlementCase {
    SettlementCase::new(hospital, Fund::Employee, 10, terms(points), dec!(0), patient_paid)
}

#[test]
fn a_hospital_with_50000_points_and_150000_paid_by_patients_gets_350000() {
    let mut fund = fund_policy(PointValueMethod::Settlement, SettlementBasis::FundOverRatio);
    fund.budget_point_value = Some(dec!(10));
    let policy = policy_with(fund);
    let cases = vec![case(0, dec!(30000), dec!(100000)), case(0, dec!(20000), dec!(50000))];
    let (values, statements) = monthly(&policy, &cases, 1).unwrap();
    assert_eq!(values[0].value.value(), dec!(10));
    let s = &statements[0];
    assert_eq!((s.gross, s.patient_paid, s.amount), (Yuan(dec!(500000)), Yuan(dec!(150000)), Yuan(dec!(350000))));
    assert_eq!((s.paid_now, s.deposit), (Yuan(dec!(315000)), Yuan(dec!(35000))), "90% now, 10% deposit");
}

#[test]
fn a_penalised_case_of_1000_points_with_k_3_counts_minus_3000() {
    let penalised = CaseTerms { penalty_multiple: Some(demo_policy().penalties.multiple("split_admission")), ..terms(dec!(1000)) };
    assert_eq!(penalised.counted_points(), dec!(-3000));
    let case = SettlementCase::new(0, Fund::Employee, 10, penalised, dec!(0), dec!(0));
    assert_eq!((case.counted_points(), case.penalised()), (dec!(-3000), true));
    let reviewed = CaseTerms { reviewed_points: Some(dec!(1500)), ..terms(dec!(1000)) };
    assert_eq!(reviewed.counted_points(), dec!(1500), "approved special review replaces the points");
    let both = CaseTerms { penalty_multiple: Some(dec!(3)), ..reviewed };
    assert_eq!(both.counted_points(), dec!(-4500), "a penalty deducts k × the reviewed points");
    let exempt = CaseTerms { exempt: true, ..terms(dec!(1000)) };
    assert_eq!(exempt.counted_points(), dec!(0));
}

#[test]
fn the_special_review_quota_is_enforced_with_a_clear_error() {
    let policy = demo_policy(); // 5‰
    let ids = vec!["H001".to_string(), "H002".to_string()];
    assert!(check_special_review_quota(&policy, &ids, &[2000, 1000], &[10, 5]).is_ok());
    let error = check_special_review_quota(&policy, &ids, &[2000, 1000], &[10, 6]).unwrap_err();
    assert_eq!(error.to_string(), "hospital H002: 6 special-review applications exceed the quota of 0.005 × 1000 cases = 5");
}

#[test]
fn year_end_balance_accounts_for_monthly_payments_bands_and_deposits() {
    let policy = demo_policy();
    let mut cases = Vec::new();
    for month in 1..=12 {
        let mut a = case(0, dec!(1000), dec!(2000));
        a.month = month;
        a.total_cost = dec!(15000);
        let mut b = case(1, dec!(500), dec!(1000));
        b.month = month;
        b.total_cost = dec!(12000);
        cases.push(a);
        cases.push(b);
    }
    let ids = vec!["H001".to_string(), "H002".to_string()];
    let (records, statements) = annual(&policy, &cases, &ids).unwrap();
    let employee = &records[0];
    // 14,000,000 ÷ 0.8 = 17,500,000 over 18,000 points.
    assert_eq!(employee.basis, Some(Yuan(dec!(17500000))));
    let gross: Yuan = statements.iter().map(|s| s.gross).sum();
    assert_eq!(gross, Yuan(dec!(17500000)), "Σ hospital payments = the basis, to the fen (paid at the exact value)");
    assert_eq!(employee.paid, gross);
    assert_eq!(employee.residual(), Some(Yuan::ZERO));
    for s in &statements {
        assert_eq!(s.fund_due, s.gross - s.patient_paid);
        assert_eq!(s.final_due, s.fund_due + s.band_adjustment - s.deposit_forfeited);
        assert_eq!(s.balance, s.final_due - s.paid_monthly);
    }
    let h001 = &statements[0];
    assert_eq!(h001.assessment, dec!(0.98));
    assert_eq!(h001.deposit_forfeited, Yuan((h001.deposit_held.0 * dec!(0.02)).round_dp(2)));
    // H001: gross 11,666,666.67 vs cost 180,000: a surplus far above 10% → clawed back to the cap.
    assert_eq!(h001.gross, Yuan(dec!(11666666.67)));
    // Surplus 11,486,666.67; kept at most 10% of the payment, 1,166,666.667 → the rest recovered.
    assert_eq!(h001.band_adjustment, Yuan(dec!(-10320000.00)));
}

#[test]
fn results_do_not_depend_on_case_order() {
    let policy = demo_policy();
    let mut cases: Vec<SettlementCase> =
        (0..200).map(|i| case(i % 7, Decimal::from(100 + i * 37 % 1000), Decimal::from(i * 13 % 500))).collect();
    let ids: Vec<String> = (0..7).map(|i| format!("H{i:03}")).collect();
    let forward = annual(&policy, &cases, &ids).unwrap();
    cases.reverse();
    assert_eq!(annual(&policy, &cases, &ids).unwrap(), forward);
}

proptest! {
    #[test]
    fn largest_remainder_adds_up_to_the_fen(total in 0i64..10_000_000_000, weights in prop::collection::vec(0u32..1_000_000, 1..60)) {
        let weights: Vec<Decimal> = weights.into_iter().map(|w| Decimal::new(i64::from(w) + 1, 2)).collect();
        let parts = largest_remainder(total, &weights).unwrap();
        prop_assert_eq!(parts.iter().sum::<i64>(), total);
        let weight_sum: Decimal = weights.iter().copied().sum();
        for (part, weight) in parts.iter().zip(&weights) {
            let exact = Decimal::from(total) * *weight / weight_sum;
            prop_assert!((Decimal::from(*part) - exact).abs() < Decimal::ONE, "each part within a fen of its share");
        }
    }

    #[test]
    fn largest_remainder_is_the_same_in_wide_arithmetic(total in 0i64..10_000_000_000, weights in prop::collection::vec(-300_000i64..1_000_000, 1..60)) {
        // The same proportions with 12 more digits: shares past i64 take the i128 path and must
        // come out the same, negative weights included.
        let narrow: Vec<Decimal> = weights.iter().map(|&w| Decimal::new(w, 2)).collect();
        let wide: Vec<Decimal> = weights.iter().map(|&w| Decimal::from_i128_with_scale(i128::from(w) * 1_000_000_000_000, 2)).collect();
        let sum: i64 = weights.iter().sum();
        prop_assume!(sum > 0);
        let parts = largest_remainder(total, &narrow).unwrap();
        prop_assert_eq!(parts.iter().sum::<i64>(), total);
        prop_assert_eq!(largest_remainder(total, &wide).unwrap(), parts);
    }

    #[test]
    fn year_end_conserves_money_on_random_cases(
        points in prop::collection::vec((0u32..5, 1u32..500_000, 0u32..100_000, 0u32..3_000_000, prop::bool::ANY, prop::option::of(2u32..4)), 1..120)
    ) {
        let policy = demo_policy();
        let cases: Vec<SettlementCase> = points.iter().enumerate().map(|(i, (h, p, paid, cost, resident, penalty))| {
            let mut t = terms(Decimal::new(i64::from(*p), 2));
            if i % 9 == 0 { t.penalty_multiple = penalty.map(Decimal::from); }
            let fund = if *resident { Fund::Resident } else { Fund::Employee };
            SettlementCase::new(*h, fund, 1 + (i as u32 % 12), t, Decimal::new(i64::from(*cost), 2), Decimal::new(i64::from(*paid), 2))
        }).collect();
        let ids: Vec<String> = (0..5).map(|i| format!("H{i:03}")).collect();
        match annual(&policy, &cases, &ids) {
            Ok((records, statements)) => {
                for record in &records {
                    let gross: Yuan = statements.iter().filter(|s| s.fund == record.fund).map(|s| s.gross).sum();
                    prop_assert_eq!(gross, record.paid);
                    if record.method == PointValueMethod::Settlement {
                        prop_assert_eq!(Some(gross), record.basis, "the settlement method at the exact value pays the basis");
                    }
                }
                for s in &statements {
                    prop_assert_eq!(s.balance, s.fund_due + s.band_adjustment - s.deposit_forfeited - s.paid_monthly);
                    prop_assert_eq!(s.gross.0.scale() <= 2, true);
                }
            }
            Err(e) => prop_assert_eq!(e.code(), "SETTLEMENT_NO_POINTS"),
        }
        let (_, months) = monthly(&policy, &cases, 5).unwrap();
        for s in &months {
            prop_assert_eq!(s.paid_now + s.deposit, s.amount);
            prop_assert_eq!(s.gross - s.patient_paid, s.amount);
        }
    }
}

#[test]
fn subtracting_a_case_takes_back_exactly_what_adding_it_gave() {
    let penalised = CaseTerms { penalty_multiple: Some(dec!(3)), ..terms(dec!(12.34)) };
    let reviewed = CaseTerms { reviewed_points: Some(dec!(99.5)), ..terms(dec!(12.34)) };
    let exempt = CaseTerms { exempt: true, group_score: None, ..terms(dec!(7)) };
    let cases = [
        case(0, dec!(100.25), dec!(10.01)),
        SettlementCase::new(0, Fund::Employee, 10, penalised, dec!(500.10), dec!(20)),
        SettlementCase::new(0, Fund::Employee, 10, reviewed, dec!(800), dec!(30.3)),
        SettlementCase::new(0, Fund::Employee, 10, exempt, dec!(900.99), dec!(40)),
    ];
    for skipped in 0..cases.len() {
        let mut without = Totals::default();
        let mut all_then_subtract = Totals::default();
        for (i, c) in cases.iter().enumerate() {
            all_then_subtract.add(c);
            if i != skipped {
                without.add(c);
            }
        }
        all_then_subtract.subtract(&cases[skipped]);
        assert_eq!(all_then_subtract, without, "case {skipped}");
    }
    let mut totals = Totals::default();
    cases.iter().for_each(|c| totals.add(c));
    assert_eq!((totals.cases, totals.exempt_cases, totals.penalised_cases, totals.reviewed_cases), (4, 1, 1, 1));
    assert_eq!(totals.counted_points, dec!(100.25) - dec!(37.02) + dec!(99.5));
    assert_eq!(totals.cmi(dec!(100)), dec!(1), "three grouped cases of base score 100");
}

/// Issue 16: a hospital whose cases were all penalised has a negative gross; "sharing" 50% of a
/// 10% band of it deducted more again. No positive payment, no band: 0.
#[test]
fn no_band_is_shared_or_kept_on_a_payment_that_is_not_positive() {
    let rules = demo_policy().year_end.expect("the demo policy has year-end bands");
    let band = |gross: Decimal, cost: Decimal| band_adjustment(Some(&rules), Yuan(gross), cost);
    assert_eq!(band(dec!(-17997983.40), dec!(1200000)), Yuan::ZERO, "was 0.5 × 10% × −17,997,983.40 = −899,899.17");
    assert_eq!(band(dec!(0), dec!(1200000)), Yuan::ZERO);
    // A positive payment still shares: overspend 200,000 of a 1,000,000 payment, band 100,000, half by the fund.
    assert_eq!(band(dec!(1000000), dec!(1200000)), Yuan(dec!(50000.00)));
    // …and keeps a surplus up to 10% of the payment: 1,000,000 − 700,000 = 300,000, kept 100,000.
    assert_eq!(band(dec!(1000000), dec!(700000)), Yuan(dec!(-200000.00)));
}

proptest! {
    /// Issue 16: one money format: always exactly 2 decimals, never `-0.00`, the value kept to
    /// the fen (half-up), over random amounts of 0–6 decimals, both signs.
    #[test]
    fn money_is_written_with_two_decimals_to_the_fen(mantissa in -100_000_000_000_000i64..100_000_000_000_000, scale in 0u32..7) {
        let amount = Decimal::new(mantissa, scale);
        let text = dipdrg::units::format_yuan(amount);
        let (_, decimals) = text.split_once('.').expect("a decimal point");
        prop_assert_eq!(decimals.len(), 2, "{}", text);
        prop_assert!(decimals.bytes().all(|b| b.is_ascii_digit()), "{}", text);
        prop_assert!(text != "-0.00", "{}", amount);
        let read: Decimal = text.parse().expect("a decimal");
        prop_assert_eq!(read, dipdrg::units::round_half_up(amount, 2), "{} → {}", amount, text);
    }
}

/// The demo policy with the employee fund paid at the published point value.
fn published_policy() -> Policy {
    let mut policy = demo_policy();
    if let Some(funds) = policy.funds.as_mut() {
        funds.employee.paid_at = PaidAt::Published;
    }
    policy
}

#[test]
fn published_value_gross_is_counted_points_times_the_published_value_to_the_fen() {
    let policy = published_policy();
    // 14,000,000 ÷ 0.8 = 17,500,000 over 3 × 7,000.01 points: an exact value of
    // 833.33214... yuan, published as 833.3321.
    let cases = vec![case(0, dec!(7000.01), dec!(100)), case(1, dec!(7000.01), dec!(100)), case(2, dec!(7000.01), dec!(100))];
    let ids = vec!["H001".to_string(), "H002".to_string(), "H003".to_string()];
    let (records, statements) = annual(&policy, &cases, &ids).unwrap();
    let employee = records.iter().find(|r| r.fund == Fund::Employee).unwrap();
    assert_eq!(employee.value.value(), dec!(833.3321));
    assert_ne!(employee.exact, employee.value.value(), "the example needs an exact value that is not the published one");
    for s in &statements {
        assert_eq!(s.gross, Yuan(dec!(5833333.03)), "7000.01 × 833.3321 = 5,833,333.033321 → to the fen");
        assert_eq!(s.gross, Yuan((s.totals.counted_points * employee.value.value()).round_dp(2)));
    }
    assert_eq!(employee.paid, Yuan(dec!(17499999.09)));
    assert_eq!(employee.basis, Some(Yuan(dec!(17500000.00))));
    assert_eq!(employee.residual(), Some(Yuan(dec!(0.91))), "basis − paid: left in the fund");
    // At the exact value the same cases are paid the whole basis.
    let (exact_records, exact_statements) = annual(&demo_policy(), &cases, &ids).unwrap();
    assert_eq!(exact_statements.iter().map(|s| s.gross).sum::<Yuan>(), Yuan(dec!(17500000.00)));
    assert_eq!(exact_records[0].residual(), Some(Yuan::ZERO));
}

proptest! {
    #[test]
    fn published_value_gross_holds_on_random_cases(
        points in prop::collection::vec((0u32..5, 1u32..500_000, prop::bool::ANY), 1..80)
    ) {
        let policy = published_policy();
        let cases: Vec<SettlementCase> = points.iter().enumerate().map(|(i, (h, p, resident))| {
            let fund = if *resident { Fund::Resident } else { Fund::Employee };
            SettlementCase::new(*h, fund, 1 + (i as u32 % 12), terms(Decimal::new(i64::from(*p), 2)), dec!(1000), dec!(10))
        }).collect();
        let ids: Vec<String> = (0..5).map(|i| format!("H{i:03}")).collect();
        let (records, statements) = annual(&policy, &cases, &ids).unwrap();
        for s in statements.iter().filter(|s| s.fund == Fund::Employee) {
            prop_assert_eq!(s.gross, Yuan((s.totals.counted_points * s.point_value.value()).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)));
        }
        for record in &records {
            let paid: Yuan = statements.iter().filter(|s| s.fund == record.fund).map(|s| s.gross).sum();
            prop_assert_eq!(record.paid, paid);
            prop_assert_eq!(record.residual(), record.basis.map(|b| b - paid));
        }
    }
}

#[test]
fn every_fund_is_in_the_summary_with_its_basis_paid_and_residual_even_without_cases() {
    use dipdrg::settle::{Mode, Period, RunInfo, Statements};
    let policy = demo_policy();
    let ids = vec!["H001".to_string()];
    // Employee cases only: the resident fund has none.
    let cases = vec![case(0, dec!(1000), dec!(100))];
    let (records, statements) = annual(&policy, &cases, &ids).unwrap();
    let statements = Statements::Annual(records, statements);
    let run = RunInfo {
        mode: Mode::Annual,
        period: Period { year: 2026, month: None },
        policy: &policy,
        tables_fingerprint: "",
        submitted: 1,
        accepted: 1,
        rejected: 0,
        hospital_ids: &ids,
        warnings: &[],
    };
    let summary: std::collections::BTreeMap<String, String> =
        statements.summary_table(&run).rows.into_iter().map(|row| (row[0].clone(), row[1].clone())).collect();
    assert_eq!(summary["employee.basis"], "17500000.00");
    assert_eq!(summary["employee.paid"], "17500000.00");
    assert_eq!(summary["employee.residual"], "0.00");
    assert_eq!(summary["resident.cases"], "0");
    assert_eq!(summary["resident.counted_points"], "0.00");
    // 16,000,000 + what patients paid (nothing): all of it left in the fund.
    assert_eq!(summary["resident.basis"], "16000000.00");
    assert_eq!(summary["resident.paid"], "0.00");
    assert_eq!(summary["resident.residual"], "16000000.00");
    assert!(!summary.contains_key("employee.distributable"), "distributable is split into basis, paid and residual");
}

/// E14: a `[[hospital_overrides]]` point value replaces the fund's budget point value for its
/// cases in the monthly pre-settlement (a statement's gross is Σ points × the case's point value,
/// to the fen), in the monthly payments an annual run recomputes too; the year-end point value is
/// unchanged.
#[test]
fn an_override_point_value_prices_its_cases_in_monthly_statements() {
    use dipdrg::policy::{Coefficient, HospitalOverride};
    let mut policy = demo_policy();
    policy.hospital_overrides.push(HospitalOverride {
        hospital: "H001".into(),
        months: Some(vec![3]),
        insured: None,
        coefficient: None,
        point_value: Some(Coefficient::Flat(dec!(25))),
    });
    let budget = dipdrg::settlement::monthly_point_value(&policy, Fund::Employee).unwrap().value.value();
    let mut overridden = case(0, dec!(1000), dec!(0));
    overridden.month = 3;
    let overridden = overridden.with_point_value_override(Some(0));
    let mut plain = case(0, dec!(500), dec!(0));
    plain.month = 3;
    let cases = vec![overridden, plain];
    let (_, statements) = monthly(&policy, &cases, 1).unwrap();
    assert_eq!(statements[0].gross, Yuan((dec!(1000) * dec!(25) + dec!(500) * budget).round_dp(2)), "1000 × 25 + 500 × the budget value");
    assert_ne!(statements[0].gross, Yuan((dec!(1500) * budget).round_dp(2)), "the example needs a budget value other than 25");
    // The annual run: the year-end point value ignores the override, the monthly payments it
    // recomputes do not.
    let ids = vec!["H001".to_string()];
    let (records, annual_statements) = annual(&policy, &cases, &ids).unwrap();
    let (plain_records, plain_annual) = annual(&demo_policy(), &cases, &ids).unwrap();
    assert_eq!(records, plain_records, "year-end point value unchanged");
    assert_eq!(annual_statements[0].gross, plain_annual[0].gross);
    assert_eq!(annual_statements[0].paid_monthly, statements[0].paid_now);
    assert_ne!(annual_statements[0].paid_monthly, plain_annual[0].paid_monthly);
}
