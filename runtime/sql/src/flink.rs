//! The parts of Flink's SQL dialect that the stock parser refuses, taken out of the text before
//! it is parsed: `WATERMARK FOR col AS expr` and computed columns `col AS expr` inside
//! `CREATE TABLE`, and the `TABLE t` argument of window table functions. They are blanked out
//! with spaces (newlines kept), so every position the parser reports still points into the
//! user's text.

use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::keywords::Keyword;
use datafusion_sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::error::{Position, SqlError};

/// A clause lifted out of a CREATE TABLE: its column and its expression's text and position.
#[derive(Debug, Clone)]
pub struct Clause {
    pub column: String,
    pub expression: String,
    pub position: Position,
}

#[derive(Debug, Default, Clone)]
pub struct TableExtras {
    pub watermark: Option<Clause>,
    pub computed: Vec<Clause>,
}

pub struct Preprocessed {
    pub text: String,
    /// One entry per CREATE TABLE, in the order they appear.
    pub tables: Vec<TableExtras>,
}

fn word(token: &Token) -> Option<(&str, Keyword)> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some((w.value.as_str(), w.keyword)),
        _ => None,
    }
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    word(token).is_some_and(|(_, k)| k == keyword)
}

/// An identifier as the planner will see it: unquoted ones are case-insensitive (lowercased).
fn ident(token: &Token) -> Option<String> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_lowercase()),
        Token::Word(w) => Some(w.value.clone()),
        _ => None,
    }
}

struct Text {
    chars: Vec<char>,
    /// Index in `chars` of the first character of each line.
    line_starts: Vec<usize>,
}

impl Text {
    fn new(sql: &str) -> Self {
        let chars: Vec<char> = sql.chars().collect();
        let mut line_starts = vec![0];
        for (i, c) in chars.iter().enumerate() {
            if *c == '\n' {
                line_starts.push(i + 1);
            }
        }
        Text { chars, line_starts }
    }

    fn index(&self, p: Position) -> usize {
        self.line_starts[(p.line - 1) as usize] + (p.column - 1) as usize
    }

    /// From the start of `from` to the end of `to`, inclusive.
    fn slice(&self, from: &TokenWithSpan, to: &TokenWithSpan) -> String {
        self.chars[self.index(from.span.start.into())..self.index(to.span.end.into())]
            .iter()
            .collect()
    }

    fn blank(&mut self, from: &TokenWithSpan, to: &TokenWithSpan) {
        let (a, b) = (
            self.index(from.span.start.into()),
            self.index(to.span.end.into()),
        );
        for c in &mut self.chars[a..b] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    }
}

pub fn preprocess(sql: &str) -> Result<Preprocessed, SqlError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location.into(), e.message.clone()))?;
    // Work on the tokens that mean something; whitespace and comments only separate them.
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .collect();
    let mut text = Text::new(sql);
    let mut tables = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if is_keyword(&tokens[i].token, Keyword::CREATE)
            && tokens
                .get(i + 1)
                .is_some_and(|t| is_keyword(&t.token, Keyword::TABLE))
        {
            i = create_table(&tokens, i + 2, &mut text, &mut tables)?;
            continue;
        }
        // TABLE(TUMBLE(TABLE bid, ...)): the inner TABLE keyword is Flink's, not the parser's.
        if is_keyword(&tokens[i].token, Keyword::TABLE)
            && i >= 2
            && tokens[i - 1].token == Token::LParen
            && word(&tokens[i - 2].token).is_some_and(|(w, _)| {
                ["TUMBLE", "HOP", "CUMULATE", "SESSION"].contains(&w.to_ascii_uppercase().as_str())
            })
        {
            text.blank(&tokens[i], &tokens[i]);
        }
        i += 1;
    }
    Ok(Preprocessed {
        text: text.chars.into_iter().collect(),
        tables,
    })
}

