//! The case model: one discharge settlement list (医保结算清单) as the rest of dipdrg sees it.
//!
//! This module owns the in-memory shape of a case and nothing else: no parsing of files (see
//! [`crate::io::case_csv`]), no grouping. Codes are kept exactly as submitted — the table sets
//! decide what a code means, so normalising here would change results.

use rust_decimal::Decimal;
use std::fmt;

/// Which pooled fund a case is settled against (职工 / 居民).
/// The largest amount (yuan) a case field may hold: a thousand million yuan, far above any real
/// inpatient bill, and small enough that a region's year of cases sums without overflow
/// (10M cases × this < 10^17, against rust_decimal's ~7.9 × 10^28). Every input door checks it.
pub const MAX_AMOUNT: rust_decimal::Decimal = rust_decimal::Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Fund {
    /// 职工基本医疗保险 — employee basic medical insurance.
    Employee,
    /// 城乡居民基本医疗保险 — urban and rural resident medical insurance.
    Resident,
}

impl Fund {
    /// Parses the CSV spelling: `employee`/`职工` or `resident`/`居民` (ASCII case-insensitive).
    pub fn parse(text: &str) -> Option<Fund> {
        let is = |word: &str| text.eq_ignore_ascii_case(word);
        if is("employee") || text == "职工" || text == "1" {
            Some(Fund::Employee)
        } else if is("resident") || text == "居民" || text == "2" {
            Some(Fund::Resident)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Fund::Employee => "employee",
            Fund::Resident => "resident",
        }
    }
}

/// A calendar date (proleptic Gregorian), kept as days since 1970-01-01 so that lengths of stay
/// are a subtraction. Written and read as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    days_since_epoch: i32,
}

impl Date {
    /// Builds a date from its parts, or `None` when the day does not exist.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        if day > days_in_month(year, month) {
            return None;
        }
        Some(Date { days_since_epoch: days_from_civil(year, month, day) })
    }

    /// Parses `YYYY-MM-DD` (also accepts `YYYY/MM/DD` and `YYYYMMDD`, as hospital systems export).
    pub fn parse(text: &str) -> Option<Date> {
        if !text.is_ascii() {
            return None;
        }
        let bytes = text.as_bytes();
        let (year, month, day) = match bytes.len() {
            8 => (&text[0..4], &text[4..6], &text[6..8]),
            10 if (bytes[4] == b'-' && bytes[7] == b'-') || (bytes[4] == b'/' && bytes[7] == b'/') => {
                (&text[0..4], &text[5..7], &text[8..10])
            }
            _ => return None,
        };
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(year) || !all_digits(month) || !all_digits(day) {
            return None;
        }
        Date::from_ymd(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?)
    }

    /// Whether the date falls in `year` (and `month`, when given): a settlement or audit period.
    pub fn in_period(self, year: i32, month: Option<u32>) -> bool {
        let (y, m, _) = self.ymd();
        y == year && month.is_none_or(|wanted| wanted == m)
    }

    /// Whole days from `earlier` to `self` (negative when `self` comes first).
    pub fn days_since(self, earlier: Date) -> i32 {
        self.days_since_epoch - earlier.days_since_epoch
    }

    /// The date `days` days later (or earlier, when negative).
    pub fn add_days(self, days: i32) -> Date {
        Date { days_since_epoch: self.days_since_epoch + days }
    }

    /// (year, month, day).
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.days_since_epoch)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days.
fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i32::from(month <= 2);
    (year, month, day)
}

/// The most ICU hours a case may report: ten years. A larger value is a typing error, and readers
/// reject the record naming the field.
pub const MAX_ICU_HOURS: i64 = 24 * 3653;

