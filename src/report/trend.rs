//! The per-month trend: the settled cases summed by discharge month and fund (case count and every
//! additive quantity of `cases.csv`: points, amounts, costs), with a total row. Read from the
//! cases file the run wrote; sums only, no rule of settlement.

use super::{sum_text, Table};
use rust_decimal::Decimal;
use std::io::Read;

/// Words of the `cases.csv` columns that are summed: quantities that add up across cases.
const SUMMED_WORDS: [&str; 5] = ["points", "amount", "cost", "paid", "yuan"];
/// Words of columns that are never summed even when they contain a word above.
const NOT_SUMMED_WORDS: [&str; 5] = ["factor", "ratio", "score", "rate", "point_value"];

/// A problem reading the cases file back.
#[derive(Debug, thiserror::Error)]
pub enum TrendError {
    #[error("cases file: {0}")]
    Csv(#[from] csv::Error),
    #[error("cases file: no column {0}")]
    MissingColumn(&'static str),
    #[error("cases file: record {record}: field {field}: {value:?} is not a number")]
    NotANumber { record: u64, field: String, value: String },
}

fn is_summed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SUMMED_WORDS.iter().any(|w| lower.contains(w)) && !NOT_SUMMED_WORDS.iter().any(|w| lower.contains(w))
}

/// `YYYY-MM` for a discharge month of the run's period (`YYYY` or `YYYY-MM`); the bare month when the
/// period has no year.
fn month_label(period: &str, month: u32) -> String {
    let year = period.split('-').next().unwrap_or("");
    if year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()) {
        format!("{year}-{month:02}")
    } else {
        format!("{month:02}")
    }
}

/// Sums of one (month, fund).
#[derive(Default, Clone)]
struct Sums {
    cases: u64,
    quantities: Vec<Decimal>,
}

impl Sums {
    fn add(&mut self, cases: u64, values: &[Decimal]) {
        self.cases += cases;
        if self.quantities.len() < values.len() {
            self.quantities.resize(values.len(), Decimal::ZERO);
        }
        for (sum, value) in self.quantities.iter_mut().zip(values) {
            *sum += value;
        }
    }

    fn row(&self, month: String, fund: String) -> Vec<String> {
        let mut row = vec![month, fund, self.cases.to_string()];
        row.extend(self.quantities.iter().map(|sum| sum_text(*sum)));
        row
    }
}

/// Where the trend's fields are in a `cases.csv` record.
struct Layout {
    names: Vec<String>,
    month: usize,
    fund: usize,
    summed: Vec<usize>,
}

impl Layout {
    fn from_header(header: &csv::ByteRecord) -> Result<Layout, TrendError> {
        let names: Vec<String> = header.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect();
        let position = |name: &'static str| names.iter().position(|h| h == name).ok_or(TrendError::MissingColumn(name));
        let (month, fund) = (position("month")?, position("fund")?);
        let summed = (0..names.len()).filter(|&c| is_summed(&names[c])).collect();
        Ok(Layout { names, month, fund, summed })
    }
}

/// Sums by (month, fund), in no order; a handful of keys, looked up without allocating.
#[derive(Default)]
struct Accumulator {
    keys: Vec<(u32, String, Sums)>,
    values: Vec<Decimal>,
}

impl Accumulator {
    /// Adds one record; a field that does not read names its column.
    fn add_record(&mut self, layout: &Layout, record: &csv::ByteRecord) -> Result<(), usize> {
        let field = |c: usize| std::str::from_utf8(record.get(c).unwrap_or(b"")).unwrap_or("\u{fffd}");
        let month: u32 = field(layout.month).parse().map_err(|_| layout.month)?;
        self.values.clear();
        for &c in &layout.summed {
            self.values.push(super::decimal(field(c)).ok_or(c)?);
        }
        let fund = field(layout.fund);
        match self.keys.iter_mut().find(|(m, f, _)| *m == month && f == fund) {
            Some((_, _, sums)) => sums.add(1, &self.values),
            None => {
                let mut sums = Sums::default();
                sums.add(1, &self.values);
                self.keys.push((month, fund.to_string(), sums));
            }
        }
        Ok(())
    }

