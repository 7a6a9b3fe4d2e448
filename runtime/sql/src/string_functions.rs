//! Flink's string functions that DataFusion lacks, with Flink's results:
//! * `REGEXP_EXTRACT(str, regex [, group])`: group `group` (0, the default, is the whole match)
//!   of the first match of `regex` in `str`; NULL when nothing matches, when the group does not
//!   exist or took no part in the match, when `regex` is not a valid pattern, or when an argument
//!   is NULL.
//! * `SPLIT_INDEX(str, separator, index)`: part `index` (from 0) of `str` split at every
//!   `separator` (the whole string, empty parts kept; an empty separator splits at whitespace);
//!   NULL when there is no such part, `index` is negative, `str` is empty or an argument is NULL.
//! * `REGEXP_REPLACE(str, regex, replacement)`: every match replaced (DataFusion's replaces the
//!   first only), see `regexp_replace.rs`.
//!
//! Patterns are in the `regex` crate's dialect, not Java's: no look-around or back-references
//! (a literal pattern that uses them is refused at planning, `rewrite.rs`), and `\d`, `\w` and
//! `\s` take Unicode's classes rather than ASCII's.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::Array;
use arrow_array::builder::StringBuilder;
use arrow_schema::DataType;
use datafusion_common::cast::{as_int64_array, as_string_array};
use datafusion_common::{Result, exec_err, plan_err};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

use crate::concat::concat;
use crate::regexp_replace::{Replacement, replace_all};

pub fn string_functions() -> Vec<Arc<ScalarUDF>> {
    [
        Function::RegexpExtract,
        Function::SplitIndex,
        Function::RegexpReplace,
    ]
    .into_iter()
    .map(|function| Arc::new(ScalarUDF::new_from_impl(StringFunction::new(function))))
    .chain([concat()])
    .collect()
}

/// Each takes two strings and a third argument, an integer (optional for REGEXP_EXTRACT) or a
/// string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Function {
    RegexpExtract,
    SplitIndex,
    RegexpReplace,
}

