//! The recipient table: every local SMTP address, hashed at compile time.
//!
//! A directory can hold hundreds of thousands of addresses. Rather than a
//! list scanned at run time or a map rebuilt at load, the compiler builds an
//! open-addressing hash table with a fixed, seedless hash (FNV-1a 64), so
//! loading is three columns (see [`crate::columns`]) and lookup is a probe
//! or two. All keys live end to end in one `String`, in the order they were
//! given.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::address::parse_mailbox;
use crate::columns::{Strings, U32s};
use crate::recipient::Target;

/// Marks an empty slot.
const EMPTY: u32 = u32::MAX;

/// Marks a group's index among the packed targets.
const GROUP: u32 = 1 << 31;

/// A compile-time hash table from normalized address to [`Target`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct RecipientTable {
    /// The keys, in hash order.
    keys: Strings,
    /// The target of each key, packed: a mailbox's index, or a group's
    /// with [`GROUP`] set.
    targets: U32s,
    /// Power-of-two slot array holding entry indices or [`EMPTY`]; at most
    /// half full, linear probing.
    slots: U32s,
}

/// A target as one number. An index of 2^31 or more (no configuration has
/// that many recipients) saturates to one that exists nowhere.
fn pack(target: Target) -> u32 {
    match target {
        Target::Mailbox(i) => i.min(GROUP - 1),
        Target::Group(i) => GROUP | i.min(GROUP - 1),
    }
}

fn unpack(packed: u32) -> Target {
    if packed & GROUP == 0 {
        Target::Mailbox(packed)
    } else {
        Target::Group(packed & !GROUP)
    }
}

/// Two entries with the same normalized address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// The normalized address.
    pub key: String,
    /// The target given first.
    pub first: Target,
    /// The other target.
    pub second: Target,
}

impl std::fmt::Display for DuplicateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the address {} belongs to two recipients", self.key)
    }
}

impl std::error::Error for DuplicateKey {}

/// The lookup key of an address: the local part as written (quoted local
/// parts in their shortest form, so `"alice"@x` and `alice@x` agree), the
/// domain lowercased without a trailing dot. Text that is not a valid
/// mailbox is keyed the same way by splitting at the last `@`.
pub fn normalize_address(address: &str) -> String {
    normalized_address(address).into_owned()
}

/// [`normalize_address`], borrowing `address` when it is its own key, as
/// nearly every address is.
pub fn normalized_address(address: &str) -> Cow<'_, str> {
    if is_plain_key(address) {
        return Cow::Borrowed(address);
    }
    Cow::Owned(normalize_by_parsing(address))
}

