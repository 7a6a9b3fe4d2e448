use std::fmt;

/// A place in the job's SQL text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl From<datafusion_sql::sqlparser::tokenizer::Location> for Position {
    fn from(l: datafusion_sql::sqlparser::tokenizer::Location) -> Self {
        Position {
            line: l.line,
            column: l.column,
        }
    }
}

/// An error in a SQL job: what is wrong, where, and the line it is on with a caret under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub message: String,
    pub position: Option<Position>,
    /// The offending line of the source and a caret line, when the position is known.
    excerpt: Option<String>,
}

impl SqlError {
    pub fn new(message: impl Into<String>, position: Option<Position>) -> Self {
        SqlError {
            message: message.into(),
            position,
            excerpt: None,
        }
    }

    pub fn at(position: Position, message: impl Into<String>) -> Self {
        SqlError::new(message, Some(position))
    }

    pub fn unsupported(position: Option<Position>, what: impl fmt::Display) -> Self {
        SqlError::new(format!("unsupported: {what}"), position)
    }

    /// Attaches the source line the error points at.
    pub fn with_source(mut self, sql: &str) -> Self {
        if let Some(p) = self.position
            && p.line > 0
            && let Some(line) = sql.lines().nth(p.line as usize - 1)
        {
            let caret = " ".repeat(p.column.saturating_sub(1) as usize);
            self.excerpt = Some(format!("  {line}\n  {caret}^"));
        }
        self
    }

    /// Fills in a position for errors that had none (the statement they came from).
    pub fn or_at(mut self, position: Position) -> Self {
        self.position.get_or_insert(position);
        self
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(
                f,
                "SQL error at line {}, column {}: {}",
                p.line, p.column, self.message
            )?,
            None => write!(f, "SQL error: {}", self.message)?,
        }
        if let Some(excerpt) = &self.excerpt {
            write!(f, "\n{excerpt}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

/// sqlparser reports positions inside its message ("... at Line: 3, Column: 14").
pub fn parser_error(message: &str) -> SqlError {
    let position = message.rfind("Line: ").and_then(|at| {
        let rest = &message[at + 6..];
        let (line, rest) = rest.split_once(", Column: ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(Position {
            line: line.trim().parse().ok()?,
            column: column.parse().ok()?,
        })
    });
    let text = message
        .split(" at Line: ")
        .next()
        .unwrap_or(message)
        .trim_start_matches("sql parser error: ");
    SqlError::new(text.to_string(), position)
}

/// DataFusion errors, with the position of their diagnostic when DataFusion gives one.
pub fn planning_error(error: datafusion_common::DataFusionError) -> SqlError {
    let position = error
        .diagnostic()
        .and_then(|d| d.span)
        .map(|span| Position {
            line: span.start.line,
            column: span.start.column,
        });
    // The error's own text carries the detail (e.g. the tables that do exist); the diagnostic
    // only adds where.
    let text = error.strip_backtrace();
    let message = text
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("Schema error: ")
        .to_string();
    SqlError::new(message, position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_come_out_of_parser_messages_and_point_at_the_source() {
        let e = parser_error(
            "sql parser error: Expected: end of statement, found: FROMM at Line: 2, Column: 8",
        );
        assert_eq!(e.position, Some(Position { line: 2, column: 8 }));
        let text = e.with_source("SELECT a\nSELECT FROMM t").to_string();
        assert_eq!(
            text,
            "SQL error at line 2, column 8: Expected: end of statement, found: FROMM\n  SELECT FROMM t\n         ^"
        );
    }
}
