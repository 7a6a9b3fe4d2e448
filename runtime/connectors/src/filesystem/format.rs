//! The file formats the connector reads and writes.

use spate_api::ChangelogMode;

use crate::{ConnectorError, TableOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// No header; empty fields are NULL; fields holding the delimiter, quotes or line breaks are
    /// quoted, with quotes doubled.
    Csv { delimiter: u8 },
    /// One JSON object per line, keyed by column name; NULL is `null` (or a missing key).
    Json,
    /// Flink's `debezium-json`: one JSON object per change, `{"before": .., "after": ..,
    /// "op": ..}`. An insert or update-after is `"op": "c"` with the row as `after`; an
    /// update-before or delete is `"op": "d"` with the row as `before`. Written only.
    DebeziumJson,
}

impl Format {
    /// Reads `format` and the options of that format only, so the other format's options are
    /// refused as unknown.
    pub(super) fn from_options(options: &TableOptions) -> Result<Self, ConnectorError> {
        let name = options.require("format")?;
        match name {
            "csv" => Ok(Format::Csv {
                delimiter: delimiter(options)?,
            }),
            "json" => Ok(Format::Json),
            "debezium-json" => Ok(Format::DebeziumJson),
            other => Err(options.bad("format", other, "expected 'csv', 'json' or 'debezium-json'")),
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Format::Csv { .. } => "csv",
            Format::Json => "json",
            Format::DebeziumJson => "debezium-json",
        }
    }

    /// The extension of the files written in this format.
    pub(super) fn extension(self) -> &'static str {
        match self {
            Format::Csv { .. } => "csv",
            Format::Json | Format::DebeziumJson => "json",
        }
    }

    /// The rows a sink writing this format takes (Flink's `EncodingFormat#getChangelogMode`).
    pub(super) fn changelog(self) -> ChangelogMode {
        match self {
            Format::Csv { .. } | Format::Json => ChangelogMode::AppendOnly,
            Format::DebeziumJson => ChangelogMode::Retract,
        }
    }
}

fn delimiter(options: &TableOptions) -> Result<u8, ConnectorError> {
    const OPTION: &str = "csv.field-delimiter";
    let Some(value) = options.get(OPTION) else {
        return Ok(b',');
    };
    // Flink lets a backslash spell the tab, which is awkward to type inside a SQL string.
    let delimiter = match value {
        "\\t" => b'\t',
        _ if value.len() == 1 && value.is_ascii() => value.as_bytes()[0],
        _ => return Err(options.bad(OPTION, value, "expected a single ASCII character")),
    };
    if matches!(delimiter, b'"' | b'\n' | b'\r') {
        return Err(options.bad(OPTION, value, "cannot be a quote or a line break"));
    }
    Ok(delimiter)
}
