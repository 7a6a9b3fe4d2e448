//! `'connector' = 'upsert-kafka'`: a table keyed by its `PRIMARY KEY`, as a (compacted)
//! topic. Written, each insert or update-after is a record keyed by the key's columns and
//! each delete a tombstone (the key with a null value); Kafka's partitioner hashes the key,
//! so every change of a key lands in one partition, in order. Read, every record from the
//! earliest offset is an upsert of its key's row and a tombstone a delete (the planner
//! normalizes them into retractions). Options and behaviour as Flink's upsert-kafka.

use std::sync::Arc;

use spate_api::{ChangelogMode, OperatorFactory, SourceFactory};
use spate_connectors::{Connector, ConnectorError, OptionDoc, TableContext, TableOptions};

use crate::options::{self, SourceOptions, Startup};
use crate::record::{Layout, Tolerance};
use crate::sink::SinkOptions;
use crate::{sink_of, source_of};

pub struct UpsertKafka;

const KEY_FORMAT: &str = "key.format";
const VALUE_FORMAT: &str = "value.format";
const FIELDS_INCLUDE: &str = "value.fields-include";

pub const OPTIONS: &[OptionDoc] = &[
    options::TOPIC,
    options::BOOTSTRAP,
    OptionDoc::new(
        KEY_FORMAT,
        None,
        "json: the record key, a JSON object of the PRIMARY KEY's columns",
    ),
    OptionDoc::new(
        VALUE_FORMAT,
        None,
        "json: the record value, a JSON object of the columns value.fields-include names",
    ),
    OptionDoc::new(
        FIELDS_INCLUDE,
        Some("ALL"),
        "ALL: the value holds every column; EXCEPT_KEY: all but the key's (read back, key \
         columns come from the key either way)",
    ),
    OptionDoc::new(
        "key.json.ignore-parse-errors",
        Some("false"),
        "skip records whose key is not a JSON object of the key's columns instead of failing",
    ),
    OptionDoc::new(
        "value.json.ignore-parse-errors",
        Some("false"),
        "skip records whose value is not a JSON object of its columns instead of failing",
    ),
    options::ISOLATION,
    options::BOUNDED_MODE,
    options::BOUNDED_OFFSETS,
    options::DISCOVERY,
    options::DELIVERY,
    options::TRANSACTIONAL_ID_PREFIX,
    options::TRANSACTION_TIMEOUT,
];

impl Connector for UpsertKafka {
    fn name(&self) -> &'static str {
        "upsert-kafka"
    }

    fn options(&self) -> &'static [OptionDoc] {
        OPTIONS
    }

    fn primary_key(&self, table: &str, key: &[String]) -> Result<(), ConnectorError> {
        if key.is_empty() {
            return Err(ConnectorError::Unsupported {
                table: table.to_string(),
                detail: "an upsert-kafka table needs a PRIMARY KEY (...) NOT ENFORCED: its \
                         columns are the records' key"
                    .into(),
            });
        }
        Ok(())
    }

    fn source_changelog(
        &self,
        _options: &TableOptions,
        primary_key: &[String],
    ) -> Result<ChangelogMode, ConnectorError> {
        Ok(ChangelogMode::Upsert {
            key: primary_key.to_vec(),
        })
    }

    fn sink_changelog(
        &self,
        _options: &TableOptions,
        primary_key: &[String],
    ) -> Result<ChangelogMode, ConnectorError> {
        Ok(ChangelogMode::Upsert {
            key: primary_key.to_vec(),
        })
    }

    fn source(&self, table: TableContext<'_>) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        let layout = layout(&table)?;
        // As Flink's upsert-kafka: the table is the whole topic, so reading starts at the
        // earliest offset.
        let mut parsed = SourceOptions::reading(table.options, Startup::Earliest)?;
        parsed.layout = layout;
        parsed.tolerance = Tolerance {
            key: table.options.parse("key.json.ignore-parse-errors", false)?,
            value: table
                .options
                .parse("value.json.ignore-parse-errors", false)?,
        };
        table.options.finish(self.name(), OPTIONS)?;
        source_of(table, parsed)
    }

    fn sink(&self, table: TableContext<'_>) -> Result<Arc<dyn OperatorFactory>, ConnectorError> {
        let layout = layout(&table)?;
        let parsed = SinkOptions::writing(table.options, layout)?;
        table.options.finish(self.name(), OPTIONS)?;
        sink_of(table, parsed)
    }
}

/// Where the table's columns go: the key's into the record key, the value's (by
/// `value.fields-include`) into the value, both JSON.
fn layout(table: &TableContext<'_>) -> Result<Layout, ConnectorError> {
    let options = &*table.options;
    for format in [KEY_FORMAT, VALUE_FORMAT] {
        match options.require(format)? {
            "json" => {}
            other => {
                return Err(options.bad(format, other, "only 'json' is supported for now"));
            }
        }
    }
    let index = |name: &String| {
        table
            .schema
            .index_of(name)
            .map_err(|_| ConnectorError::Unsupported {
                table: table.table.to_string(),
                detail: format!("PRIMARY KEY column '{name}' is not a column of the table"),
            })
    };
    let key = table
        .primary_key
        .iter()
        .map(index)
        .collect::<Result<Vec<_>, _>>()?;
    let all = 0..table.schema.fields().len();
    let value: Vec<usize> = match options.get(FIELDS_INCLUDE).unwrap_or("ALL") {
        "ALL" => all.collect(),
        "EXCEPT_KEY" => all.filter(|i| !key.contains(i)).collect(),
        other => {
            return Err(options.bad(FIELDS_INCLUDE, other, "expected ALL or EXCEPT_KEY"));
        }
    };
    if value.is_empty() {
        return Err(options.bad(
            FIELDS_INCLUDE,
            "EXCEPT_KEY",
            "every column is in the key, which leaves the value no column; use ALL",
        ));
    }
    Ok(Layout::Upsert { key, value })
}
