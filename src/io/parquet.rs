//! Parquet case files (feature `parquet`), read through the CSV path.
//!
//! [`ParquetAsCsv`] turns a Parquet file into the CSV text of the same table — a header of the
//! column names, then one line per row — so that every check, rejection message, record number
//! and the parallel chunked reading are exactly those of a CSV input. Columns are matched by
//! name, as in CSV. Values become text as follows:
//!
//! - strings as they are; integers in decimal;
//! - DECIMAL columns exactly (unscaled value and scale: money stays exact);
//! - DATE columns as `YYYY-MM-DD`;
//! - FLOAT/DOUBLE in the shortest form that reads back to the same number (a double written
//!   from `8008.73` reads as `8008.73`); amounts with more than 2 decimals are rejected later,
//!   as in CSV;
//! - lists (e.g. `diagnoses` as `list<string>`) joined with `|`;
//! - nulls as empty fields.
//!
//! Compression: uncompressed and Snappy (pyarrow's default). A file the library cannot read
//! ends the input with an error naming the row; the library's own panics on corrupt files are
//! caught and reported the same way.
//!
//! [`write_cases`] writes cases in the standard layout (money as DECIMAL(18,2), dates as DATE,
//! codes `|`-joined): what the tests settle against the same cases as CSV.

use crate::case::{Case, Date};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::{Field, Row};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// The first bytes of every Parquet file.
pub const MAGIC: &[u8; 4] = b"PAR1";

/// Reads a Parquet file as CSV text (see the module docs).
pub struct ParquetAsCsv {
    rows: parquet::record::reader::RowIter<'static>,
    pending: Vec<u8>,
    offset: usize,
    row: u64,
    done: bool,
}

fn csv_field(out: &mut Vec<u8>, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

fn decimal_text(value: &parquet::data_type::Decimal) -> String {
    let bytes = value.data();
    // Big-endian two's complement, at most 16 bytes for a representable value.
    if bytes.is_empty() || bytes.len() > 16 {
        return String::from("(decimal out of range)");
    }
    let mut unscaled: i128 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in bytes {
        unscaled = (unscaled << 8) | i128::from(b);
    }
    match u32::try_from(value.scale()) {
        Ok(scale) => rust_decimal::Decimal::try_from_i128_with_scale(unscaled, scale)
            .map_or_else(|_| "(decimal out of range)".into(), |d| d.to_string()),
        Err(_) => "(decimal out of range)".into(),
    }
}

fn field_text(field: &Field) -> String {
    match field {
        Field::Null => String::new(),
        Field::Bool(v) => v.to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float16(v) => v.to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        Field::Decimal(v) => decimal_text(v),
        Field::Str(v) => v.clone(),
        Field::Bytes(v) => String::from_utf8_lossy(v.data()).to_string(),
        Field::Date(days) => Date::from_ymd(1970, 1, 1).map(|epoch| epoch.add_days(*days).to_string()).unwrap_or_default(),
        Field::ListInternal(list) => list.elements().iter().map(field_text).collect::<Vec<_>>().join("|"),
        // Times, timestamps, structs and maps have no place in a case row: shown as Parquet
        // shows them, they fail the column's own check.
        other => other.to_string(),
    }
}

impl ParquetAsCsv {
    pub fn open(path: &Path) -> io::Result<ParquetAsCsv> {
        let file = File::open(path)?;
        let reader =
            SerializedFileReader::new(file).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
        let mut header = Vec::new();
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        for (i, column) in schema.root_schema().get_fields().iter().enumerate() {
            if i > 0 {
                header.push(b',');
            }
            csv_field(&mut header, column.name());
        }
        header.push(b'\n');
        let rows = reader.into_iter();
        Ok(ParquetAsCsv { rows, pending: header, offset: 0, row: 0, done: false })
    }

    fn next_row(&mut self) -> io::Result<Option<Row>> {
        self.row += 1;
        let row = self.row;
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.rows.next()));
        match next {
            Ok(None) => Ok(None),
            Ok(Some(Ok(r))) => Ok(Some(r)),
            Ok(Some(Err(e))) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("parquet row {row}: {e}"))),
            Err(_) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("parquet row {row}: the file is corrupt"))),
        }
    }
}

