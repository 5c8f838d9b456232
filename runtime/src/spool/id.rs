//! Message IDs: time-sortable, unique, safe as file names.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The ID of a spooled message, e.g. `00062a1b2c3d4e5f-0000002a-9f3c01d2`.
///
/// Three lowercase hex fields: microseconds since the Unix epoch (16
/// digits), a per-process counter (8 digits) and 32 random bits (8 digits).
/// IDs sort by creation time; the counter keeps IDs of one process unique
/// when the clock does not advance, the random part keeps IDs of different
/// processes (a restart after the clock went backwards) apart. Only IDs of
/// exactly this shape are accepted by [`MessageId::parse`], so an ID never
/// names a path outside the spool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(String);

/// The length of an ID in characters.
pub const LEN: usize = 16 + 1 + 8 + 1 + 8;

impl MessageId {
    /// A new, unique ID.
    pub fn generate() -> MessageId {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        static SEED: OnceLock<RandomState> = OnceLock::new();
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        // RandomState is seeded from the OS once per process; hashing the
        // counter and time through it gives fresh bits for every ID.
        let mut h = SEED.get_or_init(RandomState::new).build_hasher();
        h.write_u32(count);
        h.write_u64(micros);
        let random = h.finish() as u32;
        MessageId(format!("{micros:016x}-{count:08x}-{random:08x}"))
    }

    /// Parses an ID as written by [`MessageId::generate`]; `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<MessageId> {
        let b = text.as_bytes();
        let ok = b.len() == LEN
            && b.iter().enumerate().all(|(i, &c)| match i {
                16 | 25 => c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            });
        ok.then(|| MessageId(text.to_owned()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort() {
        let a = MessageId::generate();
        let b = MessageId::generate();
        assert!(a < b, "{a} < {b}");
        assert_eq!(MessageId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "",
            "../../etc/passwd",
            "00062a1b2c3d4e5f-0000002a-9f3c01d",
            "00062A1B2C3D4E5F-0000002a-9f3c01d2",
            "00062a1b2c3d4e5f/0000002a-9f3c01d2",
        ] {
            assert_eq!(MessageId::parse(bad), None, "{bad}");
        }
    }
}
