//! The connectors a table can name: those of spate-connectors, and kafka and upsert-kafka,
//! which live in a crate of their own (their client is a heavy dependency the others do not
//! need).

use spate_connectors::{CONNECTORS, Connector, ConnectorError};

static KAFKA: &[&dyn Connector] = &[&spate_kafka::Kafka, &spate_kafka::UpsertKafka];

/// The connector `name` (any case) names, or an error listing every one there is.
pub fn connector(name: &str, table: &str) -> Result<&'static dyn Connector, ConnectorError> {
    CONNECTORS
        .iter()
        .copied()
        .chain(KAFKA.iter().copied())
        .find(|c| c.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| ConnectorError::UnknownConnector {
            table: table.to_string(),
            name: name.to_string(),
            known: CONNECTORS
                .iter()
                .chain(KAFKA)
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
