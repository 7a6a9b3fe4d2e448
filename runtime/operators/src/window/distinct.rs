//! State of COUNT(DISTINCT column): the set of distinct values of each slot.

mod codec;

use std::collections::HashSet;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, make_array};
use arrow_buffer::NullBuffer;
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::DataType;
use spate_api::Result;

use crate::keyed::hash::{FastHasher, FastMap};

/// Whether values of `data_type` are kept as 64-bit words rather than row-format bytes.
pub(crate) fn fits_word(data_type: &DataType) -> bool {
    *data_type == DataType::Boolean || data_type.primitive_width().is_some_and(|w| w <= 8)
}

/// A column of booleans or of a fixed-width type of at most 8 bytes, each value's bits as one
/// word.
#[derive(Debug)]
pub(crate) struct Words {
    values: Vec<u64>,
    nulls: Option<NullBuffer>,
}

impl Words {
    pub(crate) fn read(column: &ArrayRef) -> Result<Self> {
        let column = canonical_floats(column)?.unwrap_or_else(|| column.clone());
        let values = match column.as_boolean_opt() {
            Some(booleans) => booleans.values().iter().map(u64::from).collect(),
            None => {
                let data = column.to_data();
                let width = column
                    .data_type()
                    .primitive_width()
                    .expect("a word-sized column");
                let bytes = &data.buffers()[0].as_slice()
                    [data.offset() * width..(data.offset() + data.len()) * width];
                match width {
                    1 => widen::<1>(bytes),
                    2 => widen::<2>(bytes),
                    4 => widen::<4>(bytes),
                    8 => widen::<8>(bytes),
                    _ => unreachable!("{} is no word", column.data_type()),
                }
            }
        };
        Ok(Words {
            values,
            nulls: column.logical_nulls(),
        })
    }

    /// Row `row`'s value as the bytes it is told apart by, or `None` if it is null.
    pub(crate) fn bytes(&self, row: usize) -> Option<[u8; 8]> {
        let valid = self.nulls.as_ref().is_none_or(|n| n.is_valid(row));
        valid.then(|| self.values[row].to_ne_bytes())
    }
}

/// Copies values of `W` bytes into words. Byte by byte, because not every type of 8 bytes is
/// aligned to 8 (a day-time interval is two i32). Only equality of words matters, so the byte
/// order does not.
fn widen<const W: usize>(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(W)
        .map(|value| {
            let mut word = [0; 8];
            word[..W].copy_from_slice(value);
            u64::from_ne_bytes(word)
        })
        .collect()
}

/// A column in the row format, which has one byte string per value for every type a window can
/// key by, with the hash of each row.
#[derive(Debug)]
pub(crate) struct HashedRows {
    rows: Rows,
    hashes: Vec<u64>,
    nulls: Option<NullBuffer>,
}

impl HashedRows {
    pub(crate) fn read(column: &ArrayRef) -> Result<Self> {
        let column = canonical_floats(column)?.unwrap_or_else(|| column.clone());
        let converter = RowConverter::new(vec![SortField::new(column.data_type().clone())])?;
        let rows = converter.convert_columns(std::slice::from_ref(&column))?;
        // Hashed once here rather than once per window a row falls into.
        let hashes = rows.iter().map(|row| hash(row.data())).collect();
        Ok(HashedRows {
            rows,
            hashes,
            nulls: column.logical_nulls(),
        })
    }

    /// Row `row`'s value in the row format, or `None` if it is null.
    pub(crate) fn bytes(&self, row: usize) -> Option<&[u8]> {
        let valid = self.nulls.as_ref().is_none_or(|n| n.is_valid(row));
        valid.then(|| self.rows.row(row).data())
    }
}

/// `column` with its floats, nested ones too, made canonical so that equal numbers have equal
/// bits: -0.0 becomes 0.0 and every NaN the same NaN. `None` if it holds no floats.
fn canonical_floats(column: &ArrayRef) -> Result<Option<ArrayRef>> {
    Ok(match column.data_type() {
        DataType::Float16 => Some(canonical::<Float16Type>(column)),
        DataType::Float32 => Some(canonical::<Float32Type>(column)),
        DataType::Float64 => Some(canonical::<Float64Type>(column)),
        _ => {
            let data = column.to_data();
            let mut changed = false;
            let mut children = Vec::with_capacity(data.child_data().len());
            for child in data.child_data() {
                match canonical_floats(&make_array(child.clone()))? {
                    Some(canonical) => {
                        changed = true;
                        children.push(canonical.to_data());
                    }
                    None => children.push(child.clone()),
                }
            }
            if changed {
                Some(make_array(
                    data.into_builder().child_data(children).build()?,
                ))
            } else {
                None
            }
        }
    })
}