impl Function {
    fn usage(self) -> &'static str {
        match self {
            Function::RegexpExtract => "REGEXP_EXTRACT(str, regex [, group])",
            Function::SplitIndex => "SPLIT_INDEX(str, separator, index)",
            Function::RegexpReplace => "REGEXP_REPLACE(str, regex, replacement)",
        }
    }

    /// How many arguments a call must give.
    fn required(self) -> usize {
        match self {
            Function::RegexpExtract => 2,
            Function::SplitIndex | Function::RegexpReplace => 3,
        }
    }

    fn params(self) -> [Param; 3] {
        match self {
            Function::RegexpExtract | Function::SplitIndex => {
                [Param::Text, Param::Text, Param::Integer]
            }
            Function::RegexpReplace => [Param::Text; 3],
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct StringFunction {
    function: Function,
    signature: Signature,
}

impl StringFunction {
    fn new(function: Function) -> Self {
        StringFunction {
            function,
            // The types are checked and cast by `coerce_types`.
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// What an argument must be: any string type runs as Utf8, any integer type as Int64.
#[derive(Debug, Clone, Copy)]
enum Param {
    Text,
    Integer,
}

impl Param {
    fn data_type(self) -> DataType {
        match self {
            Param::Text => DataType::Utf8,
            Param::Integer => DataType::Int64,
        }
    }

    fn accepts(self, given: &DataType) -> bool {
        match self {
            Param::Text => matches!(
                given,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            ),
            Param::Integer => given.is_integer() || given == &DataType::Null,
        }
    }
}

impl ScalarUDFImpl for StringFunction {
    fn name(&self) -> &str {
        match self.function {
            Function::RegexpExtract => "regexp_extract",
            Function::SplitIndex => "split_index",
            Function::RegexpReplace => "regexp_replace",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The types the arguments are cast to, or an error naming the function and its usage.
    fn coerce_types(&self, given: &[DataType]) -> Result<Vec<DataType>> {
        let (usage, required) = (self.function.usage(), self.function.required());
        let params = self.function.params();
        if given.len() < required || given.len() > params.len() {
            let takes = if required == params.len() {
                required.to_string()
            } else {
                format!("{required} to {}", params.len())
            };
            return plan_err!("{usage} takes {takes} arguments, not {}", given.len());
        }
        given
            .iter()
            .zip(params)
            .enumerate()
            .map(|(i, (given, param))| {
                if param.accepts(given) {
                    Ok(param.data_type())
                } else {
                    plan_err!(
                        "{usage}: argument {} is {given}, not {}",
                        i + 1,
                        match param {
                            Param::Text => "a string",
                            Param::Integer => "an integer",
                        }
                    )
                }
            })
            .collect()
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Patterns are literals nearly always: each run of one pattern compiles once.
        let mut compiled: Option<(String, Option<Regex>)> = None;
        let mut compile = move |pattern: &str| {
            if compiled.as_ref().is_none_or(|(p, _)| p != pattern) {
                compiled = Some((pattern.to_string(), Regex::new(pattern).ok()));
            }
            compiled.as_ref().and_then(|(_, regex)| regex.clone())
        };
        match self.function {
            Function::RegexpExtract => map_rows(self.function, &args, |text, pattern, group| {
                extract(&compile(pattern)?, text, group.integer()?).map(Cow::Borrowed)
            }),
            Function::SplitIndex => map_rows(self.function, &args, |text, separator, index| {
                split_index(text, separator, index.integer()?).map(Cow::Borrowed)
            }),
            Function::RegexpReplace => {
                // A replacement is read against its pattern's groups.
                let mut parsed: Option<(String, String, Option<Replacement>)> = None;
                map_rows(self.function, &args, |text, pattern, template| {
                    let regex = compile(pattern)?;
                    let template = template.text()?;
                    if parsed
                        .as_ref()
                        .is_none_or(|(p, t, _)| p != pattern || t != template)
                    {
                        let replacement = Replacement::parse(template, &regex);
                        parsed = Some((pattern.to_string(), template.to_string(), replacement));
                    }
                    let replacement = parsed.as_ref()?.2.as_ref()?;
                    Some(replace_all(&regex, text, replacement))
                })
            }
        }
    }
}

/// A row's third argument: REGEXP_EXTRACT's group (0 when not given), SPLIT_INDEX's index or
/// REGEXP_REPLACE's replacement.
#[derive(Debug, Clone, Copy)]
enum Third<'a> {
    Integer(i64),
    Text(&'a str),
}

impl<'a> Third<'a> {
    /// `map_rows` checked the argument's type against the function's, so these are `None`
    /// only for a call they were never meant for.
    fn integer(self) -> Option<i64> {
        match self {
            Third::Integer(n) => Some(n),
            Third::Text(_) => None,
        }
    }

    fn text(self) -> Option<&'a str> {
        match self {
            Third::Text(text) => Some(text),
            Third::Integer(_) => None,
        }
    }
}

/// Runs `row` over the rows of `function`'s arguments, literals repeated and 0 for a missing
/// third one; NULL where any argument is. Arguments of other types than `coerce_types` gives
/// them are refused.
fn map_rows(
    function: Function,
    args: &ScalarFunctionArgs,
    mut row: impl for<'a> FnMut(&'a str, &'a str, Third<'a>) -> Option<Cow<'a, str>>,
) -> Result<ColumnarValue> {
    let arrays = args
        .args
        .iter()
        .map(|arg| arg.to_array(args.number_rows))
        .collect::<Result<Vec<_>>>()?;
    for (index, (array, param)) in arrays.iter().zip(function.params()).enumerate() {
        if array.data_type() != &param.data_type() {
            return exec_err!(
                "{}: argument {} is {}, not {} (its type was not coerced)",
                function.usage(),
                index + 1,
                array.data_type(),
                param.data_type()
            );
        }
    }
    let text = as_string_array(&arrays[0])?;
    let strings = as_string_array(&arrays[1])?;
    let third = arrays.get(2);
    let integers = third
        .filter(|a| a.data_type() == &DataType::Int64)
        .map(|a| as_int64_array(a))
        .transpose()?;
    let texts = third
        .filter(|a| a.data_type() == &DataType::Utf8)
        .map(|a| as_string_array(a))
        .transpose()?;
    let mut out = StringBuilder::with_capacity(text.len(), 0);
    for i in 0..text.len() {
        let third = match (integers, texts) {
            (Some(n), _) => n.is_valid(i).then(|| Third::Integer(n.value(i))),
            (_, Some(t)) => t.is_valid(i).then(|| Third::Text(t.value(i))),
            (None, None) => Some(Third::Integer(0)),
        };
        match third {
            Some(third) if text.is_valid(i) && strings.is_valid(i) => {
                out.append_option(row(text.value(i), strings.value(i), third));
            }
            _ => out.append_null(),
        }
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish())))
}

fn extract<'a>(regex: &Regex, text: &'a str, group: i64) -> Option<&'a str> {
    let group = usize::try_from(group).ok()?;
    Some(regex.captures(text)?.get(group)?.as_str())
}

fn split_index<'a>(text: &'a str, separator: &str, index: i64) -> Option<&'a str> {
    let index = usize::try_from(index).ok()?;
    if text.is_empty() {
        return None;
    }
    if separator.is_empty() {
        text.split(char::is_whitespace).nth(index)
    } else {
        text.split(separator).nth(index)
    }
}