/// One discharge. Grouping reads `sex`, `age`, `age_days`, `birth_weight`, `diagnoses` and
/// `procedures`, and, where a scheme's rules ask for them, `los`, `icu_hours`, `department` and
/// `disposition`; the rest is carried for pricing, settlement and audit, and is
/// optional so that a grouping-only file is still a valid input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Case {
    pub case_id: String,
    /// Hospital (定点医疗机构) code.
    pub hospital_id: Option<String>,
    /// Pseudonymous patient id, used by the audit to link admissions.
    pub patient_id: Option<String>,
    pub fund: Option<Fund>,
    /// As submitted: 1 = male, 2 = female. Any other value is kept and fails validation in the
    /// grouper (`CHECK_FAILED`) rather than being rejected here.
    pub sex: Option<i64>,
    /// Age in whole years.
    pub age: Option<i64>,
    /// Age in days, for patients under one year.
    pub age_days: Option<i64>,
    /// Birth weight in grams, for newborns.
    pub birth_weight: Option<i64>,
    pub admission_date: Option<Date>,
    pub discharge_date: Option<Date>,
    /// Length of stay in whole days (住院天数).
    pub los: Option<i64>,
    /// Time in intensive care, whole hours (重症监护时长); some schemes split DRGs on it.
    pub icu_hours: Option<i64>,
    /// Discharge disposition (离院方式), 1–9 as in the settlement list; 5 = death.
    pub disposition: Option<i64>,
    pub department: Option<String>,
    /// Diagnosis codes in order; the first is the principal diagnosis (主要诊断).
    pub diagnoses: Vec<String>,
    /// Procedure codes in order; the first is the principal procedure (主要手术及操作).
    pub procedures: Vec<String>,
    /// Total medical cost of the stay, yuan.
    pub total_cost: Option<Decimal>,
    /// Paid by the fund (统筹基金支付), yuan.
    pub fund_paid: Option<Decimal>,
    /// Paid by the patient (个人负担), yuan.
    pub patient_paid: Option<Decimal>,
    /// The insured person's region code (参保地), when it may differ from the hospital's.
    pub insured_region: Option<String>,
    /// The insured category of the stay (`retired_cadre`, `maternity`…), for exemptions.
    pub benefit: Option<String>,
}

impl Case {
    /// The principal diagnosis, if any.
    pub fn principal_diagnosis(&self) -> Option<&str> {
        self.diagnoses.first().map(String::as_str)
    }

    /// The principal procedure, if any.
    pub fn principal_procedure(&self) -> Option<&str> {
        self.procedures.first().map(String::as_str)
    }
}

/// The bounds every input door (CSV, Parquet, gRPC) enforces on a case, after its fields have
/// been read, so that nothing out of them reaches grouping, pricing, storage or settlement.
/// Values inside the bounds that a scheme still finds invalid (a sex of 9, an age of 130) are
/// kept and fail grouping validation (CHECK_FAILED) as the scheme says.
pub mod bounds {
    /// Identifiers (`case_id`, `hospital_id`, `patient_id`) and `department`: at most this many
    /// characters; ids also never hold `/` (names are `hospitals/{id}/cases/{id}`).
    pub const MAX_TEXT_CHARS: usize = 64;
    /// Codes per list (`diagnoses`, `procedures`).
    pub const MAX_CODES: usize = 100;
    /// Characters per code; a code is never empty and never holds `|` (the list separator).
    pub const MAX_CODE_CHARS: usize = 32;
    pub const SEX: (i64, i64) = (0, 9);
    pub const AGE_YEARS: (i64, i64) = (0, 150);
    pub const AGE_DAYS: (i64, i64) = (0, 366);
    /// Grams.
    pub const BIRTH_WEIGHT: (i64, i64) = (0, 10_000);
    /// Days (ten years).
    pub const LOS: (i64, i64) = (0, 3_660);
    pub const DISPOSITION: (i64, i64) = (0, 99);
}

