//! The settlement report as one self-contained HTML page: the run summary, bar charts (payments
//! and points per hospital, CMI, payment against actual cost) as inline SVG, and the statements.

use super::Table;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::fmt::Write;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Sums a numeric column per hospital (over funds).
fn per_hospital(table: &Table, column: &str) -> BTreeMap<String, Decimal> {
    let mut sums = BTreeMap::new();
    let (Some(id), Some(value)) = (table.column("hospital_id"), table.column(column)) else { return sums };
    for row in &table.rows {
        let amount = row.get(value).and_then(|v| v.parse::<Decimal>().ok()).unwrap_or_default();
        *sums.entry(row.get(id).cloned().unwrap_or_default()).or_insert(Decimal::ZERO) += amount;
    }
    sums
}

/// A horizontal bar chart of one or two series per hospital.
fn bar_chart(title: &str, series: &[(&str, &str, &BTreeMap<String, Decimal>)]) -> String {
    let Some((_, _, first)) = series.first() else { return String::new() };
    let labels: Vec<&String> = first.keys().collect();
    let max =
        series.iter().flat_map(|(_, _, values)| values.values()).filter_map(|v| v.to_f64()).fold(0.0f64, |a, b| a.max(b.abs())).max(1e-9);
    let bar = 14.0;
    let group = bar * series.len() as f64 + 6.0;
    let height = 40.0 + group * labels.len() as f64;
    let mut svg = format!(
        r#"<h2>{}</h2><svg xmlns="http://www.w3.org/2000/svg" width="900" height="{height}" font-family="sans-serif" font-size="11">"#,
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
            let _ = write!(
                svg,
                r#"<rect x="104" y="{top}" width="{width:.1}" height="{}" fill="{colour}"><title>{}: {}</title></rect><text x="{:.1}" y="{}">{}</text>"#,
                bar - 2.0,
                escape(label),
                value,
                108.0 + width,
                top + bar - 4.0,
                value.round_dp(2)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn html_table(table: &Table) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in &table.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in &table.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The report page.
pub fn settlement_report(statements: &Table, summary: &Table) -> String {
    let gross = per_hospital(statements, "gross");
    let points = per_hospital(statements, "counted_points");
    let cost = per_hospital(statements, "total_cost");
    let cases = per_hospital(statements, "grouped_cases");
    // CMI over funds: case-weighted mean of the per-fund CMI.
    let mut cmi_weighted: BTreeMap<String, Decimal> = BTreeMap::new();
    if let (Some(id), Some(c), Some(n)) = (statements.column("hospital_id"), statements.column("cmi"), statements.column("grouped_cases")) {
        for row in &statements.rows {
            let value = row.get(c).and_then(|v| v.parse::<Decimal>().ok()).unwrap_or_default();
            let count = row.get(n).and_then(|v| v.parse::<Decimal>().ok()).unwrap_or_default();
            *cmi_weighted.entry(row.get(id).cloned().unwrap_or_default()).or_insert(Decimal::ZERO) += value * count;
        }
    }
    let cmi: BTreeMap<String, Decimal> = cmi_weighted
        .into_iter()
        .map(|(h, weighted)| {
            let n = cases.get(&h).copied().unwrap_or_default();
            (h, if n.is_zero() { Decimal::ZERO } else { (weighted / n).round_dp(4) })
        })
        .collect();
    let mut page = String::from(
        r#"<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>dipdrg settlement report</title><style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f0f0f0}</style></head><body><h1>Settlement report 结算报告</h1>"#,
    );
    page.push_str(&html_table(summary));
    page.push_str(&bar_chart("Payments per hospital (gross, yuan)", &[("gross payment", "#2f6db5", &gross)]));
    page.push_str(&bar_chart("Counted points per hospital", &[("counted points", "#5a9e4b", &points)]));
    page.push_str(&bar_chart("Case mix index (CMI)", &[("CMI", "#c77c1e", &cmi)]));
    page.push_str(&bar_chart(
        "Payment against actual cost (yuan)",
        &[("gross payment", "#2f6db5", &gross), ("actual cost", "#b53a2f", &cost)],
    ));
    page.push_str("<h2>Statements</h2>");
    page.push_str(&html_table(statements));
    page.push_str("</body></html>\n");
    page
}
