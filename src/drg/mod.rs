//! CHS-DRG grouping (疾病诊断相关分组): MDC → ADRG → DRG, driven only by a table set.
//!
//! [`tables`] loads and indexes a table set, [`group`] groups one case, [`trace`] explains the
//! decision and [`lint`] reports table entries that can never be reached.

pub mod group;
pub mod lint;
pub mod tables;
pub mod trace;

pub use group::{group, GroupResult, GroupStatus, MappingMode};
pub use tables::DrgTableSet;
pub use trace::{NoTrace, Trace};
