//! LEB128 lengths: most keys and values are short, so one length byte is the common case.

pub(crate) fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The value at the start of `bytes` and how many bytes it took; `None` if truncated or longer
/// than a `u64`.
pub(crate) fn get(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return None;
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Splits a length-prefixed field off the front of `bytes`.
pub(crate) fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, used) = get(bytes)?;
    let rest = &bytes[used..];
    let len = usize::try_from(len).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_truncation() {
        for value in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put(&mut out, value);
            assert_eq!(get(&out), Some((value, out.len())));
            assert_eq!(get(&out[..out.len() - 1]), None);
        }
        assert_eq!(get(&[0xff; 11]), None);
    }

    #[test]
    fn fields_are_bounded_by_the_input() {
        let mut out = Vec::new();
        put(&mut out, 3);
        out.extend_from_slice(b"abcd");
        assert_eq!(split_field(&out), Some((&b"abc"[..], &b"d"[..])));
        assert_eq!(split_field(&out[..3]), None);
    }
}
