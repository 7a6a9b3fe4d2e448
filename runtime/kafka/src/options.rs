//! The Kafka table's `WITH` options, named as Flink's Kafka connector names them.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow_schema::{DataType, Schema};
use spate_api::ChangelogMode;
use spate_connectors::{ConnectorError, OptionDoc, TableOptions};

use crate::record::{Envelope, Layout, Text, Tolerance};

pub const OPTIONS: &[OptionDoc] = &[
    TOPIC,
    BOOTSTRAP,
    ISOLATION,
    OptionDoc::new(
        "scan.startup.mode",
        Some("group-offsets"),
        "earliest-offset, latest-offset, timestamp or specific-offsets (group-offsets is not \
         supported yet: set one of the others)",
    ),
    OptionDoc::new(
        "scan.startup.timestamp-millis",
        None,
        "with scan.startup.mode 'timestamp': the first record at or after this time",
    ),
    OptionDoc::new(
        "scan.startup.specific-offsets",
        None,
        "with scan.startup.mode 'specific-offsets': 'partition:0,offset:42;partition:1,offset:7' \
         (partitions not listed start at their earliest offset)",
    ),
    BOUNDED_MODE,
    BOUNDED_OFFSETS,
    DISCOVERY,
    OptionDoc::new(
        "format",
        None,
        "json (the record value as one JSON object of the columns), csv (one CSV line), raw \
         (a table of one STRING column, the value's text), debezium-json (a Debezium change \
         envelope; written too) or canal-json (a Canal envelope; read only)",
    ),
    OptionDoc::new(
        "csv.field-delimiter",
        Some(","),
        "with csv: the field delimiter",
    ),
    OptionDoc::new(
        "csv.ignore-parse-errors",
        Some("false"),
        "skip records that are not CSV lines of the table's columns instead of failing",
    ),
    OptionDoc::new("raw.charset", Some("UTF-8"), "with raw: UTF-8 only"),
    OptionDoc::new(
        "key.fields",
        None,
        "columns written as the record key (a JSON object, 'a;b'), so that Kafka's partitioner \
         keeps each key's records in one partition; read back from the value",
    ),
    OptionDoc::new("key.format", None, "json; required with key.fields"),
    OptionDoc::new(
        "value.fields-include",
        Some("ALL"),
        "ALL: the value holds every column, key fields included (EXCEPT_KEY is not supported \
         by the kafka connector yet)",
    ),
    OptionDoc::new(
        "json.ignore-parse-errors",
        Some("false"),
        "skip records that are not JSON objects of the table's columns instead of failing",
    ),
    OptionDoc::new(
        "debezium-json.ignore-parse-errors",
        Some("false"),
        "skip records that are not Debezium envelopes of the table's rows instead of failing",
    ),
    OptionDoc::new(
        "debezium-json.schema-include",
        Some("false"),
        "reading: the envelope is the 'payload' of Debezium's {\"schema\", \"payload\"}",
    ),
    OptionDoc::new(
        "canal-json.ignore-parse-errors",
        Some("false"),
        "skip records that are not Canal envelopes of the table's rows instead of failing",
    ),
    DELIVERY,
    TRANSACTIONAL_ID_PREFIX,
    OptionDoc::new(
        "sink.partitioner",
        Some("default"),
        "default: Kafka's partitioner (rows have no key, so batches go to partitions in turn)",
    ),
    TRANSACTION_TIMEOUT,
];

// The options both connectors, kafka and upsert-kafka, take alike.
pub const TOPIC: OptionDoc =
    OptionDoc::new("topic", None, "the topic to read or write (one topic)");
