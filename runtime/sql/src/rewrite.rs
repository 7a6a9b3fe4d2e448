//! Flink functions the planner does not know, in terms it does:
//! * the auxiliary group-window functions, so they match the GROUP BY: `TUMBLE_START(t, i)` is
//!   `TUMBLE(t, i)` (a group window's value is its start) and `TUMBLE_END(t, i)` is
//!   `spate_window_end(TUMBLE(t, i))`; likewise HOP and SESSION;
//! * `MOD(a, b)`, which is `a % b` (both truncate towards zero);
//! * `DATE_FORMAT(t, 'yyyy-MM-dd')`, which is `to_char(t, '%Y-%m-%d')`: Java's date pattern
//!   (Flink's) in chrono's terms;
//! * `COALESCE(a, b, ...)`, which is `CASE WHEN a IS NOT NULL THEN a ... ELSE <the last> END`
//!   (DataFusion only runs COALESCE after its optimizer has rewritten it so), and `IFNULL(a, b)`
//!   (with DataFusion's `NVL`), which is `COALESCE(a, b)`.
//!
//! And it checks what can be checked before a job runs: the literal pattern of a
//! `REGEXP_EXTRACT` or `REGEXP_REPLACE` must compile (Flink would return NULL for every row),
//! and a function whose Flink meaning Spate cannot give yet is refused by name.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion_sql::sqlparser::ast::{
    BinaryOperator, CaseWhen, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, Spanned, Statement, Value, ValueWithSpan,
    visit_expressions_mut,
};

use crate::error::SqlError;
use crate::functions::WINDOW_END;
use crate::regexp_replace::matches_empty;
use crate::string_functions::check_pattern;

pub fn flink_functions(statement: &mut Statement) -> Result<(), SqlError> {
    let mut failure = None;
    let _ = visit_expressions_mut(statement, |expr| {
        let Expr::Function(function) = expr else {
            return ControlFlow::<()>::Continue(());
        };
        let name = function.name.to_string().to_uppercase();
        if name == "MOD"
            && let Some([a, b]) = unnamed_args(function).as_deref()
        {
            *expr = Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(a.clone()),
                op: BinaryOperator::Modulo,
                right: Box::new(b.clone()),
            }));
            return ControlFlow::Continue(());
        }
        if let Some(why) = refused(&name) {
            failure = Some(SqlError::unsupported(
                Some(function.name.span().start.into()),
                format!("{name}: {why}"),
            ));
            return ControlFlow::Break(());
        }
        if (name == "REGEXP_EXTRACT" || name == "REGEXP_REPLACE")
            && let Err(e) = regexp_literal(&name, function)
        {
            failure = Some(e);
            return ControlFlow::Break(());
        }
        if matches!(name.as_str(), "IFNULL" | "NVL")
            && unnamed_args(function).is_none_or(|args| args.len() != 2)
        {
            failure = Some(SqlError::unsupported(
                Some(function.name.span().start.into()),
                format!("{name} with other than two arguments ({name}(value, replacement))"),
            ));
            return ControlFlow::Break(());
        }
        if matches!(name.as_str(), "COALESCE" | "IFNULL" | "NVL")
            && let Some(args) = unnamed_args(function)
            && let Some((last, first)) = args.split_last()
        {
            *expr = if first.is_empty() {
                last.clone()
            } else {
                Expr::Case {
                    case_token: AttachedToken::empty(),
                    end_token: AttachedToken::empty(),
                    operand: None,
                    conditions: first
                        .iter()
                        .map(|arg| CaseWhen {
                            condition: Expr::IsNotNull(Box::new(arg.clone())),
                            result: arg.clone(),
                        })
                        .collect(),
                    else_result: Some(Box::new(last.clone())),
                }
            };
            return ControlFlow::Continue(());
        }
        if name == "DATE_FORMAT" {
            match date_format(function) {
                Ok(rewritten) => *expr = Expr::Function(rewritten),
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
            return ControlFlow::Continue(());
        }
        let Some((window, part)) = name.split_once('_') else {
            return ControlFlow::Continue(());
        };
        if !["TUMBLE", "HOP", "SESSION"].contains(&window) {
            return ControlFlow::Continue(());
        }
        let mut group = function.clone();
        group.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(window))]);
        match part {
            "START" => *expr = Expr::Function(group),
            "END" => *expr = Expr::Function(wrap(WINDOW_END, Expr::Function(group), function)),
            _ => {
                failure = Some(SqlError::unsupported(
                    Some(function.name.span().start.into()),
                    format!("{name} (supported: {window}_START, {window}_END)"),
                ));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    failure.map_or(Ok(()), Err)
}

/// Why a function Flink has is refused, if it is: Spate cannot give its Flink meaning yet.
fn refused(name: &str) -> Option<&'static str> {
    match name {
        "NOW"
        | "CURRENT_TIMESTAMP"
        | "LOCALTIMESTAMP"
        | "CURRENT_DATE"
        | "CURRENT_TIME"
        | "LOCALTIME"
        | "CURRENT_ROW_TIMESTAMP" => Some(
            "Flink evaluates it for every record in a streaming job, as a TIMESTAMP_LTZ or in \
             the session time zone, which Spate does not have yet",
        ),
        _ => None,
    }
}

