//! The string material of events: fixed word lists from the spec, and tables built once per
//! process (a pool of random letters, the bid channels and their URLs) so that hot paths slice
//! strings instead of allocating them.

use std::sync::LazyLock;

use super::rng::Rng;

pub(crate) const US_STATES: &[&str] = &["AZ", "CA", "ID", "OR", "WA", "WY"];
pub(crate) const US_CITIES: &[&str] = &[
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
pub(crate) const FIRST_NAMES: &[&str] = &[
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
pub(crate) const LAST_NAMES: &[&str] = &[
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];

/// Half the bids come through one of these channels.
pub(crate) const HOT_CHANNELS: &[&str] = &["Google", "Facebook", "Baidu", "Apple"];
/// The other half through one of this many `channel-N`.
pub(crate) const NUM_CHANNELS: u64 = 10_000;

/// Longer than any `extra` the default sizes ask for (auctions: up to about 470 bytes), with room
/// for many distinct offsets.
const POOL_LEN: usize = 1 << 16;

/// The process-wide tables. They come from a fixed seed: the spec draws them from an unseeded
/// generator, which would make runs differ.
pub(crate) struct Tables {
    /// Random lowercase letters; `extra` strings are slices of it.
    letters: String,
    /// `(channel, url)` of the hot channels, then of `channel-0` .. `channel-9999`.
    channels: Vec<(String, String)>,
}

static TABLES: LazyLock<Tables> = LazyLock::new(Tables::build);

pub(crate) fn tables() -> &'static Tables {
    &TABLES
}

impl Tables {
    fn build() -> Tables {
        let mut rng = Rng::for_index(0x4E45_584D_4152_4B21, 0);
        let letters = (0..POOL_LEN)
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect();
        let mut channels: Vec<(String, String)> = HOT_CHANNELS
            .iter()
            .map(|c| (c.to_string(), base_url(&mut rng)))
            .collect();
        for n in 0..NUM_CHANNELS as u32 {
            let mut url = base_url(&mut rng);
            // As in the spec, 9 in 10 channel URLs carry a channel id (the bit-reversed number).
            if rng.below(10) > 0 {
                url.push_str(&format!(
                    "&channel_id={}",
                    (n.reverse_bits() as i32).unsigned_abs()
                ));
            }
            channels.push((format!("channel-{n}"), url));
        }
        Tables { letters, channels }
    }

    /// A string of `len` random letters (at most the pool's length), chosen by `rng`.
    pub(crate) fn letters(&self, rng: &mut Rng, len: usize) -> &str {
        let start = rng.below((self.letters.len() - len + 1) as u64) as usize;
        &self.letters[start..start + len]
    }

    /// Channel and URL of a bid: one of the hot channels half of the time.
    pub(crate) fn channel(&self, rng: &mut Rng) -> (&str, &str) {
        let hot = HOT_CHANNELS.len() as u64;
        let index = if rng.below(2) > 0 {
            rng.below(hot)
        } else {
            hot + rng.below(NUM_CHANNELS)
        };
        let (channel, url) = &self.channels[index as usize];
        (channel, url)
    }
}

fn base_url(rng: &mut Rng) -> String {
    let mut url = String::from("https://www.nexmark.com/");
    for _ in 0..3 {
        push_random_word(&mut url, rng, 5, '_');
        url.push('/');
    }
    url.push_str("item.htm?query=1");
    url
}

/// The spec's `nextString`: 3 to `max_len − 1` characters, each a letter or (1 in 13) `special`,
/// with spaces trimmed from both ends.
pub(crate) fn push_random_word(out: &mut String, rng: &mut Rng, max_len: u64, special: char) {
    let len = 3 + rng.below(max_len - 3);
    let start = out.len();
    for _ in 0..len {
        if rng.below(13) == 0 {
            out.push(special);
        } else {
            out.push((b'a' + rng.below(26) as u8) as char);
        }
    }
    let end = out.trim_end().len().max(start);
    out.truncate(end);
    let lead = out[start..].len() - out[start..].trim_start().len();
    out.drain(start..start + lead);
}

pub(crate) fn random_word(rng: &mut Rng, max_len: u64) -> String {
    let mut s = String::with_capacity(max_len as usize);
    push_random_word(&mut s, rng, max_len, ' ');
    s
}

/// The length of `extra` for an event whose other fields take `current` bytes, so that events
/// average `average` bytes: uniform within ±20% of the difference (the spec's `nextExtra`).
pub(crate) fn extra_len(rng: &mut Rng, current: u64, average: u64) -> usize {
    if current > average {
        return 0;
    }
    let wanted = average - current;
    let delta = (wanted as f64 * 0.2).round() as u64;
    let len = wanted - delta + if delta == 0 { 0 } else { rng.below(2 * delta) };
    len.min(POOL_LEN as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_trimmed_and_bounded() {
        for i in 0..1000 {
            let w = random_word(&mut Rng::for_index(3, i), 20);
            assert!(w.len() <= 19 && w == w.trim(), "{w:?}");
        }
    }

    #[test]
    fn extra_lengths_center_on_the_average() {
        let mut rng = Rng::for_index(1, 2);
        let lens: Vec<usize> = (0..10_000).map(|_| extra_len(&mut rng, 32, 100)).collect();
        let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
        assert!((66.0..69.0).contains(&mean), "{mean}");
        assert!(lens.iter().all(|&l| (54..82).contains(&l)));
        assert_eq!(extra_len(&mut rng, 300, 100), 0);
    }

    #[test]
    fn channel_urls_look_like_the_spec() {
        let t = tables();
        let mut hot = 0;
        for i in 0..1000 {
            let (channel, url) = t.channel(&mut Rng::for_index(5, i));
            assert!(url.starts_with("https://www.nexmark.com/"), "{url}");
            hot += HOT_CHANNELS.contains(&channel) as u32;
        }
        assert!((400..600).contains(&hot), "{hot}");
    }
}