pub const BOOTSTRAP: OptionDoc = OptionDoc::new(
    "properties.bootstrap.servers",
    None,
    "comma-separated host:port of Kafka brokers",
);
pub const ISOLATION: OptionDoc = OptionDoc::new(
    "properties.isolation.level",
    Some("read_uncommitted"),
    "read_committed: records of open or aborted transactions are skipped",
);
pub const BOUNDED_MODE: OptionDoc = OptionDoc::new(
    "scan.bounded.mode",
    Some("unbounded"),
    "unbounded; latest-offset: stop at the offsets the job saw when it first started; \
     specific-offsets: stop at the offsets given",
);
pub const BOUNDED_OFFSETS: OptionDoc = OptionDoc::new(
    "scan.bounded.specific-offsets",
    None,
    "with scan.bounded.mode 'specific-offsets': 'partition:0,offset:42;...', every partition \
     of the topic listed",
);
pub const DISCOVERY: OptionDoc = OptionDoc::new(
    "scan.topic-partition-discovery.interval",
    Some("5 min"),
    "how often an unbounded read looks for partitions added to the topic, which it reads \
     from their start; 0 turns discovery off",
);
pub const DELIVERY: OptionDoc = OptionDoc::new(
    "sink.delivery-guarantee",
    Some("at-least-once"),
    "none, at-least-once (every row written by each checkpoint) or exactly-once (Kafka \
     transactions committed when the checkpoint completes)",
);
pub const TRANSACTIONAL_ID_PREFIX: OptionDoc = OptionDoc::new(
    "sink.transactional-id-prefix",
    None,
    "with exactly-once: the prefix of the sink's transactional ids, unique to the sink (two \
     sinks writing with one prefix fence each other)",
);
pub const TRANSACTION_TIMEOUT: OptionDoc = OptionDoc::new(
    "properties.transaction.timeout.ms",
    Some("900000"),
    "with exactly-once: how long the brokers keep a transaction open before aborting it; \
     longer than a checkpoint interval plus a restart",
);

/// Where partitions stop (Flink's `scan.bounded.mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounded {
    Unbounded,
    /// At the end offsets seen when the job first started.
    Latest,
    /// At these offsets, by partition (every partition listed).
    Specific(BTreeMap<i32, i64>),
}

impl Bounded {
    pub fn is_bounded(&self) -> bool {
        *self != Bounded::Unbounded
    }
}

/// Where a partition the job has no checkpointed position for starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Earliest,
    Latest,
    Timestamp(i64),
    /// By partition; partitions not listed start at their earliest offset (Flink's fallback).
    Specific(BTreeMap<i32, i64>),
}

#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub topic: String,
    pub bootstrap: String,
    pub read_committed: bool,
    pub startup: Startup,
    pub bounded: Bounded,
    /// How often to look for partitions added to the topic; `None` when bounded or off.
    pub discovery: Option<Duration>,
    pub layout: Layout,
    pub tolerance: Tolerance,
}

impl SourceOptions {
    /// The kafka connector's: records are unkeyed values of its `format`.
    pub fn parse(options: &TableOptions) -> Result<Self, ConnectorError> {
        let mut parsed = SourceOptions::reading(options, startup(options)?)?;
        let format = Format::parse(options)?;
        parsed.tolerance.value = format.ignore_parse_errors(options)?;
        parsed.layout = format.layout(options)?;
        Ok(parsed)
    }

    /// What both connectors read alike, starting at `startup`.
    pub fn reading(options: &TableOptions, startup: Startup) -> Result<Self, ConnectorError> {
        let (topic, bootstrap) = (topic(options)?, bootstrap(options)?);
        let read_committed = match options.get("properties.isolation.level") {
            None | Some("read_uncommitted") => false,
            Some("read_committed") => true,
            Some(other) => {
                return Err(options.bad(
                    "properties.isolation.level",
                    other,
                    "expected read_committed or read_uncommitted",
                ));
            }
        };
        let bounded = bounded(options)?;
        Ok(SourceOptions {
            topic,
            bootstrap,
            read_committed,
            startup,
            discovery: discovery(options, &bounded)?,
            bounded,
            layout: Layout::Value(Text::Json),
            tolerance: Tolerance::default(),
        })
    }
}

/// The one topic the table names.
pub fn topic(options: &TableOptions) -> Result<String, ConnectorError> {
    let topic = options.require("topic")?.trim().to_string();
    if topic.is_empty() || topic.contains(';') {
        return Err(options.bad(
            "topic",
            &topic,
            "name exactly one topic (a list of topics is not supported yet)",
        ));
    }
    Ok(topic)
}

pub fn bootstrap(options: &TableOptions) -> Result<String, ConnectorError> {
    let bootstrap = options
        .require("properties.bootstrap.servers")?
        .trim()
        .to_string();
    if bootstrap.is_empty() {
        return Err(options.bad(
            "properties.bootstrap.servers",
            "",
            "name at least one broker as host:port",
        ));
    }
    Ok(bootstrap)
}

