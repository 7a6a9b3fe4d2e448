//! Table connectors: what `CREATE TABLE ... WITH ('connector' = '...')` reads from and writes to.
//!
//! A connector turns a table's declared columns and its `WITH` options into a source (a
//! [`SourceFactory`]) or a sink (an [`OperatorFactory`] whose operators consume batches of the
//! table's schema). Options are checked strictly: a missing, malformed or unknown option is an
//! error that names the table and the option.

mod options;

pub mod blackhole;
pub mod datagen;
pub mod filesystem;
pub mod nexmark;
pub mod print;
pub mod text;

use std::sync::Arc;

use arrow_schema::SchemaRef;
use spate_api::{ChangelogMode, OperatorFactory, SourceFactory};

pub use options::{ConnectorError, OptionDoc, TableOptions};

/// What a connector is told about the table it serves.
pub struct TableContext<'a> {
    pub table: &'a str,
    /// The table's physical columns as declared (computed columns excluded).
    pub schema: SchemaRef,
    pub options: &'a mut TableOptions,
    /// The table's `PRIMARY KEY` columns, empty without one (a connector is only given a key
    /// its [`Connector::primary_key`] took).
    pub primary_key: &'a [String],
}

pub trait Connector: Sync {
    /// The value of the `connector` option.
    fn name(&self) -> &'static str;

    /// The options the connector accepts, for the docs and for error messages.
    fn options(&self) -> &'static [OptionDoc];

    fn source(&self, table: TableContext<'_>) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            table: table.table.to_string(),
            detail: format!(
                "connector '{}' cannot be read (it is sink-only)",
                self.name()
            ),
        })
    }

    /// Whether a table of this connector may declare `key` as its `PRIMARY KEY`: refused unless
    /// the connector honors keys (as Flink's kafka connector refuses one and upsert-kafka
    /// requires one).
    fn primary_key(&self, table: &str, key: &[String]) -> Result<(), ConnectorError> {
        if key.is_empty() {
            return Ok(());
        }
        Err(ConnectorError::Unsupported {
            table: table.to_string(),
            detail: format!(
                "connector '{}' does not take a PRIMARY KEY (it cannot honor one)",
                self.name()
            ),
        })
    }

    /// The rows the connector's source produces (Flink's `ScanTableSource#getChangelogMode`):
    /// inserts only unless it says otherwise. A source of changes produces batches whose last
    /// column is the row kind (`spate_api::ROW_KIND_COLUMN`) after the table's columns.
    fn source_changelog(
        &self,
        _options: &TableOptions,
        _primary_key: &[String],
    ) -> Result<ChangelogMode, ConnectorError> {
        Ok(ChangelogMode::AppendOnly)
    }

    /// The rows the connector's sink takes with the table's `options` and key (Flink's
    /// `DynamicTableSink#getChangelogMode`, which may depend on the format): inserts only unless
    /// it says otherwise. A sink that takes changes gets batches whose last column is the row
    /// kind (`spate_api::ROW_KIND_COLUMN`) after the table's columns; an upsert sink gets no
    /// update-before rows, and every change of a key reaches the same subtask in order.
    fn sink_changelog(
        &self,
        _options: &TableOptions,
        _primary_key: &[String],
    ) -> Result<ChangelogMode, ConnectorError> {
        Ok(ChangelogMode::AppendOnly)
    }

    fn sink(&self, table: TableContext<'_>) -> Result<Arc<dyn OperatorFactory>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            table: table.table.to_string(),
            detail: format!(
                "connector '{}' cannot be written (it is source-only)",
                self.name()
            ),
        })
    }
}

/// What a sink that takes every change takes: upserts of its `PRIMARY KEY`, or without one,
/// retractions.
pub fn upsert_or_retract(primary_key: &[String]) -> ChangelogMode {
    if primary_key.is_empty() {
        ChangelogMode::Retract
    } else {
        ChangelogMode::Upsert {
            key: primary_key.to_vec(),
        }
    }
}

pub static CONNECTORS: &[&dyn Connector] = &[
    &nexmark::Nexmark,
    &datagen::Datagen,
    &filesystem::Filesystem,
    &print::Print,
    &blackhole::Blackhole,
];