fn canonical<T: ArrowPrimitiveType>(column: &ArrayRef) -> ArrayRef {
    Arc::new(column.as_primitive::<T>().unary::<_, T>(|v| {
        if v.is_zero() {
            T::Native::ZERO
        } else if v.partial_cmp(&v).is_none() {
            // Any NaN does, as long as it is always the same.
            T::Native::MAX_TOTAL_ORDER
        } else {
            v
        }
    }))
}

fn hash(bytes: &[u8]) -> u64 {
    BuildHasherDefault::<FastHasher>::default().hash_one(bytes)
}

pub(crate) type WordSet = HashSet<u64, BuildHasherDefault<FastHasher>>;

/// Distinct byte strings, stored back to back so that a set holds two allocations rather than
/// one per value.
#[derive(Debug, Default)]
pub(crate) struct ByteSet {
    /// Each value after its length, so that comparing a value reads a single place.
    bytes: Vec<u8>,
    /// Where each value is in `bytes`, under its hash. A value whose hash another value holds
    /// goes under the next free hash up; nothing is ever removed, so a lookup may stop at the
    /// first free hash.
    by_hash: FastMap<u64, usize>,
}

const LENGTH: usize = size_of::<usize>();

impl ByteSet {
    fn insert(&mut self, value: &[u8], hash: u64) {
        let mut key = hash;
        loop {
            match self.by_hash.entry(key) {
                Entry::Vacant(vacant) => {
                    vacant.insert(self.bytes.len());
                    self.bytes.extend_from_slice(&value.len().to_ne_bytes());
                    self.bytes.extend_from_slice(value);
                    return;
                }
                Entry::Occupied(held) => {
                    if stored(&self.bytes, *held.get()) == value {
                        return;
                    }
                    key = key.wrapping_add(1);
                }
            }
        }
    }
}

/// The value stored at `at` in `bytes`.
fn stored(bytes: &[u8], at: usize) -> &[u8] {
    let (length, rest) = bytes[at..].split_at(LENGTH);
    let length = usize::from_ne_bytes(length.try_into().expect("a length"));
    &rest[..length]
}

pub(crate) trait Set: Default {
    fn len(&self) -> usize;
    /// Adds the values of `other`.
    fn absorb(&mut self, other: Self);
}

impl Set for WordSet {
    fn len(&self) -> usize {
        HashSet::len(self)
    }

    fn absorb(&mut self, other: Self) {
        self.extend(other);
    }
}

impl Set for ByteSet {
    fn len(&self) -> usize {
        self.by_hash.len()
    }

    fn absorb(&mut self, other: Self) {
        for &at in other.by_hash.values() {
            let value = stored(&other.bytes, at);
            self.insert(value, hash(value));
        }
    }
}

/// One set per accumulator slot.
#[derive(Debug, Default)]
pub(crate) struct Distinct<S> {
    sets: Vec<S>,
}

impl<S: Set> Distinct<S> {
    pub(crate) fn grow(&mut self) {
        self.sets.push(S::default());
    }

    /// Drops the sets of `slots`, giving their memory back as soon as their windows fire.
    pub(crate) fn release(&mut self, slots: &[u32]) {
        for &slot in slots {
            self.sets[slot as usize] = S::default();
        }
    }

    /// Unites `src` into `dst` and empties `src`.
    pub(crate) fn merge(&mut self, dst: usize, src: usize) {
        let mut src = std::mem::take(&mut self.sets[src]);
        let dst = &mut self.sets[dst];
        // Adding the smaller set to the larger one inserts fewest values.
        if src.len() > dst.len() {
            std::mem::swap(dst, &mut src);
        }
        dst.absorb(src);
    }

    /// The number of distinct values of each of `slots`.
    pub(crate) fn counts(&self, slots: &[u32]) -> impl Iterator<Item = i64> {
        slots.iter().map(|&s| self.sets[s as usize].len() as i64)
    }

    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.sets.iter().map(Set::len).sum()
    }
}

impl Distinct<WordSet> {
    pub(crate) fn update(&mut self, input: &Words, pairs: &[(u32, u32)]) {
        let values = &input.values;
        match &input.nulls {
            None => {
                for &(row, slot) in pairs {
                    self.sets[slot as usize].insert(values[row as usize]);
                }
            }
            Some(nulls) => {
                for &(row, slot) in pairs {
                    if nulls.is_valid(row as usize) {
                        self.sets[slot as usize].insert(values[row as usize]);
                    }
                }
            }
        }
    }
}

