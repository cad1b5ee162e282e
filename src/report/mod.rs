//! Reports: the same tables as CSV, XLSX and an HTML page with charts. Adapters only: they format
//! what settlement computed and compute nothing themselves.

pub mod html;
pub mod xlsx;

/// A table of text cells with a header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}
