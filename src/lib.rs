//! dipdrg: DIP/DRG grouping, case points, point values and settlement for China's regional
//! global-budget point method (区域点数法总额预算).
//!
//! The pipeline is case → group → points → point value → settlement, with audit beside it.
//! Layers, from the inside out:
//! - **core** ([`case`], [`drg`], [`dip`], [`tables`], [`policy`], [`pricing`], [`scoring`],
//!   [`settlement`], [`audit`], [`catalog_build`], [`benefits`], [`generate`], [`units`]): pure
//!   functions over parsed cases and immutable table/policy snapshots, parsing from bytes or text
//!   (`SourceTable::parse`, `Policy::parse`, `DrgWeights::parse`). No file I/O, no threads.
//! - **executors** ([`settle`] (its `parallel` module), [`group_run`], [`audit_run`],
//!   [`catalog_run`]): a batch as chunked parallel read → per-case core stage → ordered output,
//!   each with a one-thread reference executor beside the parallel one, proven equal by a
//!   differential test. The only library code that starts threads (with [`io::chunks`]).
//! - **adapters**: [`io`] (case CSV/Parquet, chunked reading, and [`io::load`], the loaders that
//!   read table sets, catalogs, weights and policies from disk), [`store`] (SQLite/PostgreSQL),
//!   [`report`] (XLSX/HTML), [`server`] (gRPC), and the binary's `cli` (flags, files, printing).
//!
//! `grep -n "std::fs\|File::open\|thread::scope\|thread::spawn" src/` hits only executors and
//! adapters (and the settlement outcome's positional-write trait, which takes an open file).

pub mod audit;
pub mod audit_run;
pub mod benefits;
pub mod case;
pub mod catalog_build;
pub mod catalog_run;
pub mod dip;
pub mod drg;
pub mod generate;
pub mod group_run;
pub mod io;
pub mod policy;
pub mod pricing;
pub mod report;
pub mod scoring;
pub mod server;
pub mod settle;
pub mod settlement;
pub mod store;
pub mod tables;
pub mod text;
pub mod units;

/// The stable code of the first error in `error`'s chain that has one (every library error type
/// does), for the CLI to print next to the message: `error[CODE]: …`.
pub fn error_code(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut next = Some(error);
    while let Some(error) = next {
        let code = None
            .or_else(|| error.downcast_ref::<settle::SettleError>().map(settle::SettleError::code))
            .or_else(|| error.downcast_ref::<settlement::SettlementError>().map(settlement::SettlementError::code))
            .or_else(|| error.downcast_ref::<policy::PolicyError>().map(policy::PolicyError::code))
            .or_else(|| error.downcast_ref::<tables::source::TableError>().map(tables::source::TableError::code))
            .or_else(|| error.downcast_ref::<io::case_csv::CaseFileError>().map(io::case_csv::CaseFileError::code))
            .or_else(|| error.downcast_ref::<store::StoreError>().map(store::StoreError::code))
            .or_else(|| error.downcast_ref::<benefits::BenefitsError>().map(benefits::BenefitsError::code));
        if code.is_some() {
            return code;
        }
        next = error.source();
    }
    None
}
