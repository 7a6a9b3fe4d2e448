//! The three Nexmark tables: their columns, and how a table's declared columns map onto them.

use std::str::FromStr;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Which kind of event a table holds (and the kind of an event of the stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NexmarkTable {
    Person,
    Auction,
    Bid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    BigInt,
    Varchar,
    Timestamp,
}

impl ColumnType {
    pub(crate) fn data_type(self) -> DataType {
        match self {
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Varchar => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }

    fn sql(self) -> &'static str {
        match self {
            ColumnType::BigInt => "BIGINT",
            ColumnType::Varchar => "VARCHAR",
            ColumnType::Timestamp => "TIMESTAMP(3)",
        }
    }
}

use ColumnType::{BigInt, Timestamp, Varchar};

const PERSON: &[(&str, ColumnType)] = &[
    ("id", BigInt),
    ("name", Varchar),
    ("emailaddress", Varchar),
    ("creditcard", Varchar),
    ("city", Varchar),
    ("state", Varchar),
    ("datetime", Timestamp),
    ("extra", Varchar),
];

const AUCTION: &[(&str, ColumnType)] = &[
    ("id", BigInt),
    ("itemname", Varchar),
    ("description", Varchar),
    ("initialbid", BigInt),
    ("reserve", BigInt),
    ("datetime", Timestamp),
    ("expires", Timestamp),
    ("seller", BigInt),
    ("category", BigInt),
    ("extra", Varchar),
];

const BID: &[(&str, ColumnType)] = &[
    ("auction", BigInt),
    ("bidder", BigInt),
    ("price", BigInt),
    ("channel", Varchar),
    ("url", Varchar),
    ("datetime", Timestamp),
    ("extra", Varchar),
];

impl NexmarkTable {
    pub const ALL: [NexmarkTable; 3] = [
        NexmarkTable::Person,
        NexmarkTable::Auction,
        NexmarkTable::Bid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NexmarkTable::Person => "person",
            NexmarkTable::Auction => "auction",
            NexmarkTable::Bid => "bid",
        }
    }

    pub(crate) fn columns(self) -> &'static [(&'static str, ColumnType)] {
        match self {
            NexmarkTable::Person => PERSON,
            NexmarkTable::Auction => AUCTION,
            NexmarkTable::Bid => BID,
        }
    }

    /// Every column, in the spec's order; all non-null.
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns()
            .iter()
            .map(|(name, ty)| Field::new(*name, ty.data_type(), false))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// For each declared column, the index of the table column it reads: names match
    /// case-insensitively, types exactly.
    pub(crate) fn resolve(self, declared: &Schema) -> Result<Vec<usize>, String> {
        if declared.fields().is_empty() {
            return Err(format!("declares no columns; {}", self.available()));
        }
        let columns = self.columns();
        declared
            .fields()
            .iter()
            .map(|field| {
                let index = columns
                    .iter()
                    .position(|(name, _)| name.eq_ignore_ascii_case(field.name()))
                    .ok_or_else(|| {
                        format!(
                            "column '{}' is not a column of the nexmark {} table; {}",
                            field.name(),
                            self.name(),
                            self.available()
                        )
                    })?;
                let ty = columns[index].1;
                if field.data_type() != &ty.data_type() {
                    return Err(format!(
                        "column '{}' is declared as {} but the nexmark {} table has it as {}",
                        field.name(),
                        field.data_type(),
                        self.name(),
                        ty.sql()
                    ));
                }
                Ok(index)
            })
            .collect()
    }

    fn available(self) -> String {
        let list: Vec<String> = self
            .columns()
            .iter()
            .map(|(name, ty)| format!("{name} {}", ty.sql()))
            .collect();
        format!("available: {}", list.join(", "))
    }
}

impl FromStr for NexmarkTable {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        NexmarkTable::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| "expected one of bid, auction, person".to_string())
    }
}
