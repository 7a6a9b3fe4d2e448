//! The credentials file: `key = value` lines (format in the crate documentation).

use std::fmt;
use std::path::Path;

use crate::error::{CheckpointError, Result};

/// A value read from the credentials file; shown by nothing.
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug)]
pub(crate) struct CredentialEntry {
    pub line: usize,
    pub key: String,
    pub value: Secret,
}

pub(crate) async fn read(path: &Path) -> Result<Vec<CredentialEntry>> {
    let text =
        tokio::fs::read_to_string(path)
            .await
            .map_err(|source| CheckpointError::Credentials {
                path: path.to_path_buf(),
                reason: format!("cannot read: {source}"),
            })?;
    parse(&text).map_err(|reason| CheckpointError::Credentials {
        path: path.to_path_buf(),
        reason,
    })
}

fn parse(text: &str) -> Result<Vec<CredentialEntry>, String> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The message must not echo the line: it may be a secret missing its `key =`.
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line_number} is not `key = value`"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("line {line_number} has no key"));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        entries.push(CredentialEntry {
            line: line_number,
            key: key.to_ascii_lowercase(),
            value: Secret(value.to_string()),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_comments_and_quotes() {
        let entries = parse(
            "# minio\n\naws_access_key_id = spate\nAWS_SECRET_ACCESS_KEY=\"s3cr=t\"\n  # done\n",
        )
        .unwrap();
        let pairs: Vec<_> = entries
            .iter()
            .map(|e| (e.line, e.key.as_str(), e.value.expose()))
            .collect();
        assert_eq!(
            pairs,
            [
                (3, "aws_access_key_id", "spate"),
                (4, "aws_secret_access_key", "s3cr=t")
            ]
        );
        assert!(!format!("{entries:?}").contains("s3cr"));
    }

    #[test]
    fn malformed_lines_are_named_without_their_content() {
        let error = parse("aws_access_key_id = a\nverysecretvalue\n").unwrap_err();
        assert_eq!(error, "line 2 is not `key = value`");
        assert_eq!(parse(" = x").unwrap_err(), "line 1 has no key");
    }
}
