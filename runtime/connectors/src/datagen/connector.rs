//! `'connector' = 'datagen'`: option parsing, column by column.

use std::sync::Arc;

use arrow_array::types::Decimal128Type;
use arrow_cast::parse::parse_decimal;
use arrow_schema::{DataType, Field, TimeUnit};
use spate_api::SourceFactory;

use super::field::{FieldGen, Kind, Random};
use super::source::{DatagenConfig, DatagenSource};
use crate::nexmark::rng::mix64;
use crate::{Connector, ConnectorError, OptionDoc, TableContext, TableOptions};

pub struct Datagen;

const OPTIONS: &[OptionDoc] = &[
    OptionDoc::new(
        "rows-per-second",
        Some("10000"),
        "wall-clock limit in rows/s per subtask",
    ),
    OptionDoc::new(
        "number-of-rows",
        None,
        "rows in all; absent: unbounded (unless a sequence ends)",
    ),
    OptionDoc::new("seed", Some("0"), "seed of every random value"),
    OptionDoc::new("fields.#.kind", Some("random"), "random or sequence"),
    OptionDoc::new(
        "fields.#.min",
        Some("the type's minimum"),
        "smallest random number",
    ),
    OptionDoc::new(
        "fields.#.max",
        Some("the type's maximum"),
        "largest random number",
    ),
    OptionDoc::new("fields.#.length", Some("10"), "length of random strings"),
    OptionDoc::new(
        "fields.#.max-past",
        Some("0"),
        "random timestamps lie up to this many ms before now",
    ),
    OptionDoc::new(
        "fields.#.start",
        None,
        "first value of a sequence (required for sequences)",
    ),
    OptionDoc::new(
        "fields.#.end",
        None,
        "last value of a sequence (required for sequences)",
    ),
];

/// Longest random string; keeps a typo from allocating gigabytes.
const MAX_LENGTH: usize = 1 << 20;

const SUPPORTED: &str =
    "TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, BOOLEAN, VARCHAR, TIMESTAMP(3), DECIMAL";

impl Connector for Datagen {
    fn name(&self) -> &'static str {
        "datagen"
    }

    fn options(&self) -> &'static [OptionDoc] {
        OPTIONS
    }

    fn source(&self, table: TableContext<'_>) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        let options = &*table.options;
        let rows_per_second: u64 = options.parse("rows-per-second", 10_000)?;
        if rows_per_second == 0 {
            return Err(options.bad("rows-per-second", "0", "must be at least 1"));
        }
        let number_of_rows = options.parse_optional("number-of-rows")?;
        let seed: u64 = options.parse("seed", 0)?;
        if table.schema.fields().is_empty() {
            return Err(ConnectorError::Schema {
                table: table.table.to_string(),
                detail: "declares no columns for datagen to fill".into(),
            });
        }
        let fields = table
            .schema
            .fields()
            .iter()
            .map(|field| field_gen(options, field, seed))
            .collect::<Result<Vec<_>, _>>()?;
        options.finish(self.name(), OPTIONS)?;
        Ok(Arc::new(DatagenSource::new(DatagenConfig {
            schema: table.schema,
            fields,
            rows_per_second,
            number_of_rows,
            seed,
        })))
    }
}

/// The generator of one column, from its `fields.<name>.*` options.
fn field_gen(o: &TableOptions, field: &Field, seed: u64) -> Result<FieldGen, ConnectorError> {
    let name = field.name();
    let ty = field.data_type();
    let Some(sql) = sql_type(ty) else {
        return Err(ConnectorError::Unsupported {
            table: o.table().to_string(),
            detail: format!(
                "column '{name}' has type {ty}, which datagen cannot generate; it supports \
                 {SUPPORTED}"
            ),
        });
    };
    let key = |option: &str| format!("fields.{name}.{option}");
    // Read every per-column option, so that finish() does not report those that do not apply
    // as unknown: they get a precise error below instead.
    let given: Vec<(&str, String, &str)> =
        ["kind", "min", "max", "length", "max-past", "start", "end"]
            .into_iter()
            .filter_map(|opt| o.get(&key(opt)).map(|v| (opt, key(opt), v)))
            .collect();
    let value = |opt: &str| {
        given
            .iter()
            .find(|g| g.0 == opt)
            .map(|g| (g.1.as_str(), g.2))
    };
    let is_sequence = match value("kind") {
        None => false,
        Some((_, v)) if v.trim().eq_ignore_ascii_case("random") => false,
        Some((_, v)) if v.trim().eq_ignore_ascii_case("sequence") => true,
        Some((k, v)) => return Err(o.bad(k, v, "expected random or sequence")),
    };
    let applies: &[&str] = match (is_sequence, ty) {
        (true, DataType::Boolean | DataType::Timestamp(..)) => {
            let (k, v) = value("kind").expect("sequence was given");
            return Err(o.bad(
                k,
                v,
                format!("column '{name}' of type {sql} can only be random"),
            ));
        }
        (true, _) => &["kind", "start", "end"],
        (false, DataType::Boolean) => &["kind"],
        (false, DataType::Utf8) => &["kind", "length"],
        (false, DataType::Timestamp(..)) => &["kind", "max-past"],
        (false, _) => &["kind", "min", "max"],
    };
    if let Some((opt, k, v)) = given.iter().find(|g| !applies.contains(&g.0)) {
        let kind = if is_sequence { "sequence" } else { "random" };
        return Err(o.bad(
            k,
            v,
            format!("'{opt}' does not apply to {kind} {sql} column '{name}'"),
        ));
    }
    let kind = if is_sequence {
        sequence(o, &key, ty, sql)?
    } else {
        Kind::Random(random(o, &key, ty, sql)?)
    };
    Ok(FieldGen {
        data_type: ty.clone(),
        seed: mix64(seed ^ fnv1a(name.as_bytes())),
        kind,
    })
}

