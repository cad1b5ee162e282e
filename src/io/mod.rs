//! The adapters between files and the core: case CSV and Parquet in, chunked parallel reading,
//! and the loaders of table sets, catalogs, weights and policies ([`load`]).

pub mod case_csv;
pub mod chunks;
pub mod load;
#[cfg(feature = "parquet")]
pub mod parquet;