/// The kafka connector's record key, by column index: the columns `key.fields` names (as
/// Flink's, separated by ';'), written as a JSON object (`key.format` 'json'); none without.
/// The value holds every column (`value.fields-include` 'ALL'), so reading needs no key.
pub fn record_key(
    options: &TableOptions,
    schema: &Schema,
) -> Result<Option<Vec<usize>>, ConnectorError> {
    const FIELDS: &str = "key.fields";
    const FORMAT: &str = "key.format";
    const INCLUDE: &str = "value.fields-include";
    match options.get(INCLUDE) {
        None | Some("ALL") => {}
        Some(other) => {
            return Err(options.bad(
                INCLUDE,
                other,
                "the kafka connector writes every column into the value (ALL) for now",
            ));
        }
    }
    let (fields, format) = (options.get(FIELDS), options.get(FORMAT));
    let Some(fields) = fields else {
        return match format {
            Some(value) => Err(options.bad(FORMAT, value, "only applies with key.fields")),
            None => Ok(None),
        };
    };
    match format {
        Some("json") => {}
        Some(other) => return Err(options.bad(FORMAT, other, "only 'json' is supported for now")),
        None => return Err(options.require(FORMAT).expect_err("absent")),
    }
    let key = fields
        .split(';')
        .map(str::trim)
        .map(|name| {
            schema
                .index_of(name)
                .map_err(|_| options.bad(FIELDS, fields, format!("'{name}' is not a column")))
        })
        .collect::<Result<Vec<usize>, _>>()?;
    Ok(Some(key))
}

/// The kafka connector's `format`: how a record's value holds rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One row of every column: `json`, `csv` or `raw`.
    Text(Text),
    /// Flink's debezium-json: an envelope of a row change.
    DebeziumJson,
    /// Flink's canal-json: an envelope of row changes (read only).
    CanalJson,
}

impl Format {
    pub fn parse(options: &TableOptions) -> Result<Self, ConnectorError> {
        match options.require("format")? {
            "json" => Ok(Format::Text(Text::Json)),
            "csv" => {
                const DELIMITER: &str = "csv.field-delimiter";
                let delimiter = match options.get(DELIMITER).unwrap_or(",").as_bytes() {
                    [byte] if byte.is_ascii() && *byte != b'"' && *byte != b'\n' => *byte,
                    _ => {
                        let given = options.get(DELIMITER).unwrap_or_default();
                        return Err(options.bad(DELIMITER, given, "one ASCII character"));
                    }
                };
                Ok(Format::Text(Text::Csv { delimiter }))
            }
            "raw" => {
                const CHARSET: &str = "raw.charset";
                match options.get(CHARSET) {
                    None | Some("UTF-8") => Ok(Format::Text(Text::Raw)),
                    Some(other) => Err(options.bad(CHARSET, other, "only UTF-8 is supported")),
                }
            }
            "debezium-json" => Ok(Format::DebeziumJson),
            "canal-json" => Ok(Format::CanalJson),
            other => Err(options.bad(
                "format",
                other,
                "expected json, csv, raw, debezium-json or canal-json (others are not \
                 supported yet)",
            )),
        }
    }

    /// Whether records that do not parse are skipped: the format's option, named after it as
    /// in Flink (`raw` reads any record).
    pub fn ignore_parse_errors(self, options: &TableOptions) -> Result<bool, ConnectorError> {
        let name = match self {
            Format::Text(Text::Json) => "json.ignore-parse-errors",
            Format::Text(Text::Csv { .. }) => "csv.ignore-parse-errors",
            Format::Text(Text::Raw) => return Ok(false),
            Format::DebeziumJson => "debezium-json.ignore-parse-errors",
            Format::CanalJson => "canal-json.ignore-parse-errors",
        };
        options.parse(name, false)
    }

    pub fn layout(self, options: &TableOptions) -> Result<Layout, ConnectorError> {
        Ok(match self {
            Format::Text(text) => Layout::Value(text),
            Format::DebeziumJson => Layout::Changes(Envelope::Debezium {
                schema_include: options.parse("debezium-json.schema-include", false)?,
            }),
            Format::CanalJson => Layout::Changes(Envelope::Canal),
        })
    }

    /// What a source of this format produces: inserts, or changes.
    pub fn changelog(self) -> ChangelogMode {
        match self {
            Format::Text(_) => ChangelogMode::AppendOnly,
            Format::DebeziumJson | Format::CanalJson => ChangelogMode::Retract,
        }
    }

    /// Whether the table's columns fit the format: `raw` holds exactly one STRING column.
    pub fn check(self, options: &TableOptions, schema: &Schema) -> Result<(), ConnectorError> {
        let one_string =
            schema.fields().len() == 1 && schema.field(0).data_type() == &DataType::Utf8;
        if self == Format::Text(Text::Raw) && !one_string {
            return Err(options.bad(
                "format",
                "raw",
                "the raw format reads and writes a table of exactly one STRING column",
            ));
        }
        Ok(())
    }
}