/// True for the everyday address that is its own key: an unquoted local
/// part and a lowercase ASCII domain name without trailing dot. Both ways
/// of keying below leave such an address unchanged, so the parse is skipped.
fn is_plain_key(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.bytes().any(|b| matches!(b, b'"' | b'\\' | b'@'))
        && !domain.is_empty()
        && !domain.ends_with('.')
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

fn normalize_by_parsing(address: &str) -> String {
    match parse_mailbox(address) {
        Ok(parsed) => parsed.key(),
        Err(_) => match address.rsplit_once('@') {
            Some((local, domain)) => {
                let domain = domain.strip_suffix('.').unwrap_or(domain).to_lowercase();
                format!("{local}@{domain}")
            }
            None => address.to_owned(),
        },
    }
}

/// FNV-1a, 64 bit: fixed and seedless, so the table is the same on every
/// build and every machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A table being built: entries go in one after the other, keys and
/// targets in that order, each key once. Nothing is sorted and the keys are
/// copied in order; the slots, at most half full, are found by probing, with
/// each entry's hash kept aside so that a probe compares keys only where
/// the hashes agree.
struct Builder {
    table: RecipientTable,
    hashes: Vec<u64>,
    mask: usize,
}

impl Builder {
    /// Room for `entries`.
    fn new<K: AsRef<str>>(entries: &[(K, Target)]) -> Builder {
        if entries.is_empty() {
            return Builder {
                table: RecipientTable::default(),
                hashes: Vec::new(),
                mask: 0,
            };
        }
        let slot_count = (entries.len() * 2).next_power_of_two();
        let key_bytes = entries.iter().map(|(key, _)| key.as_ref().len()).sum();
        Builder {
            table: RecipientTable {
                keys: Strings::with_capacity(entries.len(), key_bytes),
                targets: U32s::with_capacity(entries.len()),
                slots: U32s::filled(EMPTY, slot_count),
            },
            hashes: Vec::with_capacity(entries.len()),
            mask: slot_count - 1,
        }
    }

    /// Adds `key` for `target`; when the key is in already, leaves the
    /// table as it is and gives the target it has.
    fn insert(&mut self, key: &str, target: Target) -> Result<(), Target> {
        let hash = fnv1a(key.as_bytes());
        let mut slot = (hash as usize) & self.mask;
        while let Some(index) = self.table.slots.get(slot).filter(|&i| i != EMPTY) {
            let index = index as usize;
            if self.hashes.get(index) == Some(&hash) && self.table.keys.get(index) == Some(key) {
                let first = self.table.targets.get(index).map_or(target, unpack);
                return Err(first);
            }
            slot = (slot + 1) & self.mask;
        }
        self.table.slots.set(slot, to_u32(self.hashes.len()));
        self.table.keys.push(key);
        self.table.targets.push(pack(target));
        self.hashes.push(hash);
        Ok(())
    }
}

impl RecipientTable {
    /// Builds the table. Keys are normalized with [`normalize_address`];
    /// the same entries in the same order always give the same table.
    pub fn build(
        entries: impl IntoIterator<Item = (String, Target)>,
    ) -> Result<RecipientTable, DuplicateKey> {
        RecipientTable::build_normalized(
            entries
                .into_iter()
                .map(|(key, target)| (normalize_address(&key), target))
                .collect(),
        )
    }

    /// Builds the table from keys already normalized with
    /// [`normalize_address`] (as the compiler keeps them), skipping the
    /// second normalization that [`Self::build`] does. A key that is not
    /// normalized is stored as given and never found by a lookup of a
    /// normalized address.
    pub fn build_normalized<K: AsRef<str>>(
        entries: Vec<(K, Target)>,
    ) -> Result<RecipientTable, DuplicateKey> {
        let mut builder = Builder::new(&entries);
        for (key, target) in &entries {
            if let Err(first) = builder.insert(key.as_ref(), *target) {
                return Err(DuplicateKey {
                    key: key.as_ref().to_owned(),
                    first,
                    second: *target,
                });
            }
        }
        Ok(builder.table)
    }

    /// Builds the table from normalized keys, keeping the first entry of a
    /// key given more than once (the compiler's choice for an address listed
    /// twice on one recipient, which is only a warning).
    pub fn build_first_wins<K: AsRef<str>>(entries: Vec<(K, Target)>) -> RecipientTable {
        let mut builder = Builder::new(&entries);
        for (key, target) in &entries {
            // A key already in keeps its first target.
            let _ = builder.insert(key.as_ref(), *target);
        }
        builder.table
    }

    /// The target of an already normalized address.
    ///
    /// Never panics, even on a table that was not made by [`Self::build`].
    pub fn lookup(&self, normalized: &str) -> Option<Target> {
        let count = self.slots.len();
        if count == 0 {
            return None;
        }
        let mut slot = (fnv1a(normalized.as_bytes()) % count as u64) as usize;
        for _ in 0..count {
            let index = self.slots.get(slot)?;
            if index == EMPTY {
                return None;
            }
            if self.keys.get(index as usize) == Some(normalized) {
                return self.targets.get(index as usize).map(unpack);
            }
            slot = (slot + 1) % count;
        }
        None
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the table holds no address.
    pub fn is_empty(&self) -> bool {
        self.targets.len() == 0
    }

    /// All addresses and their targets, in the order they were given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Target)> + '_ {
        (self.targets.iter().enumerate()).map_while(|(i, t)| Some((self.keys.get(i)?, unpack(t))))
    }

    /// Whether every key can be read, every slot points at one, some slot
    /// is empty and every target is below `mailboxes` or `groups`; used
    /// when a plan is loaded.
    pub(crate) fn is_consistent(&self, mailboxes: usize, groups: usize) -> bool {
        let n = self.targets.len();
        let targets_ok = self.targets.iter().all(|t| match unpack(t) {
            Target::Mailbox(m) => (m as usize) < mailboxes,
            Target::Group(g) => (g as usize) < groups,
        });
        let slots_ok = self.slots.iter().all(|s| s == EMPTY || (s as usize) < n)
            && (n == 0 || self.slots.len() > n);
        self.keys.is_consistent()
            && self.keys.len() == n
            && self.targets.is_whole()
            && self.slots.is_whole()
            && targets_ok
            && slots_ok
    }
}

/// Converts a length to `u32`; tables beyond 4 GiB of keys are not supported
/// and saturate (lookups then fail rather than panic).
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_every_key_and_nothing_else() {
        let entries: Vec<(String, Target)> = (0..1000)
            .map(|i| (format!("user{i}@Example.COM."), Target::Mailbox(i)))
            .collect();
        let table = RecipientTable::build(entries).expect("no duplicates");
        assert_eq!(table.len(), 1000);
        assert!(table.is_consistent(1000, 0));
        for i in 0..1000 {
            assert_eq!(
                table.lookup(&format!("user{i}@example.com")),
                Some(Target::Mailbox(i))
            );
        }
        assert_eq!(table.lookup("user1000@example.com"), None);
        // The local part is case-sensitive.
        assert_eq!(table.lookup("USER1@example.com"), None);
    }

    #[test]
    fn plain_keys_skip_the_parse_without_changing_the_result() {
        for address in [
            "alice@example.com",
            "A.Smith@example.com",
            "a..b@example.com",
            ".a@example.com",
            "user%foreign.example@local.example",
            "foreign!user@local.example",
            "a+tag@sub.example-1.com",
            "x@y",
            "x@-bad-.example",
            "x@a..b",
        ] {
            assert!(is_plain_key(address), "{address}");
            assert!(matches!(normalized_address(address), Cow::Borrowed(_)));
            assert_eq!(
                normalize_address(address),
                normalize_by_parsing(address),
                "{address}"
            );
        }
        for address in [
            "\"a b\"@x.example",
            "a@X.example",
            "a@x.example.",
            "a@[1.2.3.4]",
            "a@b@c",
            "@x",
            "a@",
        ] {
            assert!(!is_plain_key(address), "{address}");
        }
    }

    #[test]
    fn first_definition_wins_when_asked() {
        let entries = vec![
            ("a@x.example".to_owned(), Target::Mailbox(3)),
            ("b@x.example".to_owned(), Target::Group(0)),
            ("a@x.example".to_owned(), Target::Mailbox(1)),
        ];
        assert!(RecipientTable::build_normalized(entries.clone()).is_err());
        let table = RecipientTable::build_first_wins(entries);
        assert_eq!(table.len(), 2);
        assert_eq!(table.lookup("a@x.example"), Some(Target::Mailbox(3)));
        assert_eq!(table.lookup("b@x.example"), Some(Target::Group(0)));
    }

    #[test]
    fn the_same_entries_give_the_same_table_and_any_order_the_same_answers() {
        let a: Vec<(String, Target)> = (0..300)
            .map(|i| (format!("u{i}@x.example"), Target::Mailbox(i)))
            .collect();
        assert_eq!(
            RecipientTable::build(a.clone()),
            RecipientTable::build(a.clone())
        );
        let mut b = a.clone();
        b.reverse();
        let (a, b) = (RecipientTable::build(a), RecipientTable::build(b));
        let (a, b) = (a.expect("distinct"), b.expect("distinct"));
        assert_eq!(
            a.iter().next(),
            Some(("u0@x.example", Target::Mailbox(0))),
            "in order"
        );
        for i in 0..300 {
            let key = format!("u{i}@x.example");
            assert_eq!(a.lookup(&key), b.lookup(&key));
        }
    }

    #[test]
    fn prenormalized_keys_give_the_same_table() {
        let raw = vec![
            ("Bob@EXAMPLE.org.".to_owned(), Target::Mailbox(1)),
            ("\"alice\"@example.com".to_owned(), Target::Group(0)),
        ];
        let normalized = raw
            .iter()
            .map(|(k, t)| (normalize_address(k), *t))
            .collect();
        assert_eq!(
            RecipientTable::build(raw),
            RecipientTable::build_normalized(normalized)
        );
        let dup = vec![
            ("a@x.example".to_owned(), Target::Mailbox(0)),
            ("a@x.example".to_owned(), Target::Mailbox(1)),
        ];
        assert!(RecipientTable::build_normalized(dup).is_err());
    }

    #[test]
    fn duplicates_after_normalization_are_refused() {
        let err = RecipientTable::build(vec![
            ("alice@Example.com".to_owned(), Target::Mailbox(0)),
            ("\"alice\"@example.com.".to_owned(), Target::Group(2)),
        ])
        .expect_err("duplicate");
        assert_eq!(err.key, "alice@example.com");
        assert_eq!(
            err.to_string(),
            "the address alice@example.com belongs to two recipients"
        );
    }

    #[test]
    fn empty_and_damaged_tables_do_not_panic() {
        let empty = RecipientTable::build(Vec::new()).expect("empty");
        assert_eq!(empty.lookup("a@b"), None);
        let one = || RecipientTable::build(vec![("ab".to_owned(), Target::Group(0))]);
        let mut damaged = one().expect("one key");
        assert!(damaged.is_consistent(0, 1));
        assert!(!damaged.is_consistent(1, 0), "no such group");
        damaged.keys = Strings::default();
        assert_eq!(damaged.lookup("ab"), None);
        assert!(!damaged.is_consistent(0, 1));
        let mut full = one().expect("one key");
        full.slots = U32s::filled(0, 1);
        assert_eq!(full.lookup("zz"), None, "no empty slot, still an answer");
        assert!(!full.is_consistent(0, 1));
        assert_eq!(
            (pack(Target::Group(3)), unpack(pack(Target::Group(3)))),
            (GROUP | 3, Target::Group(3))
        );
        assert_eq!(
            unpack(pack(Target::Mailbox(u32::MAX))),
            Target::Mailbox(GROUP - 1)
        );
    }

    #[test]
    fn normalize_handles_text_that_is_not_an_address() {
        assert_eq!(normalize_address("Bob@EXAMPLE.org."), "Bob@example.org");
        assert_eq!(normalize_address("a b@EX.org"), "a b@ex.org");
        assert_eq!(normalize_address("nobody"), "nobody");
    }
}
