//! The settlement report as one self-contained HTML page a fund office reads first: headline
//! figures per fund (point value, distributed against the basis, cases), totals by fund, the
//! per-month trend, bar charts as inline SVG, the statements in tables that fit a 1280 px window,
//! and the run summary. No script, no external resource (a Content-Security-Policy forbids both);
//! every text from the tables is escaped.

use super::{decimal, group_thousands, is_additive, is_text_name, sum_text, Table};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::fmt::Write;

/// At most this many value columns in one statements table, so a table fits a 1280 px window;
/// the identifying columns (hospital, fund) repeat in each.
const MAX_VALUE_COLUMNS_PER_TABLE: usize = 8;

/// Summary keys (after `{fund}.`) that name the basis a fund's point value distributes.
const BASIS_KEYS: [&str; 4] = ["basis", "distributable_basis", "budget_basis", "distributable"];

const STYLE: &str = "body{font-family:sans-serif;margin:0;color:#222;background:#fff}\
main{max-width:1220px;margin:0 auto;padding:16px 24px;box-sizing:border-box}\
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:24px 0 8px;border-bottom:2px solid #2f6db5;padding-bottom:2px}\
h3{font-size:15px;margin:0 0 6px}.run{color:#555;font-size:13px}\
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ccd;border-radius:6px;padding:10px 14px;min-width:260px;flex:1 1 260px;max-width:400px}\
.card dl{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,max-content);gap:2px 12px;margin:0;font-size:13px}.card dt{color:#555}.card dd{margin:0;text-align:right;overflow-wrap:anywhere;font-variant-numeric:tabular-nums}\
.card dd.big{font-size:18px;font-weight:bold}.over{color:#b53a2f;font-weight:bold}\
table{border-collapse:collapse;font-size:12px;width:100%;margin-bottom:12px}\
td,th{border:1px solid #ccc;padding:3px 5px;text-align:right}td{white-space:nowrap;font-variant-numeric:tabular-nums}\
th{background:#f0f0f0;white-space:normal;overflow-wrap:anywhere;vertical-align:bottom}\
td.text,th.text{text-align:left}td.text{white-space:normal}tr.total td{font-weight:bold;background:#fafafa}\
.bar{background:#2f6db5;height:10px;min-width:1px}td.barcell{width:22%}\
svg{max-width:100%;height:auto}";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A header cell's text: the column name, breakable after each `_` so long names wrap.
fn header_text(name: &str) -> String {
    escape(name).replace('_', "_<wbr>")
}

/// A number with thousands separators, escaped.
fn number(text: &str) -> String {
    escape(&group_thousands(text))
}

/// Sums a column per key column value (e.g. gross per fund).
fn sums_by(table: &Table, key: &str, column: usize) -> BTreeMap<String, Decimal> {
    let mut sums = BTreeMap::new();
    let Some(key_column) = table.column(key) else { return sums };
    for row in &table.rows {
        let value = row.get(column).and_then(|v| decimal(v)).unwrap_or_default();
        *sums.entry(row.get(key_column).cloned().unwrap_or_default()).or_insert(Decimal::ZERO) += value;
    }
    sums
}

/// The funds of the run, in the summary's order (every fund is in it, with or without cases), then
/// any other fund of the statements.
fn funds(statements: &Table, summary: &Table) -> Vec<String> {
    let mut funds: Vec<String> = Vec::new();
    for row in &summary.rows {
        if let Some(fund) = row.first().and_then(|key| key.strip_suffix(".point_value")) {
            if !funds.iter().any(|f| f == fund) {
                funds.push(fund.to_string());
            }
        }
    }
    if let Some(c) = statements.column("fund") {
        for row in &statements.rows {
            if let Some(fund) = row.get(c) {
                if !funds.contains(fund) {
                    funds.push(fund.clone());
                }
            }
        }
    }
    funds
}

