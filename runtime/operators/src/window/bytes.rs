//! The byte layout of window state in snapshots: fixed-width little-endian numbers and
//! length-prefixed byte strings, read back with every length checked.

pub(crate) fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Floats by their bits, so that NaN (the identity of MIN and MAX) and -0.0 come back as they
/// were.
pub(crate) fn put_f64(out: &mut Vec<u8>, value: f64) {
    put_u64(out, value.to_bits());
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads what the `put_` functions wrote; errors say what was being read.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

pub(crate) type Malformed = String;

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], Malformed> {
        match self.rest.split_at_checked(len) {
            Some((taken, rest)) => {
                self.rest = rest;
                Ok(taken)
            }
            None => Err(format!(
                "{what} needs {len} bytes, {} are left",
                self.rest.len()
            )),
        }
    }

    fn word(&mut self, what: &str) -> Result<[u8; 8], Malformed> {
        let bytes = self.take(8, what)?;
        let mut word = [0; 8];
        word.copy_from_slice(bytes);
        Ok(word)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, Malformed> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, Malformed> {
        self.word(what).map(u64::from_le_bytes)
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, Malformed> {
        self.word(what).map(i64::from_le_bytes)
    }

    pub(crate) fn f64(&mut self, what: &str) -> Result<f64, Malformed> {
        self.u64(what).map(f64::from_bits)
    }

    pub(crate) fn bool(&mut self, what: &str) -> Result<bool, Malformed> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("{what} is {other}, not a boolean")),
        }
    }

    /// A count of items of at least `item_len` bytes each, checked against what is left so that
    /// a damaged count cannot make the caller reserve memory for items that are not there.
    pub(crate) fn count(&mut self, item_len: usize, what: &str) -> Result<usize, Malformed> {
        let count = self.u64(what)?;
        match usize::try_from(count) {
            Ok(count) if count.saturating_mul(item_len) <= self.rest.len() => Ok(count),
            _ => Err(format!(
                "{what} is {count}, more than the {} bytes left hold",
                self.rest.len()
            )),
        }
    }

    pub(crate) fn bytes(&mut self, what: &str) -> Result<&'a [u8], Malformed> {
        let len = self.count(1, what)?;
        self.take(len, what)
    }

    pub(crate) fn finish(&self, what: &str) -> Result<(), Malformed> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes follow {what}", self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_input_is_refused() {
        let mut out = Vec::new();
        put_i64(&mut out, -5);
        put_f64(&mut out, f64::NAN);
        put_bytes(&mut out, b"abc");
        out.push(1);
        let mut reader = Reader::new(&out);
        assert_eq!(reader.i64("a").unwrap(), -5);
        assert!(reader.f64("b").unwrap().is_nan());
        assert_eq!(reader.bytes("c").unwrap(), b"abc");
        assert!(reader.bool("d").unwrap());
        reader.finish("all").unwrap();

        let mut short = Reader::new(&out[..out.len() - 3]);
        short.i64("a").unwrap();
        short.f64("b").unwrap();
        let err = short.bytes("the value").unwrap_err();
        assert!(err.contains("the value"), "{err}");
        let mut huge = Vec::new();
        put_u64(&mut huge, u64::MAX);
        assert!(Reader::new(&huge).count(8, "n").is_err());
    }
}