/// Whether `pattern` compiles; the error, in the `regex` crate's words, when it does not.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    Regex::new(pattern).map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexp_extract_takes_a_group_of_the_first_match() {
        let channel = Regex::new("(&|^)channel_id=([^&]*)").unwrap();
        let url = "https://x.com/a/item.htm?query=1&channel_id=42&channel_id=7";
        assert_eq!(extract(&channel, url, 2), Some("42"));
        assert_eq!(extract(&channel, url, 0), Some("&channel_id=42"));
        assert_eq!(extract(&channel, "channel_id=5", 2), Some("5"));
        assert_eq!(extract(&channel, "channel_id=", 2), Some(""));
        assert_eq!(extract(&channel, url, 3), None, "no such group");
        assert_eq!(extract(&channel, url, -1), None, "a negative group");
        assert_eq!(extract(&channel, "query=1", 2), None, "no match");
        let optional = Regex::new("a(b)?").unwrap();
        assert_eq!(
            extract(&optional, "ac", 1),
            None,
            "a group that took no part"
        );
    }

    #[test]
    fn split_index_keeps_empty_parts_and_counts_from_zero() {
        let url = "https://www.nexmark.com/abc/de/f/item.htm";
        assert_eq!(split_index(url, "/", 0), Some("https:"));
        assert_eq!(split_index(url, "/", 1), Some(""));
        assert_eq!(split_index(url, "/", 3), Some("abc"));
        assert_eq!(split_index(url, "/", 6), Some("item.htm"));
        assert_eq!(split_index(url, "/", 7), None);
        assert_eq!(split_index(url, "/", -1), None);
        assert_eq!(
            split_index("a::b", "::", 1),
            Some("b"),
            "the whole separator"
        );
        assert_eq!(split_index("a b", "", 1), Some("b"), "at whitespace");
        assert_eq!(
            split_index("", "/", 0),
            None,
            "an empty string has no parts"
        );
        assert_eq!(split_index("a/", "/", 1), Some(""));
    }

    #[test]
    fn arguments_of_the_wrong_type_are_refused_by_name() {
        let f = StringFunction::new(Function::RegexpExtract);
        let err = f
            .coerce_types(&[DataType::Utf8, DataType::Int64])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("REGEXP_EXTRACT") && err.contains("argument 2"),
            "{err}"
        );
        let err = StringFunction::new(Function::SplitIndex)
            .coerce_types(&[DataType::Utf8, DataType::Utf8])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SPLIT_INDEX") && err.contains("takes 3 arguments, not 2"),
            "{err}"
        );
        assert_eq!(
            f.coerce_types(&[DataType::LargeUtf8, DataType::Utf8, DataType::Int32])
                .unwrap(),
            [DataType::Utf8, DataType::Utf8, DataType::Int64]
        );
    }
}
