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

/// jemalloc (tikv-jemallocator) as the allocator, with transparent huge pages on its arenas.
/// Batch jobs touch gigabytes of fresh heap (10M cases: chunk buffers, rows, settlement records);
/// where the kernel gives huge pages only on request (`madvise`, the common default), glibc's
/// malloc asks for none, and the page faults and TLB misses cost a tenth of a settlement.
/// `thp:always` makes jemalloc `madvise` its own extents, in every process and without the
/// re-exec with `GLIBC_TUNABLES` this replaces. Measured A/B, interleaved (README, Benchmarks):
/// the 10M-case year settles in 10.39 s against 11.36 s with the re-exec in one series and in
/// 11.94 s against 12.04 s in another (medians of 5), and `group` on 1M CHS-DRG 1.1 cases with
/// 2 threads runs at 735k cases/s against 559k.
/// `_RJEM_MALLOC_CONF=thp:default` turns it off; output never depends on it.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compiled-in options, a C string (read at its start; `_RJEM_MALLOC_CONF` adds to them).
#[cfg(not(target_env = "msvc"))]
#[export_name = "_rjem_malloc_conf"]
pub static JEMALLOC_OPTIONS: &[u8; 11] = b"thp:always\0";

fn main() -> ExitCode {
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