    /// The table: rows by month then fund, then the total.
    fn into_table(mut self, layout: &Layout, period: &str) -> Table {
        self.keys.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut header = vec!["month".to_string(), "fund".to_string(), "cases".to_string()];
        header.extend(layout.summed.iter().map(|&c| layout.names[c].clone()));
        let mut total = Sums { cases: 0, quantities: vec![Decimal::ZERO; layout.summed.len()] };
        let mut rows = Vec::with_capacity(self.keys.len() + 1);
        for (month, fund, mut sums) in self.keys {
            sums.quantities.resize(layout.summed.len(), Decimal::ZERO);
            total.add(sums.cases, &sums.quantities);
            rows.push(sums.row(month_label(period, month), fund));
        }
        rows.push(total.row("total".to_string(), "all".to_string()));
        Table { header, rows }
    }
}

/// The trend table of a `cases.csv` stream: `month, fund, cases, <summed columns>`, one row per
/// discharge month and fund in order, then a `total` row over all. The reference path: one
/// thread, record by record, naming the record and field of a value that does not read.
pub fn monthly_trend(cases_csv: impl Read, period: &str) -> Result<Table, TrendError> {
    let mut reader = csv::Reader::from_reader(cases_csv);
    let layout = Layout::from_header(reader.byte_headers()?)?;
    let mut accumulator = Accumulator::default();
    let mut record = csv::ByteRecord::new();
    let mut number = 0u64;
    while reader.read_byte_record(&mut record)? {
        number += 1;
        accumulator.add_record(&layout, &record).map_err(|c| TrendError::NotANumber {
            record: number,
            field: layout.names[c].clone(),
            value: String::from_utf8_lossy(record.get(c).unwrap_or(b"")).into_owned(),
        })?;
    }
    Ok(accumulator.into_table(&layout, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_summed_by_month_and_fund() {
        let cases = "case_id,hospital_id,fund,month,cost_ratio,points,counted_points,outlier_factor,amount\n\
                     C1,H1,resident,4,0.5,10.5,10.5,1.1,100.10\n\
                     C2,H1,employee,4,0.5,1,0,,-0.10\n\
                     C3,H2,resident,10,1.2,2.25,2.25,,50.00\n\
                     C4,H2,resident,4,1.2,1,1,,0.90\n";
        let trend = monthly_trend(cases.as_bytes(), "2026").unwrap();
        assert_eq!(trend.header, ["month", "fund", "cases", "points", "counted_points", "amount"]);
        let rows: Vec<String> = trend.rows.iter().map(|r| r.join(",")).collect();
        assert_eq!(
            rows,
            [
                "2026-04,employee,1,1,0,-0.10",
                "2026-04,resident,2,11.5,11.5,101.00",
                "2026-10,resident,1,2.25,2.25,50.00",
                "total,all,4,14.75,13.75,150.90"
            ]
        );
    }

    #[test]
    fn a_bad_number_names_the_record_and_field() {
        let cases = "case_id,fund,month,amount\nC1,resident,3,1.00\nC2,resident,3,abc\n";
        let error = monthly_trend(cases.as_bytes(), "2026-03").unwrap_err().to_string();
        assert_eq!(error, r#"cases file: record 2: field amount: "abc" is not a number"#);
        let error = monthly_trend("case_id,fund\n".as_bytes(), "2026").unwrap_err().to_string();
        assert_eq!(error, "cases file: no column month");
    }

    #[test]
    fn no_cases_give_a_zero_total() {
        let trend = monthly_trend("case_id,fund,month,amount\n".as_bytes(), "2026-03").unwrap();
        assert_eq!(trend.rows, [["total", "all", "0", "0"]]);
    }
}
