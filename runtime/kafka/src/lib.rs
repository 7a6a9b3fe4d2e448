//! `'connector' = 'kafka'`: a topic read and written as a table, exactly once. Reading, each
//! reader owns a share of the partitions (`source`); their offsets go into the job's
//! checkpoints, so a restored job continues
//! after the last record it took, and a bounded job stops at the end offsets it saw when it
//! first started. Writing, rows go into a Kafka transaction per checkpoint, committed when the
//! checkpoint completes (or, at least once, are acknowledged by each checkpoint).
//! `'connector' = 'upsert-kafka'` (`upsert`) reads and writes a table keyed by its primary key:
//! records keyed by it, deletes as tombstones. Values are json, or the changelog envelopes
//! debezium-json (read and written) and canal-json (read).

mod client;
mod fetcher;
mod options;
mod record;
mod sink;
mod source;
mod upsert;

use std::sync::Arc;

use spate_api::{ChangelogMode, OperatorFactory, SourceFactory};
use spate_connectors::{Connector, ConnectorError, OptionDoc, TableContext, TableOptions};

pub use upsert::UpsertKafka;

pub struct Kafka;

impl Connector for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn options(&self) -> &'static [OptionDoc] {
        options::OPTIONS
    }

    /// Inserts with `json`; changes with a changelog format, as Flink's formats say.
    fn source_changelog(
        &self,
        options: &TableOptions,
        _primary_key: &[String],
    ) -> Result<ChangelogMode, ConnectorError> {
        Ok(options::Format::parse(options)?.changelog())
    }

    /// The sink writes changes as debezium-json; json takes inserts only.
    fn sink_changelog(
        &self,
        options: &TableOptions,
        _primary_key: &[String],
    ) -> Result<ChangelogMode, ConnectorError> {
        Ok(options::Format::parse(options)?.changelog())
    }

    fn source(&self, table: TableContext<'_>) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        let parsed = options::SourceOptions::parse(table.options)?;
        options::Format::parse(table.options)?.check(table.options, &table.schema)?;
        // Checked, not read: the value holds the key's columns too.
        options::record_key(table.options, &table.schema)?;
        table.options.finish(self.name(), options::OPTIONS)?;
        source_of(table, parsed)
    }

    fn sink(&self, table: TableContext<'_>) -> Result<Arc<dyn OperatorFactory>, ConnectorError> {
        let mut parsed = sink::SinkOptions::parse(table.options)?;
        options::Format::parse(table.options)?.check(table.options, &table.schema)?;
        parsed.key = options::record_key(table.options, &table.schema)?;
        table.options.finish(self.name(), options::OPTIONS)?;
        sink_of(table, parsed)
    }
}

/// The source of a topic: its partitions are looked up at planning, so a missing topic or
/// unreachable brokers are planning errors.
fn source_of(
    table: TableContext<'_>,
    parsed: options::SourceOptions,
) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
    let partitions = client::partitions(&parsed.bootstrap, &parsed.topic).map_err(|e| {
        ConnectorError::Unsupported {
            table: table.table.to_string(),
            detail: e.to_string(),
        }
    })?;
    if let options::Bounded::Specific(offsets) = &parsed.bounded {
        let listed: Vec<i32> = offsets.keys().copied().collect();
        if listed != partitions {
            let option = "scan.bounded.specific-offsets";
            return Err(table.options.bad(
                option,
                table.options.get(option).unwrap_or_default(),
                format!(
                    "must list every partition of topic '{}', which has {partitions:?}",
                    parsed.topic
                ),
            ));
        }
    }
    Ok(Arc::new(source::KafkaSource::new(
        parsed,
        table.schema,
        partitions,
    )))
}

/// The sink of a topic; a missing topic is a planning error, as for the source (writing would
/// fail later).
fn sink_of(
    table: TableContext<'_>,
    parsed: sink::SinkOptions,
) -> Result<Arc<dyn OperatorFactory>, ConnectorError> {
    client::partitions(&parsed.bootstrap, &parsed.topic).map_err(|e| {
        ConnectorError::Unsupported {
            table: table.table.to_string(),
            detail: e.to_string(),
        }
    })?;
    Ok(sink::factory(table.table, table.schema, parsed))
}
