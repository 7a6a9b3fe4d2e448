use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use spate_graph::GraphError;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("unknown job '{0}'; known jobs: {1}")]
    UnknownJob(String, String),
    #[error("job '{job}': argument '{arg}': {detail}")]
    BadArgument {
        job: String,
        arg: String,
        detail: String,
    },
    #[error("job '{job}': unknown argument(s) {args}; accepted: {accepted}")]
    UnknownArguments {
        job: String,
        args: String,
        accepted: String,
    },
    // Transparent: the SQL error is the whole message, and anyhow's `{:#}` would print it twice
    // if it were also this error's source.
    #[error(transparent)]
    Sql(#[from] spate_sql::SqlError),
    #[error("job '{job}': {source}")]
    Graph {
        job: String,
        #[source]
        source: GraphError,
    },
}

/// A job's arguments, read with types and defaults. Every argument read is remembered, so that
/// one the job does not know (a typo) is an error instead of being silently ignored.
pub struct JobArgs<'a> {
    job: &'a str,
    args: &'a BTreeMap<String, String>,
    read: BTreeSet<&'static str>,
}

impl<'a> JobArgs<'a> {
    pub fn new(job: &'a str, args: &'a BTreeMap<String, String>) -> Self {
        JobArgs {
            job,
            args,
            read: BTreeSet::new(),
        }
    }

    pub fn get<T: FromStr>(&mut self, name: &'static str, default: T) -> Result<T, JobError>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    pub fn optional<T: FromStr>(&mut self, name: &'static str) -> Result<Option<T>, JobError>
    where
        T::Err: std::fmt::Display,
    {
        self.read.insert(name);
        self.args
            .get(name)
            .map(|raw| {
                raw.parse().map_err(|e: T::Err| JobError::BadArgument {
                    job: self.job.to_string(),
                    arg: name.to_string(),
                    detail: format!("'{raw}': {e}"),
                })
            })
            .transpose()
    }

    pub fn bad(&self, arg: &str, detail: impl Into<String>) -> JobError {
        JobError::BadArgument {
            job: self.job.to_string(),
            arg: arg.to_string(),
            detail: detail.into(),
        }
    }

    /// Fails if an argument was given that the job never read.
    pub fn finish(self) -> Result<(), JobError> {
        let unknown: Vec<&str> = self
            .args
            .keys()
            .map(String::as_str)
            .filter(|k| !self.read.contains(k))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(JobError::UnknownArguments {
            job: self.job.to_string(),
            args: unknown.join(", "),
            accepted: self.read.iter().copied().collect::<Vec<_>>().join(", "),
        })
    }
}