fn startup(options: &TableOptions) -> Result<Startup, ConnectorError> {
    const MODE: &str = "scan.startup.mode";
    let timestamp = options.get("scan.startup.timestamp-millis");
    let specific = options.get("scan.startup.specific-offsets");
    let mode = options.get(MODE).unwrap_or("group-offsets");
    let unused = |option: &str, given: Option<&str>| match given {
        Some(value) => Err(options.bad(
            option,
            value,
            format!("only applies with {MODE} '{}'", option_mode(option)),
        )),
        None => Ok(()),
    };
    match mode {
        "earliest-offset" | "latest-offset" => {
            unused("scan.startup.timestamp-millis", timestamp)?;
            unused("scan.startup.specific-offsets", specific)?;
            Ok(if mode == "earliest-offset" {
                Startup::Earliest
            } else {
                Startup::Latest
            })
        }
        "timestamp" => {
            unused("scan.startup.specific-offsets", specific)?;
            let value = options.require("scan.startup.timestamp-millis")?;
            let millis = value
                .trim()
                .parse()
                .map_err(|e| options.bad("scan.startup.timestamp-millis", value, format!("{e}")))?;
            Ok(Startup::Timestamp(millis))
        }
        "specific-offsets" => {
            unused("scan.startup.timestamp-millis", timestamp)?;
            let value = options.require("scan.startup.specific-offsets")?;
            specific_offsets(value)
                .map(Startup::Specific)
                .map_err(|detail| options.bad("scan.startup.specific-offsets", value, detail))
        }
        "group-offsets" => Err(options.bad(
            MODE,
            mode,
            "reading from a consumer group's committed offsets is not supported yet; set \
             earliest-offset, latest-offset, timestamp or specific-offsets",
        )),
        other => Err(options.bad(
            MODE,
            other,
            "expected earliest-offset, latest-offset, timestamp or specific-offsets",
        )),
    }
}

fn option_mode(option: &str) -> &'static str {
    if option.ends_with("timestamp-millis") {
        "timestamp"
    } else {
        "specific-offsets"
    }
}

fn bounded(options: &TableOptions) -> Result<Bounded, ConnectorError> {
    const MODE: &str = "scan.bounded.mode";
    const OFFSETS: &str = "scan.bounded.specific-offsets";
    let specific = options.get(OFFSETS);
    let mode = options.get(MODE).unwrap_or("unbounded");
    if mode != "specific-offsets"
        && let Some(value) = specific
    {
        return Err(options.bad(
            OFFSETS,
            value,
            format!("only applies with {MODE} 'specific-offsets'"),
        ));
    }
    match mode {
        "unbounded" => Ok(Bounded::Unbounded),
        "latest-offset" => Ok(Bounded::Latest),
        "specific-offsets" => {
            let value = options.require(OFFSETS)?;
            specific_offsets(value)
                .map(Bounded::Specific)
                .map_err(|detail| options.bad(OFFSETS, value, detail))
        }
        other => Err(options.bad(
            MODE,
            other,
            "expected unbounded, latest-offset or specific-offsets",
        )),
    }
}

/// Flink's default discovery interval.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// How often an unbounded read looks for new partitions: never for a bounded one (as in
/// Flink, which reads the partitions it started with), nor when set to 0.
fn discovery(
    options: &TableOptions,
    bounded: &Bounded,
) -> Result<Option<Duration>, ConnectorError> {
    let name = DISCOVERY.name;
    let given = options.get(name);
    if bounded.is_bounded() {
        return match given {
            Some(value) => Err(options.bad(
                name,
                value,
                "a bounded read (scan.bounded.mode) reads the partitions it started with",
            )),
            None => Ok(None),
        };
    }
    let interval = match given.map(str::trim) {
        None => DISCOVERY_INTERVAL,
        Some("0") => Duration::ZERO,
        Some(value) => humantime::parse_duration(value).map_err(|e| {
            options.bad(
                name,
                value,
                format!("{e} (a duration such as '30 s' or '5 min')"),
            )
        })?,
    };
    Ok((!interval.is_zero()).then_some(interval))
}

/// The number `text` of `key`, or an error naming both.
fn parse_number<T: std::str::FromStr>(key: &str, text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.trim()
        .parse()
        .map_err(|e| format!("{key} '{text}': {e}"))
}

