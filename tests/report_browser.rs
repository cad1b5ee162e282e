//! `report.html` rendered in headless Chromium (Debian's `chromium-headless-shell`) at a 1280 px
//! wide window: the headline figures on the rendered page equal the CSV tables, the page is no
//! wider than the window (no horizontal scrolling), the per-month trend is there, and a hospital
//! id holding a script shows as text and runs nothing.
//!
//! The page itself has no script; the test adds one probe script that writes the document's
//! scroll width into the DOM before `--dump-dom`. Without a browser the tests skip with a message,
//! unless `DIPDRG_REQUIRE_BROWSER` is set (CI sets it: `.ci/run` installs the browser).

use super::report_xlsx::{read_csv, scratch, settle_demo};
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WINDOW_WIDTH: u32 = 1280;
/// Browsers tried in order when `DIPDRG_CHROMIUM` does not name one.
const BROWSERS: [&str; 4] = ["chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"];

/// The browser to render with, or `None` (and a message) when the test may skip.
fn browser() -> Option<PathBuf> {
    let named = std::env::var_os("DIPDRG_CHROMIUM").map(PathBuf::from);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = named
        .or_else(|| BROWSERS.iter().flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name))).find(|p| p.is_file()));
    if found.is_none() {
        assert!(
            std::env::var_os("DIPDRG_REQUIRE_BROWSER").is_none(),
            "DIPDRG_REQUIRE_BROWSER is set but no browser was found (tried $DIPDRG_CHROMIUM and {BROWSERS:?} on PATH); apt-get install chromium-headless-shell"
        );
        eprintln!("skipped: no headless Chromium found (apt-get install chromium-headless-shell); set DIPDRG_REQUIRE_BROWSER=1 to make this a failure");
    }
    found
}

/// The probe: the document's scroll width and the window's width, as attributes of `<body>`.
const PROBE: &str = "<script>document.body.setAttribute('data-scroll-width', String(document.documentElement.scrollWidth));\
document.body.setAttribute('data-window-width', String(window.innerWidth));</script>";

/// Renders `html` at a 1280 px wide window and returns the DOM after layout, with the probe's
/// attributes. The page's Content-Security-Policy is widened to let the probe (only) run.
fn render(browser: &Path, html: &str, dir: &Path) -> String {
    let csp = "default-src 'none'; style-src 'unsafe-inline'";
    assert!(html.contains(csp), "the report declares its Content-Security-Policy");
    let probed_html =
        html.replacen(csp, &format!("{csp}; script-src 'unsafe-inline'"), 1).replacen("</body>", &format!("{PROBE}</body>"), 1);
    let page = dir.join("probed.html");
    std::fs::write(&page, probed_html).unwrap();
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
        .args(["--run-all-compositor-stages-before-draw", "--virtual-time-budget=5000"])
        .arg(format!("--window-size={WINDOW_WIDTH},900"))
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", browser.display()));
    // A guard against a browser that never returns, not a timing assertion.
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{} did not finish rendering in 120 s", browser.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}: {}", browser.display(), String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// A number the probe wrote as an attribute of `<body>`.
fn probed(dom: &str, attribute: &str) -> u32 {
    let value = dom.split(&format!("{attribute}=\"")).nth(1).and_then(|s| s.split('"').next());
    value.unwrap_or_else(|| panic!("the probe did not write {attribute}")).parse().unwrap()
}

/// The text of the first element after `marker` (up to the next `<`).
fn text_after<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom.find(marker).unwrap_or_else(|| panic!("no {marker} in the rendered page"));
    let rest = &dom[start..];
    let text = &rest[rest.find('>').unwrap() + 1..];
    &text[..text.find('<').unwrap()]
}

