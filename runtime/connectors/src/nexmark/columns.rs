//! Writing generated rows straight into Arrow arrays, one builder per declared column.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, Int64Array, TimestampMillisecondArray};

use super::model::{Auction, BidRef, Person};
use super::table::ColumnType;

pub(crate) enum Value<'a> {
    Int(i64),
    Str(&'a str),
}

/// A generated row; `column` indexes the table's full column list.
pub(crate) trait Row {
    fn value(&self, column: usize) -> Value<'_>;
}

impl Row for Person {
    fn value(&self, column: usize) -> Value<'_> {
        match column {
            0 => Value::Int(self.id),
            1 => Value::Str(&self.name),
            2 => Value::Str(&self.email_address),
            3 => Value::Str(&self.credit_card),
            4 => Value::Str(&self.city),
            5 => Value::Str(&self.state),
            6 => Value::Int(self.date_time),
            _ => Value::Str(&self.extra),
        }
    }
}

impl Row for Auction {
    fn value(&self, column: usize) -> Value<'_> {
        match column {
            0 => Value::Int(self.id),
            1 => Value::Str(&self.item_name),
            2 => Value::Str(&self.description),
            3 => Value::Int(self.initial_bid),
            4 => Value::Int(self.reserve),
            5 => Value::Int(self.date_time),
            6 => Value::Int(self.expires),
            7 => Value::Int(self.seller),
            8 => Value::Int(self.category),
            _ => Value::Str(&self.extra),
        }
    }
}

impl Row for BidRef<'_> {
    fn value(&self, column: usize) -> Value<'_> {
        match column {
            0 => Value::Int(self.auction),
            1 => Value::Int(self.bidder),
            2 => Value::Int(self.price),
            3 => Value::Str(self.channel),
            4 => Value::Str(self.url),
            5 => Value::Int(self.date_time),
            _ => Value::Str(self.extra),
        }
    }
}

pub(crate) enum ColumnBuilder {
    BigInt(Vec<i64>),
    Timestamp(Vec<i64>),
    Varchar(StringBuilder),
}

impl ColumnBuilder {
    /// `bytes` sizes string data up front (the previous batch's size is a good guess).
    pub(crate) fn new(ty: ColumnType, rows: usize, bytes: usize) -> Self {
        match ty {
            ColumnType::BigInt => ColumnBuilder::BigInt(Vec::with_capacity(rows)),
            ColumnType::Timestamp => ColumnBuilder::Timestamp(Vec::with_capacity(rows)),
            ColumnType::Varchar => {
                ColumnBuilder::Varchar(StringBuilder::with_capacity(rows, bytes))
            }
        }
    }

    pub(crate) fn push(&mut self, value: Value<'_>) {
        match (self, value) {
            (ColumnBuilder::BigInt(v) | ColumnBuilder::Timestamp(v), Value::Int(x)) => v.push(x),
            (ColumnBuilder::Varchar(b), Value::Str(s)) => b.append_value(s),
            _ => unreachable!("builders are made from the column's type"),
        }
    }

    /// The array, and the bytes of string data it holds.
    pub(crate) fn finish(self) -> (ArrayRef, usize) {
        match self {
            ColumnBuilder::BigInt(v) => (Arc::new(Int64Array::from(v)), 0),
            ColumnBuilder::Timestamp(v) => (Arc::new(TimestampMillisecondArray::from(v)), 0),
            ColumnBuilder::Varchar(mut b) => {
                let array = b.finish();
                let bytes = array.values().len();
                (Arc::new(array), bytes)
            }
        }
    }
}
