//! `REGEXP_REPLACE(str, regex, replacement)` as Flink runs it: every match of `regex` in `str`
//! replaced (Java's `String.replaceAll`), the replacement read as Java reads it: `$n` and `${name}`
//! insert a group (a group that took no part inserts nothing), `\c` is the character `c`. A
//! replacement Java would throw on (a `$` without a group, a group that does not exist, a `\`
//! at the end) makes the result NULL, as an invalid pattern does: Flink returns NULL when the
//! replacement fails.
//!
//! Patterns are in the `regex` crate's dialect (see `string_functions.rs`), and one that can
//! match the empty string is refused at planning when it is a literal: Java and the `regex`
//! crate place empty matches next to other matches differently.

use std::borrow::Cow;

use regex::{Captures, Regex};

/// A replacement, parsed once per pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replacement(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

impl Replacement {
    /// Reads `template` against `regex`'s groups as `java.util.regex.Matcher` does; `None` where
    /// Java would throw.
    pub(crate) fn parse(template: &str, regex: &Regex) -> Option<Self> {
        let groups = regex.captures_len() - 1;
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => text.push(chars.next()?),
                '$' => {
                    let group = if chars.peek() == Some(&'{') {
                        chars.next();
                        let mut name = String::new();
                        loop {
                            match chars.next()? {
                                '}' => break,
                                c => name.push(c),
                            }
                        }
                        let starts_with_letter =
                            name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
                        if !starts_with_letter || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                            return None;
                        }
                        regex.capture_names().position(|n| n == Some(&name))?
                    } else {
                        // The first digit always counts; each next one while the number it
                        // makes is still a group.
                        let mut group = chars.next()?.to_digit(10)? as usize;
                        if group > groups {
                            return None;
                        }
                        while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
                            let longer = group * 10 + digit as usize;
                            if longer > groups {
                                break;
                            }
                            group = longer;
                            chars.next();
                        }
                        group
                    };
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Group(group));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Some(Replacement(pieces))
    }

    fn expand(&self, captures: &Captures<'_>, out: &mut String) {
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Group(group) => {
                    if let Some(matched) = captures.get(*group) {
                        out.push_str(matched.as_str());
                    }
                }
            }
        }
    }
}

/// `text` with every match of `regex` replaced.
pub(crate) fn replace_all<'a>(
    regex: &Regex,
    text: &'a str,
    replacement: &Replacement,
) -> Cow<'a, str> {
    regex.replace_all(text, |captures: &Captures<'_>| {
        let mut out = String::new();
        replacement.expand(captures, &mut out);
        out
    })
}

/// Whether `pattern` can match the empty string (where Java and the `regex` crate differ);
/// `None` if it does not parse.
pub(crate) fn matches_empty(pattern: &str) -> Option<bool> {
    let hir = regex_syntax::parse(pattern).ok()?;
    Some(hir.properties().minimum_len() == Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replace(text: &str, pattern: &str, template: &str) -> Option<String> {
        let regex = Regex::new(pattern).unwrap();
        let replacement = Replacement::parse(template, &regex)?;
        Some(replace_all(&regex, text, &replacement).into_owned())
    }

    #[test]
    fn every_match_is_replaced() {
        // Flink's documentation: REGEXP_REPLACE('foobar', 'oo|ar', '') is 'fb'.
        assert_eq!(replace("foobar", "oo|ar", "").as_deref(), Some("fb"));
        assert_eq!(
            replace("a.b.c", "\\.", "/").as_deref(),
            Some("a/b/c"),
            "not only the first"
        );
        assert_eq!(replace("abc", "x", "y").as_deref(), Some("abc"));
    }

    #[test]
    fn groups_and_escapes_read_as_java_reads_them() {
        let swap = replace("2023-11-14", "(\\d+)-(\\d+)-(\\d+)", "$3.$2.$1");
        assert_eq!(swap.as_deref(), Some("14.11.2023"));
        assert_eq!(
            replace("ab", "(a)(b)", "$1x").as_deref(),
            Some("ax"),
            "a digit after a group's number is text when the longer number is no group"
        );
        assert_eq!(replace("ab", "(a)(b)", "$12").as_deref(), Some("a2"));
        let twelve = "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)";
        assert_eq!(replace("abcdefghijkl", twelve, "$12").as_deref(), Some("l"));
        assert_eq!(
            replace("ab", "(?P<first>a)", "${first}!").as_deref(),
            Some("a!b")
        );
        assert_eq!(replace("ab", "a", "\\$1").as_deref(), Some("$1b"));
        assert_eq!(replace("ab", "a", "\\\\").as_deref(), Some("\\b"));
        assert_eq!(
            replace("ac", "a(b)?", "[$1]").as_deref(),
            Some("[]c"),
            "a group that took no part inserts nothing"
        );
    }

    #[test]
    fn replacements_java_throws_on_give_none() {
        assert_eq!(replace("ab", "a", "$"), None, "a $ without a group");
        assert_eq!(replace("ab", "a", "$x"), None);
        assert_eq!(replace("ab", "(a)", "$2"), None, "no group 2");
        assert_eq!(replace("ab", "a", "${missing}"), None);
        assert_eq!(
            replace("ab", "a", "${1a}"),
            None,
            "a name starts with a letter"
        );
        assert_eq!(replace("ab", "(?<n>a)", "${n"), None, "a name is closed");
        assert_eq!(replace("ab", "a", "x\\"), None, "a \\ at the end");
    }

    #[test]
    fn patterns_that_can_match_nothing_are_told_apart() {
        assert_eq!(matches_empty("a*"), Some(true));
        assert_eq!(matches_empty("x|"), Some(true));
        assert_eq!(matches_empty("oo|ar"), Some(false));
        assert_eq!(matches_empty("("), None);
    }
}
