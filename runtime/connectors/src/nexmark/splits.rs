//! Splits of a generated stream: split `k` of `n`, named `"k/n"`, owns the items (events, rows)
//! numbered ≡ k mod n. (Shared with `datagen`.)

use spate_api::{OperatorError, Result, Split};

pub(crate) fn split_ids(n: u32) -> Vec<Split> {
    (0..n).map(|k| Split::new(format!("{k}/{n}"))).collect()
}

/// The split numbers `k` of `splits`, ascending, and their common `n`. No splits: nothing owned.
pub(crate) fn parse_splits(source: &str, splits: &[Split]) -> Result<(Vec<u64>, u64)> {
    let mut owned = Vec::with_capacity(splits.len());
    let mut total = 1;
    for split in splits {
        let parsed = split
            .id
            .split_once('/')
            .and_then(|(k, n)| Some((k.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
        match parsed {
            Some((k, n)) if k < n && (owned.is_empty() || n == total) => {
                owned.push(k);
                total = n;
            }
            _ => {
                return Err(OperatorError::invalid(format!(
                    "{source}: malformed or inconsistent split '{}'",
                    split.id
                )));
            }
        }
    }
    owned.sort_unstable();
    owned.dedup();
    Ok((owned, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_mixtures() {
        let ids = split_ids(4);
        assert_eq!(
            parse_splits("s", &[ids[3].clone(), ids[1].clone()]).unwrap(),
            (vec![1, 3], 4)
        );
        assert!(parse_splits("s", &[ids[0].clone(), split_ids(3)[1].clone()]).is_err());
        assert!(parse_splits("s", &[Split::new("4/4")]).is_err());
    }
}
