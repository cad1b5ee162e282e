//! File formats in and out of the core: case CSV and grouping results.

pub mod case_csv;
pub mod chunks;
#[cfg(feature = "parquet")]
pub mod parquet;