/// Parses Flink's `partition:0,offset:42;partition:1,offset:300`.
fn specific_offsets(value: &str) -> Result<BTreeMap<i32, i64>, String> {
    let mut offsets = BTreeMap::new();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for pair in entry.split(',') {
            let (key, number) = pair
                .split_once(':')
                .ok_or_else(|| format!("'{pair}' is not key:value"))?;
            match key.trim() {
                "partition" => partition = Some(parse_number::<i32>("partition", number)?),
                "offset" => offset = Some(parse_number::<i64>("offset", number)?),
                other => return Err(format!("unknown key '{other}' (partition, offset)")),
            }
        }
        match (partition, offset) {
            (Some(p), Some(o)) if p >= 0 && o >= 0 => {
                if offsets.insert(p, o).is_some() {
                    return Err(format!("partition {p} is listed twice"));
                }
            }
            _ => {
                return Err(format!(
                    "'{entry}' needs a partition and an offset, both at least 0"
                ));
            }
        }
    }
    if offsets.is_empty() {
        return Err("lists no partition".into());
    }
    Ok(offsets)
}

/// A table's options for the unit tests: topic `bids`, a broker, json, and `pairs`.
#[cfg(test)]
pub fn test_options(pairs: &[(&str, &str)]) -> TableOptions {
    let mut values: BTreeMap<String, String> = [
        ("topic", "bids"),
        ("properties.bootstrap.servers", "127.0.0.1:9092"),
        ("format", "json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in pairs {
        values.insert(k.to_string(), v.to_string());
    }
    TableOptions::new("t", values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_modes_are_read_as_flink_names_them() {
        let parsed = |pairs: &[(&str, &str)]| SourceOptions::parse(&test_options(pairs));
        let earliest = parsed(&[("scan.startup.mode", "earliest-offset")]).unwrap();
        assert_eq!(earliest.startup, Startup::Earliest);
        let at = parsed(&[
            ("scan.startup.mode", "timestamp"),
            ("scan.startup.timestamp-millis", "1700000000000"),
        ])
        .unwrap();
        assert_eq!(at.startup, Startup::Timestamp(1_700_000_000_000));
        let specific = parsed(&[
            ("scan.startup.mode", "specific-offsets"),
            (
                "scan.startup.specific-offsets",
                "partition:0,offset:42;partition:2,offset:7",
            ),
        ])
        .unwrap();
        assert_eq!(
            specific.startup,
            Startup::Specific(BTreeMap::from([(0, 42), (2, 7)]))
        );
    }

    #[test]
    fn partition_discovery_is_on_for_unbounded_reads_unless_set_to_0() {
        let parsed = |pairs: &[(&str, &str)]| {
            let mut pairs = pairs.to_vec();
            pairs.push(("scan.startup.mode", "earliest-offset"));
            SourceOptions::parse(&test_options(&pairs))
        };
        assert_eq!(parsed(&[]).unwrap().discovery, Some(DISCOVERY_INTERVAL));
        let name = DISCOVERY.name;
        let every = parsed(&[(name, "30 s")]).unwrap();
        assert_eq!(every.discovery, Some(Duration::from_secs(30)));
        assert_eq!(parsed(&[(name, "0")]).unwrap().discovery, None);
        let bounded = parsed(&[("scan.bounded.mode", "latest-offset")]).unwrap();
        assert_eq!(
            bounded.discovery, None,
            "a bounded read keeps its partitions"
        );
        let error = parsed(&[("scan.bounded.mode", "latest-offset"), (name, "1 min")])
            .unwrap_err()
            .to_string();
        assert!(error.contains(name) && error.contains("bounded"), "{error}");
        let error = parsed(&[(name, "often")]).unwrap_err().to_string();
        assert!(error.contains("a duration such as"), "{error}");
    }

    #[test]
    fn what_cannot_be_honored_is_refused_by_name() {
        let error = |pairs: &[(&str, &str)]| {
            SourceOptions::parse(&test_options(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(
            error(&[]).contains("group-offsets"),
            "the default needs a group"
        );
        let listed = error(&[("scan.startup.mode", "earliest-offset"), ("topic", "a;b")]);
        assert!(listed.contains("'topic'"), "{listed}");
        let stray = error(&[
            ("scan.startup.mode", "earliest-offset"),
            ("scan.startup.timestamp-millis", "5"),
        ]);
        assert!(
            stray.contains("only applies with scan.startup.mode 'timestamp'"),
            "{stray}"
        );
        let twice = error(&[
            ("scan.startup.mode", "specific-offsets"),
            (
                "scan.startup.specific-offsets",
                "partition:0,offset:1;partition:0,offset:2",
            ),
        ]);
        assert!(twice.contains("listed twice"), "{twice}");
        let format = error(&[("scan.startup.mode", "earliest-offset"), ("format", "avro")]);
        assert!(format.contains("'format'"), "{format}");
    }
}
