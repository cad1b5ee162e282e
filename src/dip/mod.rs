//! DIP grouping (按病种分值付费): diagnosis + procedure combinations from a catalog.
//!
//! [`catalog`] loads and indexes a catalog directory; [`group`] picks a case's group by the original
//! rules, [`rules`] by a policy's regional rules (`[dip_grouping]`) and the catalog's extensions.

pub mod catalog;
pub mod group;
pub mod lint;
pub mod rules;

pub use catalog::{DipCatalog, GroupKind, Treatment};
pub use group::{group, DipResult, DipStatus};
