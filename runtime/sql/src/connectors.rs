//! The connectors a table can name: those of spate-connectors, and Kafka, which lives in a
//! crate of its own (its client is a heavy dependency the others do not need).

use spate_connectors::{CONNECTORS, Connector, ConnectorError};

static KAFKA: &dyn Connector = &spate_kafka::Kafka;

/// The connector `name` (any case) names, or an error listing every one there is.
pub fn connector(name: &str, table: &str) -> Result<&'static dyn Connector, ConnectorError> {
    CONNECTORS
        .iter()
        .copied()
        .chain([KAFKA])
        .find(|c| c.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| ConnectorError::UnknownConnector {
            table: table.to_string(),
            name: name.to_string(),
            known: CONNECTORS
                .iter()
                .chain([&KAFKA])
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