impl Read for ParquetAsCsv {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset >= self.pending.len() {
            if self.done {
                return Ok(0);
            }
            self.pending.clear();
            self.offset = 0;
            // Fill about 64 KiB of lines at a time.
            while self.pending.len() < 64 << 10 {
                match self.next_row()? {
                    None => {
                        self.done = true;
                        break;
                    }
                    Some(row) => {
                        for (i, (_, field)) in row.get_column_iter().enumerate() {
                            if i > 0 {
                                self.pending.push(b',');
                            }
                            csv_field(&mut self.pending, &field_text(field));
                        }
                        self.pending.push(b'\n');
                    }
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.offset);
        buf[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

const SCHEMA: &str = "message cases {
  required binary case_id (UTF8);
  optional binary hospital_id (UTF8);
  optional binary patient_id (UTF8);
  optional binary fund (UTF8);
  optional int64 sex;
  optional int64 age;
  optional int64 age_days;
  optional int64 birth_weight;
  optional int32 admission_date (DATE);
  optional int32 discharge_date (DATE);
  optional int64 los;
  optional int64 disposition;
  optional binary department (UTF8);
  optional binary diagnoses (UTF8);
  optional binary procedures (UTF8);
  optional int64 total_cost (DECIMAL(18,2));
  optional int64 fund_paid (DECIMAL(18,2));
  optional int64 patient_paid (DECIMAL(18,2));
  optional int64 icu_hours;
}";

fn parquet_error(e: parquet::errors::ParquetError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Writes `cases` as one Parquet file (Snappy) in the standard layout, in row groups of 100,000.
pub fn write_cases(path: &Path, cases: &[Case]) -> io::Result<()> {
    let schema = Arc::new(parquet::schema::parser::parse_message_type(SCHEMA).map_err(parquet_error)?);
    let properties = Arc::new(WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build());
    let mut writer = SerializedFileWriter::new(File::create(path)?, schema, properties).map_err(parquet_error)?;
    let days = |d: Option<Date>| d.and_then(|d| Date::from_ymd(1970, 1, 1).map(|epoch| d.days_since(epoch)));
    let fen =
        |m: Option<rust_decimal::Decimal>| m.and_then(|m| i64::try_from((m * rust_decimal::Decimal::from(100)).trunc().mantissa()).ok());
    for group in cases.chunks(100_000) {
        let mut row_group = writer.next_row_group().map_err(parquet_error)?;
        let mut column = 0;
        while let Some(mut col) = row_group.next_column().map_err(parquet_error)? {
            let texts = |f: &dyn Fn(&Case) -> Option<String>| -> (Vec<ByteArray>, Vec<i16>) {
                let values: Vec<Option<String>> = group.iter().map(f).collect();
                let levels = values.iter().map(|v| i16::from(v.is_some())).collect();
                (values.into_iter().flatten().map(|v| ByteArray::from(v.into_bytes())).collect(), levels)
            };
            let longs = |f: &dyn Fn(&Case) -> Option<i64>| -> (Vec<i64>, Vec<i16>) {
                let values: Vec<Option<i64>> = group.iter().map(f).collect();
                (values.iter().flatten().copied().collect(), values.iter().map(|v| i16::from(v.is_some())).collect())
            };
            match column {
                0 => {
                    let values: Vec<ByteArray> = group.iter().map(|c| ByteArray::from(c.case_id.as_bytes().to_vec())).collect();
                    col.typed::<ByteArrayType>().write_batch(&values, None, None).map_err(parquet_error)?;
                }
                1 | 2 | 3 | 12 | 13 | 14 => {
                    let (values, levels) = texts(&|c: &Case| match column {
                        1 => c.hospital_id.clone(),
                        2 => c.patient_id.clone(),
                        3 => c.fund.map(|f| f.as_str().to_string()),
                        12 => c.department.clone(),
                        13 => Some(c.diagnoses.join("|")).filter(|t| !t.is_empty()),
                        _ => Some(c.procedures.join("|")).filter(|t| !t.is_empty()),
                    });
                    col.typed::<ByteArrayType>().write_batch(&values, Some(&levels), None).map_err(parquet_error)?;
                }
                8 | 9 => {
                    let values: Vec<Option<i32>> =
                        group.iter().map(|c| days(if column == 8 { c.admission_date } else { c.discharge_date })).collect();
                    let levels: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
                    let values: Vec<i32> = values.into_iter().flatten().collect();
                    col.typed::<Int32Type>().write_batch(&values, Some(&levels), None).map_err(parquet_error)?;
                }
                _ => {
                    let (values, levels) = longs(&|c: &Case| match column {
                        4 => c.sex,
                        5 => c.age,
                        6 => c.age_days,
                        7 => c.birth_weight,
                        10 => c.los,
                        11 => c.disposition,
                        15 => fen(c.total_cost),
                        16 => fen(c.fund_paid),
                        17 => fen(c.patient_paid),
                        _ => c.icu_hours,
                    });
                    col.typed::<Int64Type>().write_batch(&values, Some(&levels), None).map_err(parquet_error)?;
                }
            }
            col.close().map_err(parquet_error)?;
            column += 1;
        }
        row_group.close().map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icu_hours_round_trip_through_parquet() {
        let dir = std::env::temp_dir().join(format!("dipdrg-parquet-icu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cases.parquet");
        let with = Case { case_id: "C1".into(), diagnoses: vec!["K35.800".into()], icu_hours: Some(121), ..Case::default() };
        let without = Case { case_id: "C2".into(), icu_hours: None, ..with.clone() };
        write_cases(&path, &[with, without]).unwrap();
        let reader = crate::io::case_csv::CaseReader::new(ParquetAsCsv::open(&path).unwrap()).unwrap();
        let hours: Vec<Option<i64>> = reader.map(|c| c.unwrap().icu_hours).collect();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(hours, vec![Some(121), None]);
    }

    #[test]
    fn decimals_read_exactly() {
        let d = parquet::data_type::Decimal::from_i64(800873, 18, 2);
        assert_eq!(decimal_text(&d), "8008.73");
        let negative = parquet::data_type::Decimal::from_i64(-5, 18, 2);
        assert_eq!(decimal_text(&negative), "-0.05");
    }
}
