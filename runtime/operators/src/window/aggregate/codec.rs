//! The accumulators of one window in a snapshot: for each aggregate in order, a tag naming the
//! kind of state it keeps, then that state for the window's slot. The tag makes a snapshot of a
//! window with other aggregates fail to restore rather than restore as nonsense.

use super::{Accumulators, Fold, Folded, State, Texts};
use crate::window::bytes::{Malformed, Reader, put_bytes, put_f64, put_i64};

impl Accumulators {
    /// Appends the state of `slot`.
    pub(crate) fn encode(&self, slot: u32, out: &mut Vec<u8>) {
        for state in &self.states {
            out.push(state.tag());
            state.encode(slot as usize, out);
        }
    }

    /// A fresh slot holding the state `encode` wrote; nothing is allocated if it cannot be read.
    pub(crate) fn decode_new(&mut self, bytes: &[u8]) -> Result<u32, Malformed> {
        let slot = self.alloc();
        match self.decode(slot, bytes) {
            Ok(()) => Ok(slot),
            Err(reason) => {
                self.free(&[slot]);
                Err(reason)
            }
        }
    }

    /// Gives `slot`, just allocated, the state `encode` wrote for the same aggregates.
    pub(crate) fn decode(&mut self, slot: u32, bytes: &[u8]) -> Result<(), Malformed> {
        let mut reader = Reader::new(bytes);
        for (index, state) in self.states.iter_mut().enumerate() {
            let what = format!("the state of aggregate {}", index + 1);
            let tag = reader.u8(&what)?;
            if tag != state.tag() {
                return Err(format!(
                    "{what} is of kind {tag}, but this window keeps kind {} there: the \
                     window's aggregates differ from those that wrote the snapshot",
                    state.tag()
                ));
            }
            state.decode(slot as usize, &mut reader, &what)?;
        }
        reader.finish("the accumulators")
    }
}

impl State {
    /// Stable numbers of the kinds of state; snapshots hold them.
    fn tag(&self) -> u8 {
        match self {
            State::Count(_) => 1,
            State::SumInt(_) => 2,
            State::SumFloat(_) => 3,
            State::MinInt(_) => 4,
            State::MaxInt(_) => 5,
            State::MinFloat(_) => 6,
            State::MaxFloat(_) => 7,
            State::Avg { .. } => 8,
            State::DistinctWords(_) => 9,
            State::DistinctRows(_) => 10,
            State::Text(t) if t.greatest => 12,
            State::Text(_) => 11,
        }
    }

    fn encode(&self, slot: usize, out: &mut Vec<u8>) {
        match self {
            State::Count(counts) => put_i64(out, counts[slot]),
            State::SumInt(f) => f.encode(slot, out),
            State::SumFloat(f) => f.encode(slot, out),
            State::MinInt(f) => f.encode(slot, out),
            State::MaxInt(f) => f.encode(slot, out),
            State::MinFloat(f) => f.encode(slot, out),
            State::MaxFloat(f) => f.encode(slot, out),
            State::Text(t) => t.encode(slot, out),
            State::Avg { sums, counts } => {
                put_f64(out, sums[slot]);
                put_i64(out, counts[slot]);
            }
            State::DistinctWords(d) => d.encode(slot, out),
            State::DistinctRows(d) => d.encode(slot, out),
        }
    }

    fn decode(
        &mut self,
        slot: usize,
        reader: &mut Reader<'_>,
        what: &str,
    ) -> Result<(), Malformed> {
        match self {
            State::Count(counts) => counts[slot] = reader.i64(what)?,
            State::SumInt(f) => f.decode(slot, reader, what)?,
            State::SumFloat(f) => f.decode(slot, reader, what)?,
            State::MinInt(f) => f.decode(slot, reader, what)?,
            State::MaxInt(f) => f.decode(slot, reader, what)?,
            State::MinFloat(f) => f.decode(slot, reader, what)?,
            State::MaxFloat(f) => f.decode(slot, reader, what)?,
            State::Text(t) => t.decode(slot, reader, what)?,
            State::Avg { sums, counts } => {
                sums[slot] = reader.f64(what)?;
                counts[slot] = reader.i64(what)?;
            }
            State::DistinctWords(d) => d.decode(slot, reader, what)?,
            State::DistinctRows(d) => d.decode(slot, reader, what)?,
        }
        Ok(())
    }
}

/// The values folds keep, as eight bytes each.
pub(super) trait Word: Sized {
    fn put(self, out: &mut Vec<u8>);
    fn read(reader: &mut Reader<'_>, what: &str) -> Result<Self, Malformed>;
}

impl Word for i64 {
    fn put(self, out: &mut Vec<u8>) {
        put_i64(out, self);
    }

    fn read(reader: &mut Reader<'_>, what: &str) -> Result<Self, Malformed> {
        reader.i64(what)
    }
}

impl Word for f64 {
    fn put(self, out: &mut Vec<u8>) {
        put_f64(out, self);
    }

    fn read(reader: &mut Reader<'_>, what: &str) -> Result<Self, Malformed> {
        reader.f64(what)
    }
}

impl<F: Fold> Folded<F>
where
    F::T: Word,
{
    fn encode(&self, slot: usize, out: &mut Vec<u8>) {
        out.push(u8::from(self.seen[slot]));
        self.values[slot].put(out);
    }

    fn decode(
        &mut self,
        slot: usize,
        reader: &mut Reader<'_>,
        what: &str,
    ) -> Result<(), Malformed> {
        self.seen[slot] = reader.bool(what)?;
        self.values[slot] = F::T::read(reader, what)?;
        Ok(())
    }
}

impl Texts {
    fn encode(&self, slot: usize, out: &mut Vec<u8>) {
        out.push(u8::from(self.values[slot].is_some()));
        if let Some(value) = &self.values[slot] {
            put_bytes(out, value.as_bytes());
        }
    }

    fn decode(
        &mut self,
        slot: usize,
        reader: &mut Reader<'_>,
        what: &str,
    ) -> Result<(), Malformed> {
        self.values[slot] = match reader.bool(what)? {
            false => None,
            true => {
                let bytes = reader.bytes(what)?;
                let text = std::str::from_utf8(bytes)
                    .map_err(|e| format!("{what} is not a UTF-8 string: {e}"))?;
                Some(text.to_owned())
            }
        };
        Ok(())
    }
}