impl Distinct<ByteSet> {
    pub(crate) fn update(&mut self, input: &HashedRows, pairs: &[(u32, u32)]) {
        for &(row, slot) in pairs {
            let row = row as usize;
            if input.nulls.as_ref().is_none_or(|n| n.is_valid(row)) {
                self.sets[slot as usize].insert(input.rows.row(row).data(), input.hashes[row]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::types::Int32Type;
    use arrow_array::{
        BooleanArray, Date32Array, Float32Array, Float64Array, Int8Array, ListArray, StringArray,
        StructArray, UInt64Array,
    };
    use arrow_schema::{Field, Fields};

    use super::*;

    /// Distinct non-null values of `column`, all in one set.
    fn count(column: ArrayRef) -> usize {
        let pairs: Vec<(u32, u32)> = (0..column.len() as u32).map(|row| (row, 0)).collect();
        if fits_word(column.data_type()) {
            let mut distinct = Distinct::<WordSet>::default();
            distinct.grow();
            distinct.update(&Words::read(&column).unwrap(), &pairs);
            distinct.held()
        } else {
            let mut distinct = Distinct::<ByteSet>::default();
            distinct.grow();
            distinct.update(&HashedRows::read(&column).unwrap(), &pairs);
            distinct.held()
        }
    }

    #[test]
    fn floats_are_distinct_by_value_with_one_zero_and_one_nan() {
        let quiet = f64::from_bits(0x7ff8_0000_0000_0001);
        let column = Float64Array::from(vec![
            Some(0.0),
            Some(-0.0),
            Some(f64::NAN),
            Some(-f64::NAN),
            Some(quiet),
            Some(1.5),
            Some(1.5),
            None,
        ]);
        assert_eq!(count(Arc::new(column)), 3);
        let column = Float32Array::from(vec![-0.0, 0.0, f32::NAN, 2.0]);
        assert_eq!(count(Arc::new(column)), 3);
    }

    #[test]
    fn word_columns_count_their_distinct_values() {
        assert_eq!(
            count(Arc::new(Int8Array::from(vec![
                Some(-1),
                Some(-1),
                None,
                Some(1)
            ]))),
            2
        );
        assert_eq!(
            count(Arc::new(UInt64Array::from(vec![u64::MAX, 0, u64::MAX]))),
            2
        );
        assert_eq!(
            count(Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(true)
            ]))),
            1
        );
        // Slicing keeps only the rows in the slice.
        let dates = Date32Array::from(vec![1, 2, 3, 3, 4]).slice(2, 2);
        assert_eq!(count(Arc::new(dates)), 1);
    }

    #[test]
    fn row_format_columns_count_their_distinct_values() {
        let strings = StringArray::from(vec![Some("a"), None, Some(""), Some("a"), Some("b")]);
        assert_eq!(count(Arc::new(strings)), 3);
        let dictionary: arrow_array::DictionaryArray<Int32Type> =
            vec![Some("x"), Some("y"), None, Some("x")]
                .into_iter()
                .collect();
        assert_eq!(count(Arc::new(dictionary)), 2);

        // Floats inside other types are made canonical too.
        let floats = Arc::new(Float64Array::from(vec![0.0, -0.0, f64::NAN, -f64::NAN]));
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            arrow_buffer::OffsetBuffer::from_lengths([1, 1, 1, 1]),
            floats.clone(),
            None,
        );
        assert_eq!(count(Arc::new(list)), 2);
        let record = StructArray::new(
            Fields::from(vec![Field::new("f", DataType::Float64, false)]),
            vec![floats as ArrayRef],
            None,
        );
        assert_eq!(count(Arc::new(record)), 2);
    }

    #[test]
    fn byte_sets_resolve_hash_collisions_by_value() {
        let mut set = ByteSet::default();
        set.insert(b"one", 7);
        set.insert(b"two", 7);
        set.insert(b"three", 8);
        set.insert(b"two", 7);
        set.insert(b"three", 8);
        assert_eq!(Set::len(&set), 3);
    }

    #[test]
    fn merging_unites_sets_and_releasing_frees_them() {
        let mut distinct = Distinct::<ByteSet>::default();
        distinct.grow();
        distinct.grow();
        for (slot, values) in [(0, ["a", "b"].as_slice()), (1, ["b", "c", "d"].as_slice())] {
            for value in values {
                distinct.sets[slot].insert(value.as_bytes(), hash(value.as_bytes()));
            }
        }
        distinct.merge(0, 1);
        assert_eq!(distinct.counts(&[0, 1]).collect::<Vec<_>>(), vec![4, 0]);
        distinct.release(&[0]);
        let set = &distinct.sets[0];
        assert_eq!((set.bytes.capacity(), set.by_hash.capacity()), (0, 0));
    }
}