fn sequence(
    o: &TableOptions,
    key: &dyn Fn(&str) -> String,
    ty: &DataType,
    sql: &str,
) -> Result<Kind, ConnectorError> {
    let (start_key, end_key) = (key("start"), key("end"));
    let start: i64 = o
        .parse_optional(&start_key)?
        .ok_or_else(|| missing(o, &start_key))?;
    let end: i64 = o
        .parse_optional(&end_key)?
        .ok_or_else(|| missing(o, &end_key))?;
    if end < start {
        return Err(o.bad(
            &end_key,
            &end.to_string(),
            format!("is below {start_key} = {start}"),
        ));
    }
    if let Some((min, max)) = sequence_range(ty) {
        for (k, v) in [(&start_key, start), (&end_key, end)] {
            if !(min..=max).contains(&(v as i128)) {
                return Err(o.bad(k, &v.to_string(), format!("out of range for {sql}")));
            }
        }
    }
    Ok(Kind::Sequence { start, end })
}

fn random(
    o: &TableOptions,
    key: &dyn Fn(&str) -> String,
    ty: &DataType,
    sql: &str,
) -> Result<Random, ConnectorError> {
    let (min_key, max_key) = (key("min"), key("max"));
    Ok(match ty {
        DataType::Boolean => Random::Boolean,
        DataType::Utf8 => {
            let length = o.parse(&key("length"), 10usize)?;
            if length > MAX_LENGTH {
                let value = length.to_string();
                return Err(o.bad(&key("length"), &value, format!("at most {MAX_LENGTH}")));
            }
            Random::Varchar { length }
        }
        DataType::Timestamp(..) => {
            let max_past_ms: i64 = o.parse(&key("max-past"), 0)?;
            if max_past_ms < 0 {
                let value = max_past_ms.to_string();
                return Err(o.bad(&key("max-past"), &value, "must not be negative"));
            }
            Random::Timestamp { max_past_ms }
        }
        DataType::Float32 | DataType::Float64 => {
            let limit = if *ty == DataType::Float32 {
                f32::MAX as f64
            } else {
                f64::MAX
            };
            let min = o.parse(&min_key, -limit)?;
            let max = o.parse(&max_key, limit)?;
            for (k, v) in [(&min_key, min), (&max_key, max)] {
                if !(-limit..=limit).contains(&v) {
                    return Err(o.bad(k, &v.to_string(), format!("out of range for {sql}")));
                }
            }
            check_order(o, &min_key, min, &max_key, max)?;
            Random::Float { min, max }
        }
        _ => {
            let (lo, hi) = integer_range(ty).expect("the remaining types are integers");
            let bound = |k: &str, default: i128| -> Result<i128, ConnectorError> {
                let Some(text) = o.get(k) else {
                    return Ok(default);
                };
                parse_integer(ty, text.trim())
                    .filter(|v| (lo..=hi).contains(v))
                    .ok_or_else(|| o.bad(k, text, format!("not a {sql} value")))
            };
            let min = bound(&min_key, lo)?;
            let max = bound(&max_key, hi)?;
            check_order(o, &min_key, min, &max_key, max)?;
            Random::Integer { min, max }
        }
    })
}

fn check_order<T: PartialOrd + std::fmt::Display>(
    o: &TableOptions,
    min_key: &str,
    min: T,
    max_key: &str,
    max: T,
) -> Result<(), ConnectorError> {
    if max < min {
        return Err(o.bad(
            max_key,
            &max.to_string(),
            format!("is below {min_key} = {min}"),
        ));
    }
    Ok(())
}

fn missing(o: &TableOptions, option: &str) -> ConnectorError {
    ConnectorError::MissingOption {
        table: o.table().to_string(),
        option: format!("{option} (a sequence needs start and end)"),
    }
}

/// An integer or, for DECIMAL, an unscaled decimal.
fn parse_integer(ty: &DataType, text: &str) -> Option<i128> {
    match ty {
        DataType::Decimal128(p, s) => parse_decimal::<Decimal128Type>(text, *p, *s).ok(),
        _ => text.parse::<i64>().ok().map(i128::from),
    }
}

/// The values of an integer column; for DECIMAL, its unscaled values.
fn integer_range(ty: &DataType) -> Option<(i128, i128)> {
    let bits = match ty {
        DataType::Int8 => 8,
        DataType::Int16 => 16,
        DataType::Int32 => 32,
        DataType::Int64 => 64,
        DataType::Decimal128(p, _) => {
            let max = 10i128.pow(*p as u32) - 1;
            return Some((-max, max));
        }
        _ => return None,
    };
    Some((-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1))
}

/// The whole numbers a sequence may reach in a column: for DECIMAL, those that fit once scaled.
fn sequence_range(ty: &DataType) -> Option<(i128, i128)> {
    let (lo, hi) = integer_range(ty)?;
    let unit = match ty {
        DataType::Decimal128(_, s) => 10i128.pow(*s as u32),
        _ => 1,
    };
    Some((lo / unit, hi / unit))
}

fn sql_type(ty: &DataType) -> Option<&'static str> {
    Some(match ty {
        DataType::Int8 => "TINYINT",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INT",
        DataType::Int64 => "BIGINT",
        DataType::Float32 => "FLOAT",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Utf8 => "VARCHAR",
        DataType::Timestamp(TimeUnit::Millisecond, None) => "TIMESTAMP(3)",
        // Negative scales do not come from SQL, and would make sequences fractional.
        DataType::Decimal128(_, s) if *s >= 0 => "DECIMAL",
        _ => return None,
    })
}

/// A stable hash of a column name (FNV-1a), to derive the column's seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}
