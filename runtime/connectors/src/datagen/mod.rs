//! A generator of random or sequential rows for any declared columns, like Flink's `datagen`.
//!
//! Row `i`'s value in a column is a pure function of the seed, the column's name and `i` (except
//! random timestamps, which follow the wall clock as in Flink), so any parallelism yields the
//! same rows. Row `i` goes to split `i mod n`.

mod connector;
mod field;
mod source;

pub use connector::Datagen;

#[cfg(test)]
mod tests;
