//! `dipdrg audit`: flag likely violations in a period's cases, with evidence; optionally score
//! the flags against a list of known (injected) violations.

use anyhow::{bail, Context};
use clap::Args;
use dipdrg::audit::{check_case, score_flags, split_admissions_in_parts, AuditCase, FamilyCounts, FlagKind};
use dipdrg::case::Case;
use dipdrg::io::case_csv::ChunkReader;
use dipdrg::io::chunks::{map_chunks, CHUNK_BYTES};
use dipdrg::policy::Policy;
use dipdrg::scoring::Scorer;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::io::Read;
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
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut policy = Policy::load(&args.policy)?;
    if let Some(path) = &args.outpatient_families {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        policy.audit.outpatient_family_prefixes.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
    }
    let scorer = Scorer::load(&policy, &args.policy, &args.tables).with_context(|| format!("loading {}", args.tables.display()))?;
    let (mut input, layout, size_hint) = super::open_case_file(&args.cases)?;
    let threads = super::worker_threads(args.threads);
    // Workers assess, run the single-case detectors and count families per chunk; the split
    // detector needs every stay and runs after. Same flags, same order as `audit::audit`.
    let chunks = map_chunks(input.by_ref(), threads, CHUNK_BYTES, size_hint, |_, bytes| {
        let mut cases = Vec::with_capacity(bytes.len() / 100);
        let mut case_flags = Vec::new();
        let mut counts = FamilyCounts::default();
        let mut rejected = 0u64;
        let mut case = Case::default();
        let mut reader = ChunkReader::new(bytes, layout.clone(), 0);
        while let Some(item) = reader.next_into(&mut case) {
            match item {
                Ok(()) => {
                    let audited = AuditCase::new(&case, &scorer.classify(&policy, &case));
                    case_flags.extend(check_case(&policy.audit, &audited));
                    counts.add(&audited);
                    cases.push(audited);
                }
                Err(_) => rejected += 1,
            }
        }
        (cases, case_flags, counts, rejected)
    })?;
    let read_done = started.elapsed();
    // The chunks' stays stay where they are: the split detector reads them in place.
    let mut parts: Vec<Vec<AuditCase>> = Vec::with_capacity(chunks.len());
    let mut case_flags = Vec::new();
    let mut counts = FamilyCounts::default();
    let mut rejected = 0u64;
    for (chunk, f, c, r) in chunks {
        parts.push(chunk);
        case_flags.extend(f);
        counts.merge(c);
        rejected += r;
    }
    let slices: Vec<&[AuditCase]> = parts.iter().map(Vec::as_slice).collect();
    let audited: usize = slices.iter().map(|p| p.len()).sum();
    let mut flags = split_admissions_in_parts(&policy.audit, &slices);
    flags.extend(case_flags);
    flags.extend(counts.flags(&policy.audit));
    let audit_done = started.elapsed();
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut writer = csv::Writer::from_path(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    writer.write_record(["kind", "score", "case_id", "related_case_id", "hospital_id", "group", "evidence"])?;
    for flag in &flags {
        writer.write_record([
            flag.kind.as_str(),
            &flag.score.to_string(),
            &flag.case_id,
            flag.related_case_id.as_deref().unwrap_or(""),
            &flag.hospital_id,
            &flag.group,
            &flag.evidence,
        ])?;
    }
    writer.flush()?;
    let mut per_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for flag in &flags {
        *per_kind.entry(flag.kind.as_str()).or_default() += 1;
    }
    if !args.quiet {
        eprintln!(
            "{} cases audited ({} unreadable records skipped; `dipdrg group` names them); read and assessed in {:.2} s, detectors {:.2} s, total {:.2} s",
            audited,
            rejected,
            read_done.as_secs_f64(),
            (audit_done - read_done).as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        let counts: Vec<String> = per_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
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
        let mut scores = score_flags(&flags, &known, Decimal::ZERO);
        scores.insert(FlagKind::SplitAdmission, score_flags(&flags, &known, Decimal::new(8, 1))[&FlagKind::SplitAdmission]);
        println!("detector,threshold,true_positives,false_positives,false_negatives,precision,recall");
        for (kind, s) in &scores {
            let threshold = if *kind == FlagKind::SplitAdmission { "0.8" } else { "0" };
            println!(
                "{},{threshold},{},{},{},{},{}",
                kind.as_str(),
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