/// Scans a CREATE TABLE's column list from after `CREATE TABLE`; returns where to go on.
fn create_table(
    tokens: &[TokenWithSpan],
    mut i: usize,
    text: &mut Text,
    tables: &mut Vec<TableExtras>,
) -> Result<usize, SqlError> {
    let mut extras = TableExtras::default();
    // [IF NOT EXISTS] name[.name...]
    while i < tokens.len() && tokens[i].token != Token::LParen {
        if matches!(tokens[i].token, Token::SemiColon) {
            tables.push(extras);
            return Ok(i);
        }
        i += 1;
    }
    // Elements of the column list: token ranges between commas at depth 1.
    let mut depth = 0usize;
    let mut start = i + 1;
    let mut elements = Vec::new();
    while i < tokens.len() {
        match tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    elements.push((start, i));
                    break;
                }
            }
            Token::Comma if depth == 1 => {
                elements.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    for (index, &(from, to)) in elements.iter().enumerate() {
        if from >= to {
            continue;
        }
        let element = &tokens[from..to];
        let clause =
            if word(&element[0].token).is_some_and(|(w, _)| w.eq_ignore_ascii_case("WATERMARK")) {
                let valid = element.len() >= 5
                    && is_keyword(&element[1].token, Keyword::FOR)
                    && is_keyword(&element[3].token, Keyword::AS);
                if !valid {
                    return Err(SqlError::at(
                        element[0].span.start.into(),
                        "expected WATERMARK FOR <column> AS <expression>",
                    ));
                }
                let clause = Clause {
                    column: ident(&element[2].token).unwrap_or_default(),
                    expression: text.slice(&element[4], &element[element.len() - 1]),
                    position: element[4].span.start.into(),
                };
                if extras.watermark.replace(clause).is_some() {
                    return Err(SqlError::at(
                        element[0].span.start.into(),
                        "a table can have one WATERMARK",
                    ));
                }
                true
            } else if element.len() >= 3
                && ident(&element[0].token).is_some()
                && is_keyword(&element[1].token, Keyword::AS)
            {
                extras.computed.push(Clause {
                    column: ident(&element[0].token).unwrap_or_default(),
                    expression: text.slice(&element[2], &element[element.len() - 1]),
                    position: element[2].span.start.into(),
                });
                true
            } else {
                false
            };
        if clause {
            // Blank the element and the comma that separates it from the previous one (or, for
            // the first element, from the next one) so the remaining list stays well formed.
            let (first, last) = if index > 0 {
                (from - 1, to - 1)
            } else if to < tokens.len() && tokens[to].token == Token::Comma {
                (from, to)
            } else {
                (from, to - 1)
            };
            text.blank(&tokens[first], &tokens[last]);
        }
    }
    tables.push(extras);
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_and_computed_columns_are_lifted_keeping_positions() {
        let sql = "CREATE TABLE bid (\n  price BIGINT,\n  ts TIMESTAMP(3),\n  cents AS price * 100,\n  WATERMARK FOR ts AS ts - INTERVAL '4' SECOND\n) WITH ('connector' = 'nexmark');\nSELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '10' SECOND))";
        let p = preprocess(sql).unwrap();
        let extras = &p.tables[0];
        let wm = extras.watermark.as_ref().unwrap();
        assert_eq!(
            (wm.column.as_str(), wm.expression.as_str()),
            ("ts", "ts - INTERVAL '4' SECOND")
        );
        assert_eq!(extras.computed[0].column, "cents");
        assert_eq!(
            wm.position,
            Position {
                line: 5,
                column: 23
            }
        );
        assert_eq!(extras.computed[0].expression, "price * 100");
        assert_eq!(p.text.lines().count(), sql.lines().count());
        assert!(!p.text.contains("WATERMARK") && !p.text.contains("cents"));
        assert!(p.text.contains("ts TIMESTAMP(3)") && p.text.contains("TUMBLE(      bid,"));
        assert_eq!(p.text.len(), sql.len());
    }

    #[test]
    fn a_malformed_watermark_is_pointed_at() {
        let err = preprocess("CREATE TABLE t (a INT,\n WATERMARK a AS a)")
            .err()
            .unwrap();
        assert_eq!(err.position, Some(Position { line: 2, column: 2 }));
    }
}
