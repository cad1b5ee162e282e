//! DIP grouping (按病种分值付费): diagnosis + procedure combinations from a catalog.
//!
//! [`catalog`] loads and indexes a catalog directory; [`group`] picks a case's group.

pub mod catalog;
pub mod group;

pub use catalog::{DipCatalog, GroupKind, Treatment};
pub use group::{group, DipResult, DipStatus};
