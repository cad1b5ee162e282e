//! dipdrg: DIP/DRG grouping, case points, point values and settlement for China's regional
//! global-budget point method (区域点数法总额预算).
//!
//! The pipeline is case → group → points → point value → settlement, with audit beside it. The
//! core modules ([`case`], [`drg`]) are pure functions over immutable table snapshots; [`io`] and
//! [`tables::source`] are the adapters that read and write files.

pub mod case;
pub mod drg;
pub mod io;
pub mod tables;
