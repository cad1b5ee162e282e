//! Table sets as data: reading declarative CSV tables into memory, with errors that name the file,
//! line and column. What a table means is decided by its user ([`crate::drg::tables`]).

pub mod source;
