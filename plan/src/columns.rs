//! Columns: the plan's large lists kept as a few flat buffers.
//!
//! A directory puts hundreds of thousands of names and numbers into a plan.
//! Stored one value at a time, loading them costs a varint decode, an
//! allocation or a push each. Stored as columns — numbers as little-endian
//! bytes, strings end to end in one `String` — loading a column is one
//! copy and one pass that checks it, and building it is a few appends.
//! Each column checks its own shape when a plan is loaded
//! ([`crate::Plan::from_bytes`]); reading a damaged one gives `None`, never
//! a panic.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Raw bytes, serialized as one byte string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(bytes.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(bytes))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// `u32`s as their little-endian bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct U32s(Bytes);

impl U32s {
    /// Room for `n` numbers.
    pub(crate) fn with_capacity(n: usize) -> U32s {
        U32s(Bytes(Vec::with_capacity(n * 4)))
    }

    /// `n` times `value`.
    pub(crate) fn filled(value: u32, n: usize) -> U32s {
        U32s(Bytes(value.to_le_bytes().repeat(n)))
    }

    pub(crate) fn push(&mut self, value: u32) {
        self.0 .0.extend_from_slice(&value.to_le_bytes());
    }

    /// Number `i`.
    pub(crate) fn get(&self, i: usize) -> Option<u32> {
        let bytes = self.0 .0.get(i.checked_mul(4)?..)?.get(..4)?;
        let mut word = [0; 4];
        word.copy_from_slice(bytes);
        Some(u32::from_le_bytes(word))
    }

    /// Sets number `i`, if there is one.
    pub(crate) fn set(&mut self, i: usize, value: u32) {
        let slot = i
            .checked_mul(4)
            .and_then(|at| self.0 .0.get_mut(at..)?.get_mut(..4));
        if let Some(slot) = slot {
            slot.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// How many numbers there are (whole ones; see [`Self::is_whole`]).
    pub(crate) fn len(&self) -> usize {
        self.0 .0.len() / 4
    }

    /// Whether the bytes are whole numbers.
    pub(crate) fn is_whole(&self) -> bool {
        self.0 .0.len().is_multiple_of(4)
    }

    /// The numbers in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0 .0.chunks_exact(4).map(|w| {
            let mut word = [0; 4];
            word.copy_from_slice(w);
            u32::from_le_bytes(word)
        })
    }
}

/// Strings end to end in one `String`, with where each ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Strings {
    text: String,
    ends: U32s,
}

impl Strings {
    /// Room for `n` strings of `bytes` bytes in all.
    pub(crate) fn with_capacity(n: usize, bytes: usize) -> Strings {
        Strings {
            text: String::with_capacity(bytes),
            ends: U32s::with_capacity(n),
        }
    }

    /// Appends a string. Text beyond 4 GiB is not supported: its end
    /// saturates, and the column no longer passes [`Self::is_consistent`].
    pub(crate) fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    /// String `i`.
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        let start = match i.checked_sub(1) {
            Some(previous) => self.ends.get(previous)?,
            None => 0,
        };
        let end = self.ends.get(i)?;
        self.text.get(start as usize..end as usize)
    }

    /// How many strings there are.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether every string can be read: the ends are whole numbers, never
    /// go back, stay inside the text, end exactly at its end and fall on
    /// character boundaries.
    pub(crate) fn is_consistent(&self) -> bool {
        let mut previous = 0;
        let ends_ok = self.ends.iter().all(|end| {
            let ok = end >= previous && self.text.is_char_boundary(end as usize);
            previous = end;
            ok
        });
        self.ends.is_whole() && ends_ok && previous as usize == self.text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_as_one_byte_string() {
        let mut numbers = U32s::with_capacity(3);
        for n in [0, 7, u32::MAX] {
            numbers.push(n);
        }
        numbers.set(1, 8);
        numbers.set(3, 9);
        assert_eq!(numbers.iter().collect::<Vec<_>>(), [0, 8, u32::MAX]);
        assert_eq!((numbers.get(2), numbers.get(3)), (Some(u32::MAX), None));
        let bytes = postcard::to_stdvec(&numbers).expect("encodes");
        assert_eq!(bytes.len(), 1 + 12, "a length, then the bytes");
        assert_eq!(postcard::from_bytes::<U32s>(&bytes).ok(), Some(numbers));
        assert_eq!(U32s::filled(5, 2).iter().collect::<Vec<_>>(), [5, 5]);
    }

    #[test]
    fn strings_end_to_end() {
        let mut strings = Strings::with_capacity(3, 8);
        for s in ["alice", "", "bé"] {
            strings.push(s);
        }
        assert!(strings.is_consistent());
        assert_eq!(strings.len(), 3);
        let all: Vec<Option<&str>> = (0..4).map(|i| strings.get(i)).collect();
        assert_eq!(all, [Some("alice"), Some(""), Some("bé"), None]);
        let bytes = postcard::to_stdvec(&strings).expect("encodes");
        assert_eq!(postcard::from_bytes::<Strings>(&bytes).ok(), Some(strings));
    }

    #[test]
    fn damaged_columns_are_found_and_read_as_nothing() {
        let damaged = |ends: &[u32], text: &str| {
            let mut numbers = U32s::default();
            ends.iter().for_each(|&e| numbers.push(e));
            Strings {
                text: text.to_owned(),
                ends: numbers,
            }
        };
        for strings in [
            damaged(&[3, 2], "abc"),
            damaged(&[9], "abc"),
            damaged(&[1], "abc"),
            damaged(&[1, 3], "éb"),
        ] {
            assert!(!strings.is_consistent(), "{strings:?}");
            for i in 0..3 {
                let _ = strings.get(i);
            }
        }
        let mut partial = U32s::default();
        partial.0 .0.extend_from_slice(&[1, 2, 3]);
        assert!(!partial.is_whole());
        assert_eq!((partial.len(), partial.get(0)), (0, None));
    }
}
