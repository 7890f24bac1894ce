//! A small ESCI dataset in the official parquet schema, written where a test or an example
//! needs one: the real files are a 1.1 GB Git LFS download that these machines cannot fetch.

use crate::esci::{EXAMPLES_FILE, PRODUCTS_FILE};
use anyhow::{Context, Result};
use polars::prelude::*;
use std::path::Path;

fn write_parquet(dir: &Path, name: &str, mut df: DataFrame) -> Result<()> {
    let path = dir.join(name);
    let file =
        std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
    ParquetWriter::new(file).finish(&mut df)?;
    Ok(())
}

/// 12 examples: locales us/es, all four labels, small_version 0/1, train/test; example 12 names
/// a product the products file lacks.
pub fn write(dir: &Path, with_missing: bool) -> Result<()> {
    let n = 12;
    let ids: Vec<i64> = (1..=n).collect();
    let labels = ["E", "S", "C", "I", "E", "E", "S", "I", "C", "E", "I", "E"];
    let locales = [
        "us", "us", "us", "us", "us", "us", "us", "us", "es", "es", "us", "us",
    ];
    let small: Vec<i64> = vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1];
    let split = [
        "test", "test", "test", "test", "test", "test", "test", "test", "test", "test", "test",
        "train",
    ];
    let mut products: Vec<String> = (1..=n).map(|i| format!("P{i}")).collect();
    if with_missing {
        products[7] = "P_MISSING".into();
    }
    let examples = df!(
        "example_id" => ids.clone(),
        "query" => (1..=n).map(|i| format!("query {i}")).collect::<Vec<_>>(),
        "query_id" => ids.iter().map(|i| i / 2).collect::<Vec<_>>(),
        "product_id" => products.clone(),
        "product_locale" => locales.to_vec(),
        "esci_label" => labels.to_vec(),
        "small_version" => small.clone(),
        "large_version" => vec![1i64; n as usize],
        "split" => split.to_vec(),
    )?;
    write_parquet(dir, EXAMPLES_FILE, examples)?;
    let pids: Vec<String> = (1..=n).map(|i| format!("P{i}")).collect();
    let products = df!(
        "product_id" => pids.clone(),
        "product_title" => pids.iter().map(|p| format!("title of {p}")).collect::<Vec<_>>(),
        "product_description" => vec![Some("desc"); n as usize],
        "product_bullet_point" => vec![None::<&str>; n as usize],
        "product_brand" => vec!["brand"; n as usize],
        "product_color" => vec!["red"; n as usize],
        "product_locale" => locales.to_vec(),
    )?;
    write_parquet(dir, PRODUCTS_FILE, products)
}
