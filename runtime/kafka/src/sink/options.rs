//! The sink's options, named as Flink's Kafka sink names them.

use std::time::Duration;

use spate_connectors::{ConnectorError, TableOptions};

use crate::options::{Format, bootstrap, topic};
use crate::record::{Envelope, Layout};

/// What the sink promises about rows reaching the topic (Flink's `sink.delivery-guarantee`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Rows are sent as they come; a failure may lose those not yet acknowledged.
    None,
    /// Each checkpoint waits until every row before its barrier is acknowledged, so a restore
    /// loses nothing (and may write again what came after the checkpoint).
    AtLeastOnce,
    /// Rows between two checkpoints go into one Kafka transaction, committed when the later
    /// checkpoint completes.
    ExactlyOnce {
        /// Transactional ids are `<prefix>-<subtask>-<slot>`.
        prefix: String,
        timeout: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub topic: String,
    pub bootstrap: String,
    pub delivery: Delivery,
    pub layout: Layout,
    /// The columns of the record key, for the `kafka` connector's `key.fields`.
    pub key: Option<Vec<usize>>,
}

const GUARANTEE: &str = "sink.delivery-guarantee";
const PREFIX: &str = "sink.transactional-id-prefix";
const TIMEOUT: &str = "properties.transaction.timeout.ms";
/// The brokers' default `transaction.max.timeout.ms`: the longest a sink may ask for there.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl SinkOptions {
    /// The kafka connector's: unkeyed values of its `format`, partitioned by Kafka.
    pub fn parse(options: &TableOptions) -> Result<Self, ConnectorError> {
        let layout = match Format::parse(options)? {
            Format::Text(text) => Layout::Value(text),
            Format::DebeziumJson => {
                if options.parse("debezium-json.schema-include", false)? {
                    return Err(options.bad(
                        "debezium-json.schema-include",
                        "true",
                        "the sink writes envelopes without a schema",
                    ));
                }
                Layout::Changes(Envelope::Debezium {
                    schema_include: false,
                })
            }
            Format::CanalJson => {
                return Err(options.bad("format", "canal-json", "canal-json is read only"));
            }
        };
        match options.get("sink.partitioner") {
            None | Some("default") => {}
            Some(other) => {
                return Err(options.bad(
                    "sink.partitioner",
                    other,
                    "only 'default' (Kafka's partitioner) is supported for now",
                ));
            }
        }
        SinkOptions::writing(options, layout)
    }

    /// What both connectors write alike, records laid out as `layout`.
    pub fn writing(options: &TableOptions, layout: Layout) -> Result<Self, ConnectorError> {
        let (topic, bootstrap) = (topic(options)?, bootstrap(options)?);
        let delivery = match options.get(GUARANTEE).unwrap_or("at-least-once") {
            "exactly-once" => {
                let prefix = options.require(PREFIX)?.trim().to_string();
                if prefix.is_empty() {
                    return Err(options.bad(PREFIX, "", "must not be empty"));
                }
                let millis: u64 = options.parse(TIMEOUT, DEFAULT_TIMEOUT.as_millis() as u64)?;
                if millis == 0 {
                    return Err(options.bad(TIMEOUT, "0", "must be at least 1"));
                }
                Delivery::ExactlyOnce {
                    prefix,
                    timeout: Duration::from_millis(millis),
                }
            }
            mode @ ("at-least-once" | "none") => {
                for option in [PREFIX, TIMEOUT] {
                    if let Some(value) = options.get(option) {
                        return Err(options.bad(
                            option,
                            value,
                            format!("only applies with {GUARANTEE} 'exactly-once'"),
                        ));
                    }
                }
                if mode == "none" {
                    Delivery::None
                } else {
                    Delivery::AtLeastOnce
                }
            }
            other => {
                return Err(options.bad(
                    GUARANTEE,
                    other,
                    "expected none, at-least-once or exactly-once",
                ));
            }
        };
        Ok(SinkOptions {
            topic,
            bootstrap,
            delivery,
            layout,
            key: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::test_options;

    fn parse(pairs: &[(&str, &str)]) -> Result<SinkOptions, ConnectorError> {
        SinkOptions::parse(&test_options(pairs))
    }

    #[test]
    fn delivery_guarantees_are_read_as_flink_names_them() {
        assert_eq!(parse(&[]).unwrap().delivery, Delivery::AtLeastOnce);
        assert_eq!(
            parse(&[(GUARANTEE, "none")]).unwrap().delivery,
            Delivery::None
        );
        let exactly = parse(&[(GUARANTEE, "exactly-once"), (PREFIX, "job-a")]).unwrap();
        assert_eq!(
            exactly.delivery,
            Delivery::ExactlyOnce {
                prefix: "job-a".into(),
                timeout: DEFAULT_TIMEOUT
            }
        );
        let timed = parse(&[
            (GUARANTEE, "exactly-once"),
            (PREFIX, "job-a"),
            (TIMEOUT, "60000"),
        ])
        .unwrap();
        assert!(
            matches!(timed.delivery, Delivery::ExactlyOnce { timeout, .. } if timeout == Duration::from_secs(60))
        );
    }

    #[test]
    fn what_cannot_be_honored_is_refused_by_name() {
        let error = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().to_string();
        let no_prefix = error(&[(GUARANTEE, "exactly-once")]);
        assert!(no_prefix.contains(PREFIX), "{no_prefix}");
        let stray = error(&[(PREFIX, "job-a")]);
        assert!(stray.contains("only applies with"), "{stray}");
        let unknown = error(&[(GUARANTEE, "twice")]);
        assert!(unknown.contains(GUARANTEE), "{unknown}");
        let fixed = error(&[("sink.partitioner", "fixed")]);
        assert!(fixed.contains("sink.partitioner"), "{fixed}");
    }
}
