//! Columns of the parquet files benchmarks come in (the ESCI release, and the hub copies of
//! MedCalc-Bench and GSM8K), read with polars, with errors that name the file and column.

use anyhow::{Context, Result};
use polars::prelude::{DataFrame, DataType, ParquetReader, SerReader};
use std::path::Path;

pub(crate) fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "parquet")
}

pub(crate) fn read(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    ParquetReader::new(file)
        .finish()
        .with_context(|| format!("{}: not a readable parquet file", path.display()))
}

/// A column as owned strings, whatever its type (nulls become empty), naming the file on error.
pub(crate) fn strings(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<String>> {
    let col = df
        .column(name)
        .with_context(|| format!("{}: no column `{name}`", path.display()))?;
    let col = col.cast(&DataType::String)?;
    Ok(col
        .str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

pub(crate) fn integers(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<i64>> {
    let col = df
        .column(name)
        .with_context(|| format!("{}: no column `{name}`", path.display()))?;
    let col = col
        .cast(&DataType::Int64)
        .with_context(|| format!("{}: column `{name}` is not numeric", path.display()))?;
    Ok(col.i64()?.iter().map(|v| v.unwrap_or(0)).collect())
}

/// Every column of the file as strings, with the column names as a CSV header, so that a
/// serde struct read from a CSV file reads the same rows from its parquet copy.
pub(crate) fn as_csv_records(path: &Path) -> Result<(csv::StringRecord, Vec<csv::StringRecord>)> {
    let df = read(path)?;
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let columns = names
        .iter()
        .map(|n| strings(&df, n, path))
        .collect::<Result<Vec<_>>>()?;
    let records = (0..df.height())
        .map(|i| columns.iter().map(|c| c[i].as_str()).collect())
        .collect();
    Ok((csv::StringRecord::from(names), records))
}
