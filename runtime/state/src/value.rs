//! The stored form of state values, the same in both backends and in both snapshot formats, so
//! that a snapshot of one backend restores into the other without translation:
//!
//! ```text
//! value:   [PLAIN][payload]  |  [EXPIRING][expires at: i64 BE][payload]
//! list:    [LIST]{[element length: varint][element]}*      (each element is a value)
//! ```
//!
//! The tag costs one byte per value, and in return anything that sees stored bytes (snapshot
//! writers, restores, RocksDB's compaction filter and merge operator) can tell expired data
//! without knowing which state it belongs to or how that state was configured.

use spate_api::Timestamp;

const PLAIN: u8 = 0;
const EXPIRING: u8 = 1;
const LIST: u8 = 2;
const EXPIRY_LEN: usize = 8;

/// Why stored bytes could not be read.
pub(crate) type Corrupt = &'static str;

/// Where a single value's payload starts, and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub expires_at: Option<Timestamp>,
    pub payload_start: usize,
}

impl Header {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

pub(crate) fn value_header(stored: &[u8]) -> Result<Header, Corrupt> {
    match stored.split_first() {
        Some((&PLAIN, _)) => Ok(Header {
            expires_at: None,
            payload_start: 1,
        }),
        Some((&EXPIRING, rest)) => {
            let at = rest
                .first_chunk::<EXPIRY_LEN>()
                .ok_or("truncated expiry time")?;
            Ok(Header {
                expires_at: Some(Timestamp::from_be_bytes(*at)),
                payload_start: 1 + EXPIRY_LEN,
            })
        }
        Some((&LIST, _)) => Err("a list where a single value was expected"),
        Some(_) => Err("unknown value tag"),
        None => Err("empty stored value"),
    }
}

pub(crate) fn write_value(out: &mut Vec<u8>, expires_at: Option<Timestamp>, payload: &[u8]) {
    match expires_at {
        None => out.push(PLAIN),
        Some(at) => {
            out.push(EXPIRING);
            out.extend_from_slice(&at.to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Moves the expiry of an expiring value without reallocating it.
pub(crate) fn set_expiry(stored: &mut [u8], expires_at: Timestamp) {
    if let Some((&mut EXPIRING, rest)) = stored.split_first_mut()
        && let Some(at) = rest.first_chunk_mut::<EXPIRY_LEN>()
    {
        *at = expires_at.to_be_bytes();
    }
}

pub(crate) fn start_list(out: &mut Vec<u8>) {
    out.push(LIST);
}

pub(crate) fn is_list(stored: &[u8]) -> bool {
    stored.first() == Some(&LIST)
}

pub(crate) fn push_element(list: &mut Vec<u8>, expires_at: Option<Timestamp>, payload: &[u8]) {
    let len = 1 + expires_at.map_or(0, |_| EXPIRY_LEN) + payload.len();
    crate::varint::put(list, len as u64);
    write_value(list, expires_at, payload);
}

/// The elements of a stored list: (expiry, payload) each.
pub(crate) fn elements(list: &[u8]) -> Result<Elements<'_>, Corrupt> {
    match list.split_first() {
        Some((&LIST, rest)) => Ok(Elements { rest }),
        _ => Err("not a list"),
    }
}

pub(crate) struct Elements<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<(Option<Timestamp>, &'a [u8]), Corrupt>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((element, rest)) = crate::varint::split_field(self.rest) else {
            self.rest = &[];
            return Some(Err("truncated list element"));
        };
        self.rest = rest;
        Some(value_header(element).map(|h| (h.expires_at, &element[h.payload_start..])))
    }
}

/// What becomes of a stored value at time `now`, when a read moves expiries to `refresh`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cleaned {
    Keep,
    Drop,
    Rewrite(Vec<u8>),
}

pub(crate) fn clean(
    stored: &[u8],
    now: Timestamp,
    refresh: Option<Timestamp>,
) -> Result<Cleaned, Corrupt> {
    if !is_list(stored) {
        let header = value_header(stored)?;
        return Ok(match (header.is_live(now), header.expires_at, refresh) {
            (false, _, _) => Cleaned::Drop,
            (true, Some(_), Some(to)) => {
                let mut rewritten = stored.to_vec();
                set_expiry(&mut rewritten, to);
                Cleaned::Rewrite(rewritten)
            }
            _ => Cleaned::Keep,
        });
    }
    let (mut live, mut changed) = (0usize, false);
    for element in elements(stored)? {
        let (expires_at, _) = element?;
        match expires_at {
            Some(at) if now >= at => changed = true,
            Some(_) => {
                live += 1;
                changed |= refresh.is_some();
            }
            None => live += 1,
        }
    }
    if live == 0 {
        return Ok(Cleaned::Drop);
    }
    if !changed {
        return Ok(Cleaned::Keep);
    }
    let mut rewritten = Vec::with_capacity(stored.len());
    start_list(&mut rewritten);
    for element in elements(stored)? {
        let (expires_at, payload) = element?;
        if expires_at.is_none_or(|at| now < at) {
            push_element(
                &mut rewritten,
                expires_at.and(refresh).or(expires_at),
                payload,
            );
        }
    }
    Ok(Cleaned::Rewrite(rewritten))
}

/// RocksDB's merge of list appends: the elements of `base` (if any) followed by those of each
/// operand, without those expired at `now` when `now` is given.
pub(crate) fn merge_lists<'a>(
    base: Option<&'a [u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
    now: Option<Timestamp>,
) -> Result<Vec<u8>, Corrupt> {
    let mut merged = Vec::with_capacity(base.map_or(0, <[u8]>::len) + 64);
    start_list(&mut merged);
    for list in base.into_iter().chain(operands) {
        let Some(now) = now else {
            // Validate the framing, then copy the elements in one piece.
            for element in elements(list)? {
                element?;
            }
            merged.extend_from_slice(&list[1..]);
            continue;
        };
        for element in elements(list)? {
            let (expires_at, payload) = element?;
            if expires_at.is_none_or(|at| now < at) {
                push_element(&mut merged, expires_at, payload);
            }
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(expires_at: Option<Timestamp>, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&mut out, expires_at, payload);
        out
    }

    fn list(elements: &[(Option<Timestamp>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        start_list(&mut out);
        for (expires_at, payload) in elements {
            push_element(&mut out, *expires_at, payload);
        }
        out
    }

    fn payloads(stored: &[u8]) -> Vec<(Option<Timestamp>, Vec<u8>)> {
        elements(stored)
            .unwrap()
            .map(|e| e.map(|(at, p)| (at, p.to_vec())).unwrap())
            .collect()
    }

    #[test]
    fn values_expire_and_refresh() {
        let stored = value(Some(10), b"x");
        let header = value_header(&stored).unwrap();
        assert!(header.is_live(9) && !header.is_live(10));
        assert_eq!(&stored[header.payload_start..], b"x");
        assert_eq!(clean(&stored, 10, None), Ok(Cleaned::Drop));
        assert_eq!(clean(&stored, 5, None), Ok(Cleaned::Keep));
        assert_eq!(
            clean(&stored, 5, Some(20)),
            Ok(Cleaned::Rewrite(value(Some(20), b"x")))
        );
        assert_eq!(clean(&value(None, b"x"), 5, Some(20)), Ok(Cleaned::Keep));
    }

    #[test]
    fn lists_drop_expired_elements() {
        let stored = list(&[(Some(5), b"a"), (None, b"b"), (Some(20), b"c")]);
        assert_eq!(clean(&stored, 1, None), Ok(Cleaned::Keep));
        let Ok(Cleaned::Rewrite(cleaned)) = clean(&stored, 10, Some(30)) else {
            panic!("expected a rewrite");
        };
        assert_eq!(
            payloads(&cleaned),
            vec![(None, b"b".to_vec()), (Some(30), b"c".to_vec())]
        );
        assert_eq!(clean(&list(&[(Some(5), b"a")]), 5, None), Ok(Cleaned::Drop));
        assert_eq!(clean(&list(&[]), 0, None), Ok(Cleaned::Drop));
    }

    #[test]
    fn merges_concatenate_live_elements() {
        let base = list(&[(Some(5), b"a"), (None, b"b")]);
        let operand = list(&[(None, b"c")]);
        let all = merge_lists(Some(&base), [operand.as_slice()].into_iter(), None).unwrap();
        assert_eq!(payloads(&all).len(), 3);
        let live = merge_lists(Some(&base), [operand.as_slice()].into_iter(), Some(6)).unwrap();
        assert_eq!(
            payloads(&live),
            vec![(None, b"b".to_vec()), (None, b"c".to_vec())]
        );
    }

    #[test]
    fn corrupt_values_are_refused() {
        assert!(value_header(&[]).is_err());
        assert!(value_header(&[EXPIRING, 1, 2]).is_err());
        assert!(value_header(&[9]).is_err());
        assert!(clean(&[LIST, 5, PLAIN], 0, None).is_err());
        assert!(merge_lists(Some(&[PLAIN]), std::iter::empty(), None).is_err());
    }
}
