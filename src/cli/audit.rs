//! `dipdrg audit`: flag likely violations in a period's cases, with evidence; optionally score
//! the flags against a list of known (injected) violations. An adapter: the audit run is
//! [`dipdrg::audit_run`] (parallel executor, or `--executor reference`).

use super::Executor;
use anyhow::{bail, Context};
use clap::Args;
use dipdrg::audit::{detector_scores, family_prefixes, scoring_threshold};
use dipdrg::audit_run::{self, FLAGS_HEADER};
use dipdrg::io::chunks::CHUNK_BYTES;
use dipdrg::policy::Policy;
use dipdrg::scoring::Scorer;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args)]
pub struct AuditArgs {
    /// Region policy (its `[audit]` table holds the thresholds).
    #[arg(long)]
    policy: PathBuf,
    /// DRG table set (DRG policy) or DIP catalog directory (DIP policy).
    #[arg(long)]
    tables: PathBuf,
    #[arg(long)]
    cases: PathBuf,
    /// Output flags CSV.
    #[arg(long)]
    out: PathBuf,
    /// Families treatable as outpatients, one per line, added to the policy's list (for generated
    /// data: `dipdrg gen` writes `<stem>.outpatient-families.txt`).
    #[arg(long)]
    outpatient_families: Option<PathBuf>,
    /// Known violations (case_id, kind) to score the flags against: precision and recall per
    /// detector (split admissions on flags scoring ≥ 0.8, the others on all flags).
    #[arg(long)]
    injected: Option<PathBuf>,
    /// Worker threads [default: the machine's cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, value_enum, default_value = "parallel")]
    executor: Executor,
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut policy = Policy::load(&args.policy)?;
    if let Some(path) = &args.outpatient_families {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        policy.audit.outpatient_family_prefixes.extend(family_prefixes(&text));
    }
    let scorer = Scorer::load(&policy, &args.policy, &args.tables).with_context(|| format!("loading {}", args.tables.display()))?;
    let (input, layout, size_hint) = super::open_case_file(&args.cases)?;
    let outcome = match args.executor {
        Executor::Parallel => {
            audit_run::parallel(&policy, &scorer, input, &layout, size_hint, super::worker_threads(args.threads), CHUNK_BYTES)
                .with_context(|| format!("reading {}", args.cases.display()))?
        }
        Executor::Reference => audit_run::reference(&policy, &scorer, super::records_after_header(input, layout)),
    };
    if outcome.audited + outcome.unreadable != outcome.submitted {
        bail!("internal error: audited {} + unreadable {} != submitted {}", outcome.audited, outcome.unreadable, outcome.submitted);
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    file.write_all(FLAGS_HEADER.as_bytes())
        .and_then(|()| file.write_all(&outcome.flags_csv()))
        .with_context(|| format!("writing {}", args.out.display()))?;
    if !args.quiet {
        eprintln!(
            "{} cases audited ({} unreadable records skipped; `dipdrg group` names them) in {:.2} s",
            outcome.audited,
            outcome.unreadable,
            started.elapsed().as_secs_f64()
        );
        let counts: Vec<String> = outcome.flags_per_kind().iter().map(|(k, n)| format!("{} {n}", k.as_str())).collect();
        eprintln!("flags: {}; wrote {}", counts.join(", "), args.out.display());
    }
    if let Some(path) = &args.injected {
        let mut reader = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
        let headers = reader.headers()?.clone();
        let (Some(id), Some(kind)) = (headers.iter().position(|h| h == "case_id"), headers.iter().position(|h| h == "kind")) else {
            bail!("{}: needs case_id and kind columns", path.display());
        };
        let mut known = Vec::new();
        for record in reader.records() {
            let record = record?;
            known.push((record.get(id).unwrap_or("").to_string(), record.get(kind).unwrap_or("").to_string()));
        }
        println!("detector,threshold,true_positives,false_positives,false_negatives,precision,recall");
        for (kind, s) in &detector_scores(&outcome.flags, &known) {
            println!(
                "{},{},{},{},{},{},{}",
                kind.as_str(),
                scoring_threshold(*kind).normalize(),
                s.true_positives,
                s.false_positives,
                s.false_negatives,
                s.precision(),
                s.recall()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