/// The DOM of one headline card.
fn card<'a>(dom: &'a str, fund: &str) -> &'a str {
    let start = dom.find(&format!(r#"<div class="card" data-fund="{fund}">"#)).unwrap_or_else(|| panic!("no card for {fund}"));
    let end = dom[start..].find("</dl>").unwrap();
    &dom[start..start + end]
}

/// A shown amount: thousands separators every three digits and 2 decimals, read as a decimal.
fn money(shown: &str) -> Decimal {
    let unsigned = shown.strip_prefix('-').unwrap_or(shown);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or_else(|| panic!("{shown:?} has no decimals"));
    assert_eq!(fraction.len(), 2, "{shown:?}: 2 decimals");
    let groups: Vec<&str> = whole.split(',').collect();
    assert!((1..=3).contains(&groups[0].len()) && groups[1..].iter().all(|g| g.len() == 3), "{shown:?}: thousands separators");
    assert_ne!(shown, "-0.00");
    shown.replace(',', "").parse().unwrap()
}

fn summary_value(summary: &[Vec<String>], key: &str) -> Option<String> {
    summary.iter().find(|row| row[0] == key).map(|row| row[1].clone())
}

fn column_sum(header: &[String], rows: &[Vec<String>], column: &str, fund: Option<&str>) -> Decimal {
    let c = header.iter().position(|h| h == column).unwrap_or_else(|| panic!("no column {column}"));
    let f = header.iter().position(|h| h == "fund").unwrap();
    rows.iter().filter(|row| fund.is_none_or(|fund| row[f] == fund)).map(|row| row[c].parse::<Decimal>().unwrap()).sum()
}

#[test]
fn rendered_report_shows_the_csv_figures_and_fits_a_1280_px_window() {
    let Some(browser) = browser() else { return };
    for (scheme, mode) in [("drg", "annual"), ("dip", "monthly")] {
        let out = scratch(&format!("browser-{scheme}-{mode}"));
        settle_demo(scheme, mode, &out);
        let dom = render(&browser, &std::fs::read_to_string(out.join("report.html")).unwrap(), &out);
        let context = format!("{scheme} {mode}");

        // No horizontal scrolling at 1280 px.
        let scroll_width = probed(&dom, "data-scroll-width");
        let window_width = probed(&dom, "data-window-width");
        assert_eq!(window_width, WINDOW_WIDTH, "{context}: the window");
        assert!(scroll_width <= window_width, "{context}: the page is {scroll_width} px wide in a {window_width} px window");

        // Headline: per fund, the point value of the summary and Σ gross of the statements.
        let (_, summary) = read_csv(&out.join("summary.csv"));
        let (header, statements) = read_csv(&out.join("statements.csv"));
        let funds: Vec<String> = summary.iter().filter_map(|row| row[0].strip_suffix(".point_value").map(String::from)).collect();
        assert_eq!(funds.len(), 2, "{context}: the demo's two funds");
        for fund in &funds {
            let card = card(&dom, fund);
            let point_value = summary_value(&summary, &format!("{fund}.point_value")).unwrap();
            assert_eq!(text_after(card, r#"data-figure="point_value""#), point_value, "{context} {fund}");
            let gross = column_sum(&header, &statements, "gross", Some(fund));
            assert_eq!(money(text_after(card, r#"data-figure="distributed""#)), gross, "{context} {fund}: distributed");
            if let Some(basis) = summary_value(&summary, &format!("{fund}.basis")) {
                assert_eq!(money(text_after(card, r#"data-figure="basis""#)), basis.parse::<Decimal>().unwrap(), "{context} {fund}");
            }
            let cases = column_sum(&header, &statements, "cases", Some(fund));
            assert_eq!(text_after(card, r#"data-figure="cases""#).replace(',', "").parse::<Decimal>().unwrap(), cases);
        }

        // Totals: every amount column of the statements summed over all funds, as the CSV says.
        for column in ["gross", "patient_paid", "total_cost"] {
            let row_start =
                dom.find(&format!(r#"<tr data-quantity="{column}">"#)).unwrap_or_else(|| panic!("{context}: no total {column}"));
            let all = text_after(&dom[row_start..], r#"data-fund="all""#);
            assert_eq!(money(all), column_sum(&header, &statements, column, None), "{context}: total {column}");
        }
        let gross_total = summary_value(&summary, "gross_total").unwrap();
        assert_eq!(money(text_after(&dom, r#"data-figure="gross_total""#)), gross_total.parse::<Decimal>().unwrap());

        // The per-month trend: its total row's amount is Σ amount of cases.csv.
        let (case_header, cases) = read_csv(&out.join("cases.csv"));
        let amount_total = column_sum(&case_header, &cases, "amount", None);
        let trend = &dom[dom.find(r#"<table id="trend">"#).expect("a trend table")..];
        let total_row = &trend[trend.find(r#"<tr class="total">"#).unwrap()..];
        let cells: Vec<&str> =
            total_row.split("<td").skip(1).take(3).map(|c| &c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()]).collect();
        assert_eq!(cells[..3], ["total", "all", &group(&cases.len().to_string())], "{context}");
        assert!(total_row.contains(&format!("<td>{}</td>", group(&amount_total.to_string()))), "{context}: trend total {amount_total}");
        let months = trend[..trend.find("</table>").unwrap()].matches(r#"<td class="text">2026-"#).count();
        assert!(if mode == "monthly" { months >= 1 } else { months >= 12 }, "{context}: {months} month rows");

        // Statements: every hospital's row is on the page, in tables that repeat the hospital id.
        assert!(dom.matches(r#"<table class="statements""#).count() >= 2, "{context}: statements split into narrow tables");
        let _ = std::fs::remove_dir_all(out);
    }
}

/// Thousands separators for an expected amount (independent of the report's own formatter).
fn group(text: &str) -> String {
    let (sign, unsigned) = text.strip_prefix('-').map_or(("", text), |rest| ("-", rest));
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits: Vec<char> = whole.chars().collect();
    let mut grouped = String::new();
    for (i, d) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(*d);
    }
    if fraction.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{fraction}")
    }
}

#[test]
fn a_hospital_id_holding_a_script_renders_as_text_and_runs_nothing() {
    let Some(browser) = browser() else { return };
    let out = scratch("browser-hostile");
    settle_demo("drg", "annual", &out);
    let (header, mut rows) = read_csv(&out.join("statements.csv"));
    let (summary_header, summary_rows) = read_csv(&out.join("summary.csv"));
    let hostile = r#"H<script>document.body.setAttribute('data-pwned','1')</script><img src=x onerror="document.body.setAttribute('data-pwned','2')">"#;
    let id = header.iter().position(|h| h == "hospital_id").unwrap();
    let name = header.iter().position(|h| h == "hospital_name").unwrap();
    for row in rows.iter_mut().filter(|row| row[id] == "H001") {
        row[id] = hostile.to_string();
        row[name] = "</td></tr></table><b id=\"injected\">x</b>".to_string();
    }
    let statements = dipdrg::report::Table { header, rows };
    let summary = dipdrg::report::Table { header: summary_header, rows: summary_rows };
    let dom = render(&browser, &dipdrg::report::html::settlement_report(&statements, &summary, None), &out);
    assert!(dom.contains("data-scroll-width"), "the probe ran, so a script of the page would have too");
    // The id's text holds `data-pwned','1'`; an attribute the script would set reads `data-pwned="`.
    assert!(!dom.contains(r#"data-pwned=""#), "a script from a hospital id ran");
    assert!(!dom.contains(r#"<b id="injected">"#), "markup from a hospital name became an element");
    assert!(dom.contains(r#"&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;b id="injected"&gt;x&lt;/b&gt;"#), "the name shows as text");
    assert_eq!(dom.matches("<script").count(), 1, "only the probe is a script element");
    assert!(dom.contains("H&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;"), "the id shows as text");
    let _ = std::fs::remove_dir_all(out);
}
