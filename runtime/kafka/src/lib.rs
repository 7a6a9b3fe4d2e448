//! `'connector' = 'kafka'`: a topic read as a table, exactly once. Each partition is a split;
//! its offsets go into the job's checkpoints, so a restored job continues after the last record
//! it took, and a bounded job stops at the end offsets it saw when it first started. The sink,
//! upsert-kafka and formats beyond json are still to come (issue 20).

mod client;
mod fetcher;
mod options;
mod source;

use std::sync::Arc;

use spate_api::SourceFactory;
use spate_connectors::{Connector, ConnectorError, OptionDoc, TableContext};

pub struct Kafka;

impl Connector for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn options(&self) -> &'static [OptionDoc] {
        options::OPTIONS
    }

    fn source(&self, table: TableContext<'_>) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        let parsed = options::SourceOptions::parse(table.options)?;
        table.options.finish(self.name(), options::OPTIONS)?;
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
}
