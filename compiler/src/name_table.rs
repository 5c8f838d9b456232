//! Names of one kind, each with the index of its first definition.

use std::cell::OnceCell;
use std::hash::{BuildHasher, Hasher};

/// A name table: a vector ordered by a hash of each name rather than a map
/// or a tree. Names share long prefixes (`user0000001`, `user0000002`, ...),
/// so ordering 100,000 of them by their text costs string comparisons all
/// the way through a sort and every binary search; their hashes compare as
/// integers, whatever order the names came in, and the text is compared
/// only where two hashes agree. The table also keeps the names defined more
/// than once, for the duplicate-name check. The names in their own order,
/// for suggestions, are sorted when first asked for.
pub struct NameTable<'a, I = usize> {
    /// `(hash, name, index)` of each name's first definition, sorted.
    first: Vec<(u64, &'a str, I)>,
    /// The later definitions of names defined more than once, sorted the
    /// same way: grouped by name, each group in definition order.
    repeats: Vec<(u64, &'a str, I)>,
    /// The names, sorted.
    sorted: OnceCell<Vec<&'a str>>,
}

impl<I> Default for NameTable<'_, I> {
    fn default() -> Self {
        NameTable {
            first: Vec::new(),
            repeats: Vec::new(),
            sorted: OnceCell::new(),
        }
    }
}

impl<'a> NameTable<'a, usize> {
    /// The table of `names`, given in definition order.
    pub fn new(names: impl Iterator<Item = &'a str>) -> NameTable<'a, usize> {
        NameTable::from_indexed(names.enumerate().map(|(i, n)| (n, i)))
    }
}

impl<'a, I: Copy + Ord> NameTable<'a, I> {
    /// The table of names with their indices, indices increasing in
    /// definition order: a name defined twice keeps its first index.
    pub fn from_indexed(names: impl Iterator<Item = (&'a str, I)>) -> NameTable<'a, I> {
        let mut first: Vec<(u64, &'a str, I)> = names.map(|(n, i)| (hash(n), n, i)).collect();
        // Sorting by (hash, name, index) puts the first definition first.
        first.sort_unstable();
        let mut repeats = Vec::new();
        first.dedup_by(|later, first| {
            let repeated = later.0 == first.0 && later.1 == first.1;
            if repeated {
                repeats.push(*later);
            }
            repeated
        });
        NameTable {
            first,
            repeats,
            sorted: OnceCell::new(),
        }
    }

    /// The index of the first definition of `name`.
    pub fn get(&self, name: &str) -> Option<&I> {
        let position = position(&self.first, hash(name), name)?;
        self.first.get(position).map(|(_, _, i)| i)
    }

    /// Whether `name` is defined.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every definition of `name`, in definition order.
    pub fn definitions(&self, name: &str) -> impl Iterator<Item = I> + '_ {
        let hash = hash(name);
        let later = position(&self.repeats, hash, name).map_or(&[][..], |start| {
            let rest = &self.repeats[start..];
            let end = rest
                .iter()
                .position(|(h, n, _)| (*h, *n) != (hash, name))
                .unwrap_or(rest.len());
            &rest[..end]
        });
        self.get(name)
            .copied()
            .into_iter()
            .chain(later.iter().map(|(_, _, i)| *i))
    }

    /// The names defined more than once, each once, in the table's order.
    pub fn repeated(&self) -> impl Iterator<Item = &'a str> + '_ {
        let mut previous = None;
        self.repeats.iter().filter_map(move |&(h, n, _)| {
            let new = previous != Some((h, n));
            previous = Some((h, n));
            new.then_some(n)
        })
    }

    /// The defined names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + '_ {
        let sorted = self.sorted.get_or_init(|| {
            let mut names: Vec<&'a str> = self.first.iter().map(|(_, n, _)| *n).collect();
            names.sort_unstable();
            names
        });
        sorted.iter().copied()
    }

    /// How many distinct names there are.
    pub fn len(&self) -> usize {
        self.first.len()
    }

    /// Whether no name is defined.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}

/// The first position of `name` in `entries`, which are sorted by hash, then name.
fn position<I>(entries: &[(u64, &str, I)], hash: u64, name: &str) -> Option<usize> {
    let start = entries.partition_point(|(h, n, _)| (*h, *n) < (hash, name));
    let (h, n, _) = entries.get(start)?;
    (*h == hash && *n == name).then_some(start)
}

/// The names' hash: FxHash, fixed and fast on short keys.
fn hash(name: &str) -> u64 {
    let mut hasher = rustc_hash::FxBuildHasher.build_hasher();
    hasher.write(name.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_definition_wins_and_keys_are_sorted() {
        let table = NameTable::new(["mbx2", "mbx1", "mbx2"].into_iter());
        assert_eq!(table.get("mbx2"), Some(&0));
        assert_eq!(table.get("mbx1"), Some(&1));
        assert_eq!(table.get("mbx3"), None);
        assert_eq!(table.keys().collect::<Vec<_>>(), ["mbx1", "mbx2"]);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn repeated_names_keep_every_definition_in_order() {
        let names = ["a", "b", "a", "c", "b", "a"];
        let table = NameTable::new(names.into_iter());
        let mut repeated: Vec<&str> = table.repeated().collect();
        repeated.sort_unstable();
        assert_eq!(repeated, ["a", "b"]);
        assert_eq!(table.definitions("a").collect::<Vec<_>>(), [0, 2, 5]);
        assert_eq!(table.definitions("b").collect::<Vec<_>>(), [1, 4]);
        assert_eq!(table.definitions("c").collect::<Vec<_>>(), [3]);
        assert_eq!(table.definitions("d").count(), 0);
    }

    #[test]
    fn many_names_in_any_order() {
        let names: Vec<String> = (0..10_000).rev().map(|i| format!("user{i:07}")).collect();
        let table = NameTable::new(names.iter().map(String::as_str));
        assert!(names
            .iter()
            .enumerate()
            .all(|(i, n)| table.get(n) == Some(&i)));
        assert!(table.keys().zip(table.keys().skip(1)).all(|(a, b)| a < b));
        assert_eq!(table.repeated().count(), 0);
    }
}
