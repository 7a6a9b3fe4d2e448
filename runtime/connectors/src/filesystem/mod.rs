//! The `filesystem` connector (Flink's connector of the same name): a bounded source reading the
//! CSV or JSON-lines files under a path, and a sink writing one part file per subtask into a
//! directory, made visible only once it is complete. The sink takes a changelog when its format
//! is one (`debezium-json`), as Flink's does; otherwise it is append-only.

mod csv_reader;
mod encode;
mod format;
mod json_reader;
mod listing;
mod part_file;
mod sink;
mod source;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::{DataType, Schema, TimeUnit};
use spate_api::{ChangelogMode, OperatorFactory, SourceFactory};

use crate::{Connector, ConnectorError, OptionDoc, TableContext, TableOptions};

use format::Format;
use source::FileSource;

const NAME: &str = "filesystem";

static OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "path",
        default: None,
        description: "Required. The directory holding the table's data files (read recursively); \
                      a source may also name a single file. The sink creates the directory.",
    },
    OptionDoc {
        name: "format",
        default: None,
        description: "Required. 'csv' (no header), 'json' (one JSON object per line), or, for \
                      the sink only, 'debezium-json' (one JSON object per row change: \
                      {\"before\", \"after\", \"op\"}), which takes updating results.",
    },
    OptionDoc {
        name: "csv.field-delimiter",
        default: Some(","),
        description: "The CSV field delimiter: a single ASCII character; '\\t' stands for tab.",
    },
];

/// The `filesystem` connector.
pub struct Filesystem;

impl Connector for Filesystem {
    fn name(&self) -> &'static str {
        NAME
    }

    fn options(&self) -> &'static [OptionDoc] {
        OPTIONS
    }

    fn source(&self, table: TableContext<'_>) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
        let (path, format) = parse_options(table.options)?;
        if !format.changelog().is_append_only() {
            return Err(ConnectorError::Unsupported {
                table: table.table.to_string(),
                detail: format!(
                    "the filesystem source reads 'csv' and 'json'; '{}' is written only \
                     (a source of changes is not supported yet)",
                    format.name()
                ),
            });
        }
        check_types(table.table, &table.schema, format)?;
        let files = listing::data_files(&path).map_err(|e| {
            table
                .options
                .bad("path", &path.display().to_string(), e.to_string())
        })?;
        Ok(Arc::new(FileSource::new(table.schema, format, files)))
    }

    fn sink_changelog(
        &self,
        options: &TableOptions,
        _primary_key: &[String],
    ) -> Result<ChangelogMode, ConnectorError> {
        Ok(Format::from_options(options)?.changelog())
    }

    fn sink(&self, table: TableContext<'_>) -> Result<Arc<dyn OperatorFactory>, ConnectorError> {
        let (path, format) = parse_options(table.options)?;
        check_types(table.table, &table.schema, format)?;
        if path.is_file() {
            return Err(table.options.bad(
                "path",
                &path.display().to_string(),
                "is a file; the sink writes part files into a directory",
            ));
        }
        Ok(sink::factory(table.table, table.schema, path, format))
    }
}

/// Reads every option before anything touches the filesystem, so a typo is reported as such.
fn parse_options(options: &TableOptions) -> Result<(PathBuf, Format), ConnectorError> {
    let path = PathBuf::from(options.require("path")?);
    let format = Format::from_options(options)?;
    options.finish(NAME, OPTIONS)?;
    Ok((path, format))
}

/// The types both formats write and read back unchanged. Others are refused when the table is
/// planned rather than failing, or silently losing precision, once data flows.
fn check_types(table: &str, schema: &Schema, format: Format) -> Result<(), ConnectorError> {
    for field in schema.fields() {
        let supported = matches!(
            field.data_type(),
            DataType::Boolean
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Float32
                | DataType::Float64
                | DataType::Utf8
                | DataType::Date32
                | DataType::Timestamp(TimeUnit::Millisecond, None)
        );
        if !supported {
            return Err(ConnectorError::Schema {
                table: table.to_string(),
                detail: format!(
                    "column '{}' has type {}, which the filesystem connector cannot store as {}",
                    field.name(),
                    field.data_type(),
                    format.name()
                ),
            });
        }
    }
    Ok(())
}