/// A literal pattern of REGEXP_EXTRACT or REGEXP_REPLACE that does not compile, refused at its
/// position: at run time it would make every result NULL, which is never what was meant. So is
/// a pattern of REGEXP_REPLACE that can match the empty string: Java puts empty matches next to
/// others where the `regex` crate does not, so the results could differ from Flink's.
fn regexp_literal(name: &str, function: &Function) -> Result<(), SqlError> {
    let args = unnamed_args(function).unwrap_or_default();
    let Some(
        literal @ Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(pattern),
            ..
        }),
    ) = args.get(1)
    else {
        return Ok(());
    };
    let at = literal.span().start.into();
    if name == "REGEXP_REPLACE" && matches_empty(pattern) == Some(true) {
        return Err(SqlError::unsupported(
            Some(at),
            format!(
                "REGEXP_REPLACE with the pattern '{pattern}', which can match the empty string \
                 (Java places such matches differently from Spate's regex engine)"
            ),
        ));
    }
    check_pattern(pattern).map_err(|why| {
        SqlError::at(
            at,
            format!(
                "{name} pattern '{pattern}' is not a valid regular expression \
                 (Spate's dialect is the regex crate's: no look-around or back-references): {why}"
            ),
        )
    })
}

/// `DATE_FORMAT(t, 'pattern')` as `to_char(t, 'chrono pattern')`.
fn date_format(function: &Function) -> Result<Function, SqlError> {
    let at = Some(function.name.span().start.into());
    let args = unnamed_args(function).unwrap_or_default();
    let [time, pattern] = args.as_slice() else {
        return Err(SqlError::unsupported(
            at,
            "DATE_FORMAT with other than two arguments (supported: DATE_FORMAT(timestamp, 'pattern'))",
        ));
    };
    let Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(pattern),
        ..
    }) = pattern
    else {
        return Err(SqlError::unsupported(
            at,
            format!("DATE_FORMAT with the pattern {pattern} (it must be a string literal)"),
        ));
    };
    let chrono = chrono_pattern(pattern).map_err(|why| {
        SqlError::unsupported(at, format!("DATE_FORMAT pattern '{pattern}': {why}"))
    })?;
    let mut call = wrap("to_char", time.clone(), function);
    if let FunctionArguments::List(list) = &mut call.args {
        list.args
            .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(
                Value::SingleQuotedString(chrono).into(),
            ))));
    }
    Ok(call)
}

/// A Java `SimpleDateFormat` pattern (what Flink's DATE_FORMAT takes) as a chrono format
/// string. Letters chrono has no match for are refused rather than printed differently.
fn chrono_pattern(java: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // Quoted text; '' is a quote.
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        out.push('\'');
                    }
                    Some('\'') => break,
                    Some('%') => out.push_str("%%"),
                    Some(c) => out.push(c),
                    None => return Err("a quote is not closed".into()),
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if c == '%' {
                out.push_str("%%");
            } else {
                out.push(c);
            }
            continue;
        }
        let mut run = 1;
        while chars.peek() == Some(&c) {
            chars.next();
            run += 1;
        }
        let spec = match (c, run) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('D', _) => "%j",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            _ => {
                return Err(format!(
                    "the letter '{c}' ({run} times) is not supported (supported: y, M, d, D, H, h, m, s, SSS, a, E and quoted text)"
                ));
            }
        };
        out.push_str(spec);
    }
    Ok(out)
}

fn unnamed_args(function: &Function) -> Option<Vec<Expr>> {
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn wrap(name: &str, inner: Expr, like: &Function) -> Function {
    let mut outer = like.clone();
    outer.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]);
    outer.args = FunctionArguments::List(FunctionArgumentList {
        duplicate_treatment: None,
        args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))],
        clauses: Vec::new(),
    });
    outer
}

#[cfg(test)]
mod tests {
    use super::chrono_pattern;

    #[test]
    fn java_date_patterns_become_chrono_formats() {
        for (java, chrono) in [
            ("yyyy-MM-dd", "%Y-%m-%d"),
            ("HH:mm", "%H:%M"),
            ("yyyy-MM-dd HH:mm:ss.SSS", "%Y-%m-%d %H:%M:%S.%3f"),
            ("d MMM yy, EEE h a", "%-d %b %y, %a %-I %p"),
            ("'day' D 'at' H'h' 100%", "day %j at %-Hh 100%%"),
            ("'it''s' ''", "it's '"),
        ] {
            assert_eq!(chrono_pattern(java).as_deref(), Ok(chrono), "{java}");
        }
        let err = chrono_pattern("yyyy-ww").unwrap_err();
        assert!(err.contains("the letter 'w' (2 times)"), "{err}");
        assert!(chrono_pattern("'open").unwrap_err().contains("not closed"));
    }
}
