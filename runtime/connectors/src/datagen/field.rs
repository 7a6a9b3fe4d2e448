//! How one column's values are made: a random value or a sequence number, as a pure function of
//! the row number, written a batch at a time.

use std::fmt::Write;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, TimestampMillisecondArray,
};
use arrow_schema::DataType;

use crate::nexmark::rng::Rng;

/// The values of one column.
pub(crate) struct FieldGen {
    pub data_type: DataType,
    /// Seeds the column's random values; derived from the table's seed and the column's name,
    /// so a column's values do not change when other columns are added or reordered.
    pub seed: u64,
    pub kind: Kind,
}

pub(crate) enum Kind {
    /// Row `i` holds `start + i` (in the column's type; strings hold its decimal digits).
    Sequence {
        start: i64,
        end: i64,
    },
    Random(Random),
}

pub(crate) enum Random {
    /// Inclusive bounds; also used for DECIMAL, as unscaled values.
    Integer {
        min: i128,
        max: i128,
    },
    Float {
        min: f64,
        max: f64,
    },
    Boolean,
    /// Random lowercase letters.
    Varchar {
        length: usize,
    },
    /// Wall-clock time at generation minus up to `max_past_ms`.
    Timestamp {
        max_past_ms: i64,
    },
}

impl FieldGen {
    /// How many rows the column can fill; `None`: any number.
    pub(crate) fn limit(&self) -> Option<u64> {
        match self.kind {
            Kind::Sequence { start, end } => {
                Some((end as i128 - start as i128 + 1).min(u64::MAX as i128) as u64)
            }
            Kind::Random(_) => None,
        }
    }

    /// The column's values for `rows`. `letters` is the pool random strings are cut from.
    pub(crate) fn array(&self, rows: &[u64], now_ms: i64, letters: &str) -> ArrayRef {
        match &self.kind {
            Kind::Sequence { start, .. } => self.sequence(rows, *start),
            Kind::Random(random) => self.random(random, rows, now_ms, letters),
        }
    }

    fn sequence(&self, rows: &[u64], start: i64) -> ArrayRef {
        // Rows stay below the sequence's length, so this never passes its end.
        let values = rows.iter().map(|&r| (start as i128 + r as i128) as i64);
        match self.data_type {
            DataType::Utf8 => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 8);
                for v in values {
                    write!(b, "{v}").expect("writing to memory");
                    b.append_value("");
                }
                Arc::new(b.finish())
            }
            DataType::Decimal128(p, s) => {
                let unit = 10i128.pow(s as u32);
                decimal(values.map(|v| v as i128 * unit), p, s)
            }
            _ => self.integers(values.map(i128::from)),
        }
    }

    fn random(&self, random: &Random, rows: &[u64], now_ms: i64, letters: &str) -> ArrayRef {
        let rngs = rows.iter().map(|&r| Rng::for_index(self.seed, r));
        match *random {
            Random::Integer { min, max } => {
                let span = (max - min + 1) as u128;
                let values = rngs.map(|mut rng| min + below_u128(&mut rng, span) as i128);
                match self.data_type {
                    DataType::Decimal128(p, s) => decimal(values, p, s),
                    _ => self.integers(values),
                }
            }
            Random::Float { min, max } => {
                // Interpolated, not `min + u × (max − min)`, which overflows on the full range.
                let values = rngs.map(|mut rng| {
                    let u = rng.unit_f64();
                    min * (1.0 - u) + max * u
                });
                match self.data_type {
                    DataType::Float32 => {
                        Arc::new(Float32Array::from_iter_values(values.map(|v| v as f32)))
                    }
                    _ => Arc::new(Float64Array::from_iter_values(values)),
                }
            }
            Random::Boolean => Arc::new(BooleanArray::from_iter(
                rngs.map(|mut rng| Some(rng.next_u64() & 1 == 1)),
            )),
            Random::Varchar { length } => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * length);
                let starts = (letters.len() - length + 1) as u64;
                for mut rng in rngs {
                    let start = rng.below(starts) as usize;
                    b.append_value(&letters[start..start + length]);
                }
                Arc::new(b.finish())
            }
            Random::Timestamp { max_past_ms } => {
                Arc::new(TimestampMillisecondArray::from_iter_values(rngs.map(
                    |mut rng| now_ms - rng.below(max_past_ms as u64 + 1) as i64,
                )))
            }
        }
    }

    /// Integer values (already within the column type's range) as the column's array.
    fn integers(&self, values: impl Iterator<Item = i128>) -> ArrayRef {
        match self.data_type {
            DataType::Int8 => Arc::new(Int8Array::from_iter_values(values.map(|v| v as i8))),
            DataType::Int16 => Arc::new(Int16Array::from_iter_values(values.map(|v| v as i16))),
            DataType::Int32 => Arc::new(Int32Array::from_iter_values(values.map(|v| v as i32))),
            DataType::Float32 => Arc::new(Float32Array::from_iter_values(values.map(|v| v as f32))),
            DataType::Float64 => Arc::new(Float64Array::from_iter_values(values.map(|v| v as f64))),
            _ => Arc::new(Int64Array::from_iter_values(values.map(|v| v as i64))),
        }
    }
}

fn decimal(unscaled: impl Iterator<Item = i128>, precision: u8, scale: i8) -> ArrayRef {
    let array = Decimal128Array::from_iter_values(unscaled)
        .with_precision_and_scale(precision, scale)
        .expect("precision and scale come from the column's type");
    Arc::new(array)
}

/// Uniform in `[0, span)`; `span` may exceed 64 bits (wide DECIMAL ranges, full BIGINT range).
fn below_u128(rng: &mut Rng, span: u128) -> u128 {
    if span <= u64::MAX as u128 {
        rng.below(span as u64) as u128
    } else {
        let wide = (rng.next_u64() as u128) << 64 | rng.next_u64() as u128;
        wide % span
    }
}
