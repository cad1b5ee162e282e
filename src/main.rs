//! The `dipdrg` command line: batch jobs over files. A thin edge: parse flags, call the library,
//! write files, print a summary. Errors are reported with `anyhow` here and nowhere else.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "dipdrg", version, about = "DIP/DRG grouping, case points and settlement")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Group cases with a DRG table set: one output row per case, rejects in a separate file.
    Group(cli::group::GroupArgs),
    /// Build scores from history: a DIP catalog or DRG relative weights.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Flag likely violations (split admissions, upcoding, low-standard admissions, bed-hanging).
    Audit(cli::audit::AuditArgs),
    /// Run the gRPC service (pre-check, cases, settlement runs, reviews) with health, reflection and metrics.
    Serve(cli::serve::ConfigArgs),
    /// Show the resolved service configuration (defaults → file → environment → flags).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// One-bill settlement at discharge: basic, catastrophic, subsidy and assistance layers of a year of discharges.
    Benefits(cli::benefits::BenefitsArgs),
    /// Month-end pre-settlement or year-end final settlement of a case file.
    Settle(cli::settle::SettleArgs),
    /// Generate synthetic cases for a table set (with injected violations, for audit scoring).
    Gen(cli::gen::GenArgs),
    /// Work with region policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Work with table sets.
    Tables {
        #[command(subcommand)]
        command: TablesCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the resolved configuration (tokens redacted).
    Show(cli::serve::ConfigArgs),
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Weighted history years → catalog.csv (DIP) or DRG weights.
    Build(cli::catalog::BuildArgs),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Load a policy (and its DIP catalog) and list regional DIP rules that can never take effect.
    Check(cli::policy::CheckArgs),
}

#[derive(Subcommand)]
enum TablesCommand {
    /// Load a DRG table set, report load time and entries its rules can never reach.
    Check(cli::tables::CheckArgs),
    /// Derive a DIP procedure_types.csv from a DRG table set (OR procedures = surgery).
    ProcedureTypes(cli::tables::ProcedureTypesArgs),
}

/// Batch jobs touch gigabytes of fresh heap (10M cases: chunk buffers, rows, settlement records).
/// Where the kernel offers transparent huge pages only on request (`madvise` mode, the common
/// default), glibc's malloc asks for them when `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` is set,
/// which it reads at process start; so a batch command re-executes itself once with it. That
/// cuts page faults and TLB misses (a 10M-case settlement: 22 s → 18 s on the 2-core VM). Set
/// `GLIBC_TUNABLES` yourself (even empty) or `DIPDRG_NO_HUGE_PAGES=1` to skip it; output never
/// depends on it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reexec_with_huge_pages() {
    use std::os::unix::process::CommandExt;
    const BATCH: [&str; 5] = ["settle", "audit", "group", "gen", "catalog"];
    let is_batch = std::env::args_os().nth(1).is_some_and(|c| BATCH.iter().any(|b| c == *b));
    if !is_batch || std::env::var_os("GLIBC_TUNABLES").is_some() || std::env::var_os("DIPDRG_NO_HUGE_PAGES").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    // `exec` returns only when it failed: then carry on in this process.
    let _ = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1").exec();
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn reexec_with_huge_pages() {}

fn main() -> ExitCode {
    reexec_with_huge_pages();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Group(args) => cli::group::run(args),
        Command::Gen(args) => cli::gen::run(args),
        Command::Settle(args) => cli::settle::run(args),
        Command::Benefits(args) => cli::benefits::run(args),
        Command::Audit(args) => cli::audit::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Config { command: ConfigCommand::Show(args) } => cli::serve::show(args),
        Command::Catalog { command: CatalogCommand::Build(args) } => cli::catalog::build(args),
        Command::Policy { command: PolicyCommand::Check(args) } => cli::policy::check(args),
        Command::Tables { command: TablesCommand::Check(args) } => cli::tables::check(args),
        Command::Tables { command: TablesCommand::ProcedureTypes(args) } => cli::tables::procedure_types(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // The stable code of the first coded error in the chain, else a generic one.
            let code = error.chain().find_map(dipdrg::error_code).unwrap_or("CLI_ERROR");
            eprintln!("error[{code}]: {error:#}");
            ExitCode::from(2)
        }
    }
}
