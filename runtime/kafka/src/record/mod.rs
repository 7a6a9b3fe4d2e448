//! How a table's rows are Kafka records, both ways. The `kafka` connector's records have no
//! key and a JSON object of every column as their value, or an envelope of row changes
//! (debezium-json, canal-json); `upsert-kafka`'s are keyed by a JSON object of the primary
//! key's columns, and a delete is a tombstone (a null value).

mod decode;
mod encode;
mod envelope;
mod text;

pub use decode::{Decoder, Tolerance};
pub use encode::Encoder;
pub use envelope::Envelope;

/// How a record's value holds one row of every column (Flink's `json`, `csv` and `raw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// A JSON object of the columns.
    Json,
    /// One CSV line of the columns in order.
    Csv { delimiter: u8 },
    /// The one column's text itself (UTF-8); a null value is a NULL.
    Raw,
}

/// Which columns go where, by their index in the table's physical columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The value holds every column; there is no key (or one only to partition by).
    Value(Text),
    /// The value is an envelope of changes of rows of every column; there is no key.
    Changes(Envelope),
    /// The key holds the primary key's columns, the value the columns listed (all of them, or
    /// all but the key's: `value.fields-include`). Read back, key columns come from the key.
    Upsert { key: Vec<usize>, value: Vec<usize> },
}

/// One record to write: no key for the `kafka` connector, no value for a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Message {
    pub fn record(self, topic: &str) -> krafka::Record {
        let record = match self.value {
            Some(value) => krafka::Record::new(topic.to_string(), value),
            None => krafka::Record::new(topic.to_string(), Vec::new()).without_value(),
        };
        match self.key {
            Some(key) => record.key(key),
            None => record,
        }
    }
}