/// Every bound of [`bounds`] the case breaks, as (field, reason); empty when it keeps them all.
/// Also: `los`, when given with both dates, equals the days between them (at least 1).
pub fn bound_problems(case: &Case) -> Vec<(&'static str, String)> {
    use bounds::*;
    let mut problems = Vec::new();
    let mut text = |field: &'static str, value: &str, id: bool| {
        if value.chars().count() > MAX_TEXT_CHARS {
            problems.push((field, format!("is longer than {MAX_TEXT_CHARS} characters")));
        } else if value.chars().any(char::is_control) {
            problems.push((field, "holds a control character".to_string()));
        } else if id && value.contains('/') {
            problems.push((field, "holds '/'".to_string()));
        }
    };
    text("case_id", &case.case_id, true);
    for (field, value, id) in
        [("hospital_id", &case.hospital_id, true), ("patient_id", &case.patient_id, true), ("department", &case.department, false)]
    {
        if let Some(value) = value {
            text(field, value, id);
        }
    }
    for (field, codes) in [("diagnoses", &case.diagnoses), ("procedures", &case.procedures)] {
        if codes.len() > MAX_CODES {
            problems.push((field, format!("has {} codes: at most {MAX_CODES}", codes.len())));
            continue;
        }
        for (i, code) in codes.iter().enumerate() {
            let reason = if code.is_empty() {
                "is empty"
            } else if code.chars().count() > MAX_CODE_CHARS {
                "is too long"
            } else if code.chars().any(|c| c.is_control() || c == '|') {
                "holds a control character or '|'"
            } else {
                continue;
            };
            problems.push((field, format!("code {} {reason}", i + 1)));
            break;
        }
    }
    for (field, value, (low, high)) in [
        ("sex", case.sex, SEX),
        ("age", case.age, AGE_YEARS),
        ("age_days", case.age_days, AGE_DAYS),
        ("birth_weight", case.birth_weight, BIRTH_WEIGHT),
        ("los", case.los, LOS),
        ("disposition", case.disposition, DISPOSITION),
    ] {
        if let Some(value) = value.filter(|v| !(low..=high).contains(v)) {
            problems.push((field, format!("{value} is outside {low}..={high}")));
        }
    }
    if let (Some(los), Some(admitted), Some(discharged)) = (case.los, case.admission_date, case.discharge_date) {
        let days = i64::from(discharged.days_since(admitted).max(1));
        if los != days && days >= 1 && (0..=LOS.1).contains(&los) {
            problems.push(("los", format!("{los} does not match the dates ({days} days from admission to discharge)")));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_subtract() {
        let admitted = Date::parse("2024-02-28").unwrap();
        let discharged = Date::parse("2024/03/01").unwrap();
        assert_eq!(discharged.days_since(admitted), 2, "2024 is a leap year");
        assert_eq!(admitted.to_string(), "2024-02-28");
        assert_eq!(Date::parse("20240301"), Some(discharged));
        assert_eq!(Date::parse("1970-01-01").unwrap().days_since_epoch, 0);
        assert_eq!(discharged.add_days(-2), admitted);
    }

    #[test]
    fn impossible_dates_are_rejected() {
        for text in [
            "２０２４-01-01",
            "2024年1月1",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "24-01-01",
            "2024-1-1",
            "abcd-ef-gh",
            "",
        ] {
            assert_eq!(Date::parse(text), None, "{text:?} must not parse");
        }
        assert!(Date::parse("2000-02-29").is_some());
        assert!(Date::parse("1900-02-29").is_none());
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let start = Date::from_ymd(1900, 1, 1).unwrap();
        let mut previous = start.ymd();
        for offset in 1..(400 * 366) {
            let date = start.add_days(offset);
            let (y, m, d) = date.ymd();
            assert_eq!(Date::from_ymd(y, m, d), Some(date));
            assert!((y, m, d) > previous);
            previous = (y, m, d);
        }
    }

    #[test]
    fn fund_spellings() {
        assert_eq!(Fund::parse("Employee"), Some(Fund::Employee));
        assert_eq!(Fund::parse("居民"), Some(Fund::Resident));
        assert_eq!(Fund::parse("other"), None);
    }
}
