use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("table '{table}': unknown connector '{name}'; available: {known}")]
    UnknownConnector {
        table: String,
        name: String,
        known: String,
    },
    #[error("table '{table}': missing required option '{option}'")]
    MissingOption { table: String, option: String },
    #[error("table '{table}': option '{option}' = '{value}': {detail}")]
    BadOption {
        table: String,
        option: String,
        value: String,
        detail: String,
    },
    #[error(
        "table '{table}': unknown option(s) {options} for connector '{connector}'; it accepts: {accepted}"
    )]
    UnknownOptions {
        table: String,
        connector: String,
        options: String,
        accepted: String,
    },
    #[error("table '{table}': {detail}")]
    Schema { table: String, detail: String },
    #[error("table '{table}': {detail}")]
    Unsupported { table: String, detail: String },
}

/// An option a connector accepts.
#[derive(Debug, Clone, Copy)]
pub struct OptionDoc {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub description: &'static str,
}

impl OptionDoc {
    pub const fn new(
        name: &'static str,
        default: Option<&'static str>,
        description: &'static str,
    ) -> Self {
        OptionDoc {
            name,
            default,
            description,
        }
    }
}

/// A table's `WITH` options. Every option read is remembered, so that [`TableOptions::finish`]
/// can refuse the ones no one read (usually a typo).
#[derive(Debug, Clone)]
pub struct TableOptions {
    table: String,
    values: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl TableOptions {
    pub fn new(table: &str, values: BTreeMap<String, String>) -> Self {
        let read = RefCell::new(BTreeSet::from(["connector".to_string()]));
        TableOptions {
            table: table.to_string(),
            values,
            read,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.read.borrow_mut().insert(name.to_string());
        self.values.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> Result<&str, ConnectorError> {
        self.get(name).ok_or_else(|| ConnectorError::MissingOption {
            table: self.table.clone(),
            option: name.to_string(),
        })
    }

    /// Parses an option, or takes the default when it is absent.
    pub fn parse<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConnectorError>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.parse_optional(name)?.unwrap_or(default))
    }

    pub fn parse_optional<T: FromStr>(&self, name: &str) -> Result<Option<T>, ConnectorError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|value| {
                value
                    .trim()
                    .parse()
                    .map_err(|e: T::Err| self.bad(name, value, e.to_string()))
            })
            .transpose()
    }

    pub fn bad(&self, option: &str, value: &str, detail: impl Into<String>) -> ConnectorError {
        ConnectorError::BadOption {
            table: self.table.clone(),
            option: option.to_string(),
            value: value.to_string(),
            detail: detail.into(),
        }
    }

    /// Refuses options that were given but never read.
    pub fn finish(&self, connector: &str, accepted: &[OptionDoc]) -> Result<(), ConnectorError> {
        let read = self.read.borrow();
        let unknown: Vec<&str> = self
            .values
            .keys()
            .filter(|k| !read.contains(*k))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(ConnectorError::UnknownOptions {
            table: self.table.clone(),
            connector: connector.to_string(),
            options: unknown.join(", "),
            accepted: accepted
                .iter()
                .map(|o| o.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}