/// One headline card per fund: point value and method, distributed (Σ gross) against the basis,
/// cases and counted points, and the fund's other figures of the summary.
fn fund_card(page: &mut String, fund: &str, statements: &Table, summary: &Table) {
    let key = |name: &str| format!("{fund}.{name}");
    let sum_of = |column: &str| statements.column(column).map(|c| sums_by(statements, "fund", c).remove(fund).unwrap_or_default());
    let _ = write!(page, r#"<div class="card" data-fund="{}"><h3>{}</h3><dl>"#, escape(fund), escape(fund));
    let figure = |page: &mut String, label: &str, name: &str, value: &str, class: &str| {
        let _ = write!(
            page,
            r#"<dt>{}</dt><dd{} data-figure="{}">{}</dd>"#,
            escape(label),
            if class.is_empty() { String::new() } else { format!(r#" class="{class}""#) },
            escape(name),
            number(value)
        );
    };
    if let Some(value) = summary.value(&key("point_value")) {
        figure(page, "point value 点值 (yuan/point)", "point_value", value, "big");
    }
    if let Some(method) = summary.value(&key("point_value_method")) {
        figure(page, "method", "point_value_method", method, "");
    }
    let distributed = sum_of("gross");
    if let Some(gross) = distributed {
        figure(page, "distributed Σ gross (yuan)", "distributed", &sum_text(gross), "big");
    }
    let basis_key = BASIS_KEYS.iter().map(|name| key(name)).find(|k| summary.value(k).is_some());
    if let Some(basis_key) = &basis_key {
        let basis_text = summary.value(basis_key).unwrap_or_default();
        figure(page, &format!("basis ({basis_key}, yuan)"), "basis", basis_text, "");
        if let (Some(gross), Some(basis)) = (distributed, decimal(basis_text).filter(|b| !b.is_zero())) {
            let percent = sum_text((gross * Decimal::ONE_HUNDRED / basis).round_dp(2));
            let class = if gross > basis { "over" } else { "" };
            figure(page, "distributed / basis (%)", "distributed_percent", &percent, class);
        }
    }
    for column in ["cases", "grouped_cases", "counted_points"] {
        if let Some(sum) = sum_of(column) {
            figure(page, column, column, &sum_text(sum), "");
        }
    }
    // The fund's other results in the summary (residuals, say), by their keys; its inputs and the
    // exact point value are in the run summary below.
    let prefix = key("");
    for row in &summary.rows {
        let (Some(name), Some(value)) = (row.first(), row.get(1)) else { continue };
        let Some(short) = name.strip_prefix(&prefix) else { continue };
        let shown = ["point_value", "point_value_method", "point_value_exact"].contains(&short)
            || short.starts_with("input.")
            || basis_key.as_deref() == Some(name.as_str());
        if !shown {
            figure(page, short, short, value, "");
        }
    }
    page.push_str("</dl></div>");
}

/// The run card: cases submitted, accepted and rejected, and the run's other totals.
fn run_card(page: &mut String, summary: &Table) {
    page.push_str(r#"<div class="card" data-fund=""><h3>run 本期</h3><dl>"#);
    for name in ["submitted", "accepted", "rejected", "hospitals", "gross_total"] {
        if let Some(value) = summary.value(name) {
            let _ = write!(page, r#"<dt>{}</dt><dd data-figure="{}">{}</dd>"#, escape(name), escape(name), number(value));
        }
    }
    page.push_str("</dl></div>");
}

/// Totals by fund: one row per additive column of the statements (cases, points, every amount),
/// one column per fund and one for all funds.
fn totals_table(page: &mut String, statements: &Table, funds: &[String]) {
    page.push_str(r#"<table id="totals"><thead><tr><th class="text">quantity</th>"#);
    for fund in funds {
        let _ = write!(page, "<th>{}</th>", escape(fund));
    }
    page.push_str("<th>all funds</th></tr></thead><tbody>");
    for c in (0..statements.header.len()).filter(|&c| is_additive(statements, c)) {
        let name = &statements.header[c];
        let by_fund = sums_by(statements, "fund", c);
        let _ = write!(page, r#"<tr data-quantity="{}"><td class="text">{}</td>"#, escape(name), escape(name));
        let mut all = Decimal::ZERO;
        for fund in funds {
            let sum = by_fund.get(fund).copied().unwrap_or_default();
            all += sum;
            let _ = write!(page, r#"<td data-fund="{}">{}</td>"#, escape(fund), number(&sum_text(sum)));
        }
        let _ = write!(page, r#"<td data-fund="all">{}</td></tr>"#, number(&sum_text(all)));
    }
    page.push_str("</tbody></table>");
}

/// The per-month trend table, with a bar for the first amount column.
fn trend_table(page: &mut String, trend: &Table) {
    let bar_column = trend.header.iter().position(|h| h.contains("amount"));
    let bar_max = bar_column
        .map(|c| {
            let values = trend.rows.iter().filter(|row| row.first().is_some_and(|m| m != "total"));
            values.filter_map(|row| row.get(c).and_then(|v| decimal(v))).map(|v| v.abs()).max().unwrap_or_default()
        })
        .unwrap_or_default();
    page.push_str(r#"<table id="trend"><thead><tr>"#);
    for name in &trend.header {
        let class = if is_text_name(name) || name == "month" { r#" class="text""# } else { "" };
        let _ = write!(page, "<th{class}>{}</th>", header_text(name));
    }
    if let Some(c) = bar_column {
        let _ = write!(page, r#"<th class="text">{} trend</th>"#, header_text(&trend.header[c]));
    }
    page.push_str("</tr></thead><tbody>");
    for row in &trend.rows {
        let total = row.first().is_some_and(|m| m == "total");
        page.push_str(if total { r#"<tr class="total">"# } else { "<tr>" });
        for (c, cell) in row.iter().enumerate() {
            let text = trend.header.get(c).is_some_and(|h| is_text_name(h) || h == "month");
            if text {
                let _ = write!(page, r#"<td class="text">{}</td>"#, escape(cell));
            } else {
                let _ = write!(page, "<td>{}</td>", number(cell));
            }
        }
        if let Some(c) = bar_column {
            let value = row.get(c).and_then(|v| decimal(v)).unwrap_or_default().abs();
            let width = if total || bar_max.is_zero() { Decimal::ZERO } else { (value * Decimal::ONE_HUNDRED / bar_max).round_dp(1) };
            if total {
                page.push_str("<td></td>");
            } else {
                let _ = write!(page, r#"<td class="barcell"><div class="bar" style="width:{width}%"></div></td>"#);
            }
        }
        page.push_str("</tr>");
    }
    page.push_str("</tbody></table>");
}

/// The statements as several tables of at most [`MAX_VALUE_COLUMNS_PER_TABLE`] value columns,
/// each led by the identifying columns (text columns: hospital id and name, level, fund).
fn statements_tables(page: &mut String, statements: &Table) {
    let (identity, values): (Vec<usize>, Vec<usize>) = (0..statements.header.len()).partition(|&c| {
        let name = &statements.header[c];
        is_text_name(name) || statements.rows.iter().any(|row| row.get(c).is_some_and(|v| !v.is_empty() && decimal(v).is_none()))
    });
    let groups = values.len().div_ceil(MAX_VALUE_COLUMNS_PER_TABLE).max(1);
    let per_group = values.len().div_ceil(groups).max(1);
    for (part, chunk) in values.chunks(per_group).enumerate() {
        let _ = write!(page, r#"<table class="statements" data-part="{}"><thead><tr>"#, part + 1);
        for &c in identity.iter().chain(chunk) {
            let class = if identity.contains(&c) { r#" class="text""# } else { "" };
            let _ = write!(page, "<th{class}>{}</th>", header_text(&statements.header[c]));
        }
        page.push_str("</tr></thead><tbody>");
        for row in &statements.rows {
            page.push_str("<tr>");
            for &c in &identity {
                let _ = write!(page, r#"<td class="text">{}</td>"#, escape(row.get(c).map(String::as_str).unwrap_or("")));
            }
            for &c in chunk {
                let _ = write!(page, "<td>{}</td>", number(row.get(c).map(String::as_str).unwrap_or("")));
            }
            page.push_str("</tr>");
        }
        page.push_str("</tbody></table>");
    }
}

/// A horizontal bar chart of one or two series per hospital. Bar lengths are drawing geometry
/// (floating point); the labels are the exact sums.
fn bar_chart(title: &str, series: &[(&str, &str, &BTreeMap<String, Decimal>)]) -> String {
    let Some((_, _, first)) = series.first() else { return String::new() };
    let labels: Vec<&String> = first.keys().collect();
    let max =
        series.iter().flat_map(|(_, _, values)| values.values()).filter_map(|v| v.to_f64()).fold(0.0f64, |a, b| a.max(b.abs())).max(1e-9);
    let bar = 14.0;
    let group = bar * series.len() as f64 + 6.0;
    let height = 40.0 + group * labels.len() as f64;
    let mut svg = format!(
        r#"<h3>{}</h3><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 900 {height}" width="900" height="{height}" font-family="sans-serif" font-size="11">"#,
        escape(title)
    );
    for (s, (name, colour, _)) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{}" y="4" width="10" height="10" fill="{colour}"/><text x="{}" y="13">{}</text>"#,
            110 + s * 160,
            124 + s * 160,
            escape(name)
        );
    }
    for (i, label) in labels.iter().enumerate() {
        let y = 24.0 + group * i as f64;
        let _ =
            write!(svg, r#"<text x="100" y="{}" text-anchor="end">{}</text>"#, y + bar * series.len() as f64 / 2.0 + 4.0, escape(label));
        for (s, (_, colour, values)) in series.iter().enumerate() {
            let value = values.get(*label).copied().unwrap_or_default();
            let width = (value.to_f64().unwrap_or(0.0).abs() / max * 640.0).max(0.5);
            let top = y + bar * s as f64;
            let shown = number(&sum_text(value));
            let _ = write!(
                svg,
                r#"<rect x="104" y="{top}" width="{width:.1}" height="{}" fill="{colour}"><title>{}: {shown}</title></rect><text x="{:.1}" y="{}">{shown}</text>"#,
                bar - 2.0,
                escape(label),
                108.0 + width,
                top + bar - 4.0,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Sums a column per hospital (over funds); empty when the column is absent.
fn per_hospital(table: &Table, column: &str) -> BTreeMap<String, Decimal> {
    table.column(column).map(|c| sums_by(table, "hospital_id", c)).unwrap_or_default()
}

fn charts(page: &mut String, statements: &Table) {
    let gross = per_hospital(statements, "gross");
    let points = per_hospital(statements, "counted_points");
    let cost = per_hospital(statements, "total_cost");
    if !gross.is_empty() {
        page.push_str(&bar_chart("Payments per hospital (gross, yuan)", &[("gross payment", "#2f6db5", &gross)]));
    }
    if !points.is_empty() {
        page.push_str(&bar_chart("Counted points per hospital", &[("counted points", "#5a9e4b", &points)]));
    }
    if !gross.is_empty() && !cost.is_empty() {
        page.push_str(&bar_chart(
            "Payment against actual cost (yuan)",
            &[("gross payment", "#2f6db5", &gross), ("actual cost", "#b53a2f", &cost)],
        ));
    }
}

/// The run summary as a key/value table.
fn summary_table(page: &mut String, summary: &Table) {
    page.push_str(r#"<table id="summary"><thead><tr>"#);
    for name in &summary.header {
        let _ = write!(page, r#"<th class="text">{}</th>"#, escape(name));
    }
    page.push_str("</tr></thead><tbody>");
    for row in &summary.rows {
        page.push_str("<tr>");
        for (c, cell) in row.iter().enumerate() {
            let shown = if c == 0 || row.first().is_some_and(|key| is_text_name(key)) { escape(cell) } else { number(cell) };
            let _ = write!(page, r#"<td class="text">{shown}</td>"#);
        }
        page.push_str("</tr>");
    }
    page.push_str("</tbody></table>");
}

/// The report page. `trend` is the per-month table ([`super::trend::monthly_trend`]), when the run
/// has one.
pub fn settlement_report(statements: &Table, summary: &Table, trend: Option<&Table>) -> String {
    let mut page = String::with_capacity(16 * 1024);
    page.push_str(r#"<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">"#);
    page.push_str(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#);
    page.push_str(r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">"#);
    let run: Vec<String> = ["region", "scheme", "mode", "period"]
        .iter()
        .filter_map(|key| summary.value(key))
        .filter(|value| !value.is_empty())
        .map(escape)
        .collect();
    let _ = write!(page, "<title>dipdrg settlement report {}</title><style>{STYLE}</style></head><body><main>", run.join(" "));
    page.push_str("<h1>Settlement report 结算报告</h1>");
    let _ = write!(page, r#"<p class="run">{}"#, run.join(" · "));
    for key in ["policy_version", "tables_fingerprint"] {
        if let Some(value) = summary.value(key) {
            let _ = write!(page, " · {}: {}", escape(key), escape(value));
        }
    }
    page.push_str("</p>");
    let funds = funds(statements, summary);
    page.push_str(r#"<section id="headline"><h2>Headline figures 概要</h2><div class="cards">"#);
    for fund in &funds {
        fund_card(&mut page, fund, statements, summary);
    }
    run_card(&mut page, summary);
    page.push_str("</div><h3>Totals by fund (yuan, points, cases)</h3>");
    totals_table(&mut page, statements, &funds);
    page.push_str("</section>");
    if let Some(trend) = trend {
        page.push_str(r#"<section id="trend-section"><h2>Per-month trend 月度趋势 (by discharge month)</h2>"#);
        trend_table(&mut page, trend);
        page.push_str("</section>");
    }
    page.push_str(r#"<section id="charts"><h2>Charts</h2>"#);
    charts(&mut page, statements);
    page.push_str(r#"</section><section id="statements"><h2>Statements 结算单</h2>"#);
    statements_tables(&mut page, statements);
    page.push_str(r#"</section><section id="summary-section"><h2>Run summary</h2>"#);
    summary_table(&mut page, summary);
    page.push_str("</section></main></body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(header: &[&str], rows: &[&[&str]]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: rows.iter().map(|r| r.iter().map(|s| s.to_string()).collect()).collect(),
        }
    }

    fn statements() -> Table {
        table(
            &["hospital_id", "hospital_name", "fund", "cases", "cmi", "point_value", "gross", "patient_paid"],
            &[
                &["<script>alert(1)</script>", "A&B \"医院\"", "employee", "3", "1.2000", "18.8444", "1234567.80", "100.00"],
                &["H002", "B", "employee", "2", "0.9000", "18.8444", "1000.20", "-50.00"],
                &["H002", "B", "resident", "1", "1.0000", "19.5", "10.00", "0.00"],
            ],
        )
    }

    fn summary() -> Table {
        table(
            &["key", "value"],
            &[
                &["region", "demo<city>"],
                &["period", "2026"],
                &["employee.point_value", "18.8444"],
                &["employee.point_value_method", "settlement"],
                &["employee.distributable", "1000000.00"],
                &["resident.point_value", "19.5"],
                &["submitted", "1000"],
            ],
        )
    }

    #[test]
    fn text_from_the_tables_is_escaped() {
        let page = settlement_report(&statements(), &summary(), None);
        assert!(!page.contains("<script>"), "a hospital id must not become a script");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("A&amp;B &quot;医院&quot;"));
        assert!(page.contains("demo&lt;city&gt;"));
    }

    #[test]
    fn headline_shows_point_values_distributed_against_basis_and_totals() {
        let page = settlement_report(&statements(), &summary(), None);
        assert!(page.contains(r#"data-figure="point_value">18.8444<"#));
        assert!(page.contains(r#"data-figure="point_value">19.5<"#));
        // employee: 1234567.80 + 1000.20 = 1235568.00 distributed, over the 1000000.00 basis.
        assert!(page.contains(r#"data-figure="distributed">1,235,568.00<"#), "{page}");
        assert!(page.contains(r#"data-figure="basis">1,000,000.00<"#));
        assert!(page.contains(r#"<dd class="over" data-figure="distributed_percent">123.56<"#));
        // totals: patient_paid 100.00 - 50.00 = 50.00 employee; all funds 50.00; no -0.00 anywhere.
        assert!(page.contains(r#"<tr data-quantity="patient_paid"><td class="text">patient_paid</td><td data-fund="employee">50.00</td><td data-fund="resident">0.00</td><td data-fund="all">50.00</td></tr>"#), "{page}");
        assert!(page.contains(r#"<tr data-quantity="gross"><td class="text">gross</td><td data-fund="employee">1,235,568.00</td><td data-fund="resident">10.00</td><td data-fund="all">1,235,578.00</td></tr>"#));
        assert!(!page.contains("data-quantity=\"cmi\"") && !page.contains("data-quantity=\"point_value\""), "rates are not summed");
        assert!(!page.contains("-0.00"));
    }

    #[test]
    fn statements_split_into_narrow_tables_repeating_the_identity_columns() {
        let mut wide = statements();
        for i in 0..12 {
            wide.header.push(format!("extra_amount_{i}"));
            for row in &mut wide.rows {
                row.push("1.00".into());
            }
        }
        let page = settlement_report(&wide, &summary(), None);
        let parts = page.matches(r#"<table class="statements""#).count();
        assert_eq!(parts, 3, "17 value columns in tables of at most 8");
        assert_eq!(page.matches(r#"<th class="text">hospital_<wbr>id</th>"#).count(), 3);
    }

    #[test]
    fn trend_rows_show_with_a_bar_and_a_total() {
        let trend = table(
            &["month", "fund", "cases", "amount"],
            &[&["2026-01", "employee", "2", "500.00"], &["2026-02", "employee", "1", "1000.00"], &["total", "all", "3", "1500.00"]],
        );
        let page = settlement_report(&statements(), &summary(), Some(&trend));
        assert!(page.contains(r#"<td class="text">2026-02</td><td class="text">employee</td><td>1</td><td>1,000.00</td><td class="barcell"><div class="bar" style="width:100%">"#), "{page}");
        assert!(page.contains(r#"style="width:50%""#));
        assert!(page.contains(
            r#"<tr class="total"><td class="text">total</td><td class="text">all</td><td>3</td><td>1,500.00</td><td></td></tr>"#
        ));
    }

    #[test]
    fn the_page_loads_nothing_from_outside() {
        let page = settlement_report(&statements(), &summary(), None);
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("<link"));
        assert!(page.contains("default-src 'none'"));
    }
}
