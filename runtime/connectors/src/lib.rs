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

    /// The rows the connector's sink takes with the table's `options` (Flink's
    /// `DynamicTableSink#getChangelogMode`, which may depend on the format): inserts only unless
    /// it says otherwise. A sink that takes changes gets batches whose last column is the row
    /// kind (`spate_api::ROW_KIND_COLUMN`) after the table's columns.
    fn sink_changelog(&self, _options: &TableOptions) -> Result<ChangelogMode, ConnectorError> {
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

pub static CONNECTORS: &[&dyn Connector] = &[
    &nexmark::Nexmark,
    &datagen::Datagen,
    &filesystem::Filesystem,
    &print::Print,
    &blackhole::Blackhole,
];
