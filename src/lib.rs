//! dipdrg: DIP/DRG grouping, case points, point values and settlement for China's regional
//! global-budget point method (区域点数法总额预算).
//!
//! The pipeline is case → group → points → point value → settlement, with audit beside it. The
//! core modules ([`case`], [`drg`], [`dip`], [`pricing`], [`catalog_build`], [`policy`]) are pure functions over immutable table snapshots; [`io`] and
//! [`tables::source`] are the adapters that read and write files.

pub mod audit;
pub mod benefits;
pub mod case;
pub mod catalog_build;
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
