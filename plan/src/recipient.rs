//! Local domains, mailboxes and groups.

use serde::{Deserialize, Serialize};

use crate::columns::{Bytes, Strings, U32s};
use crate::source::SourceRef;

/// A domain this gateway accepts mail for.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LocalDomain {
    /// Lowercase, without trailing dot.
    pub name: String,
    /// The `domain` statement.
    pub source: SourceRef,
}

/// A mailbox on one backend, as [`Mailboxes`] holds it. Its addresses are
/// in the plan's [`crate::RecipientTable`], the one place addresses are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mailbox<'a> {
    /// The mailbox name (also its login name).
    pub name: &'a str,
    /// Index into [`crate::Plan::backends`].
    pub backend: u32,
    /// Password hash from the directory, when auth verifies against it.
    pub password_hash: Option<&'a str>,
    /// The `mailbox` block or directory entry.
    pub source: SourceRef,
}

/// The plan's mailboxes, a column per field (see [`crate::columns`]): a
/// directory has hundreds of thousands of them, and a plan loads them as a
/// few copies instead of a string and a record each.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Mailboxes {
    names: Strings,
    backends: U32s,
    /// One per mailbox, empty where there is none; `has_password` tells.
    /// Both stay empty while no mailbox has a password hash.
    passwords: Strings,
    /// 1 for a mailbox with a password hash, 0 for one without.
    has_password: Bytes,
    /// File and line of each mailbox, two numbers per mailbox.
    sources: U32s,
}

impl Mailboxes {
    /// Room for `n` mailboxes whose names take `name_bytes` in all.
    pub fn with_capacity(n: usize, name_bytes: usize) -> Mailboxes {
        Mailboxes {
            names: Strings::with_capacity(n, name_bytes),
            backends: U32s::with_capacity(n),
            passwords: Strings::default(),
            has_password: Bytes::default(),
            sources: U32s::with_capacity(2 * n),
        }
    }

    /// Adds a mailbox; its index is the number of mailboxes before it.
    pub fn push(&mut self, mailbox: Mailbox<'_>) {
        let first_password = mailbox.password_hash.is_some() && self.has_password.0.is_empty();
        if first_password {
            // The mailboxes before it have none.
            for _ in 0..self.len() {
                self.passwords.push("");
            }
            self.has_password.0.resize(self.len(), 0);
        }
        if first_password || !self.has_password.0.is_empty() {
            self.passwords
                .push(mailbox.password_hash.unwrap_or_default());
            self.has_password
                .0
                .push(u8::from(mailbox.password_hash.is_some()));
        }
        self.names.push(mailbox.name);
        self.backends.push(mailbox.backend);
        self.sources.push(mailbox.source.file);
        self.sources.push(mailbox.source.line);
    }

    /// Mailbox number `index`.
    pub fn get(&self, index: usize) -> Option<Mailbox<'_>> {
        let password_hash = match self.has_password.0.get(index) {
            None | Some(0) => None,
            Some(_) => Some(self.passwords.get(index)?),
        };
        Some(Mailbox {
            name: self.names.get(index)?,
            backend: self.backends.get(index)?,
            password_hash,
            source: SourceRef::new(
                self.sources.get(index.checked_mul(2)?)?,
                self.sources.get(index.checked_mul(2)?.checked_add(1)?)?,
            ),
        })
    }

    /// How many mailboxes there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there is no mailbox.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The mailboxes in order.
    pub fn iter(&self) -> impl Iterator<Item = Mailbox<'_>> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    /// Whether every mailbox can be read whole, each backend is below
    /// `backends`, and every password flag is 0 or 1; checked when a plan is
    /// loaded.
    pub(crate) fn is_consistent(&self, backends: usize) -> bool {
        let n = self.names.len();
        let passwords = self.has_password.0.len();
        self.names.is_consistent()
            && self.passwords.is_consistent()
            && (passwords == 0 || passwords == n)
            && self.passwords.len() == passwords
            && self.has_password.0.iter().all(|&flag| flag <= 1)
            && self.backends.is_whole()
            && self.backends.len() == n
            && self.backends.iter().all(|b| (b as usize) < backends)
            && self.sources.is_whole()
            && self.sources.len() == 2 * n
    }
}

/// A distribution group, expanded at delivery.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Group {
    /// The group name as written.
    pub name: String,
    /// Members in source order.
    pub members: Vec<Member>,
    /// The `group` block.
    pub source: SourceRef,
}

/// A member of a group.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// Index into [`crate::Plan::mailboxes`].
    Mailbox(u32),
    /// Index into [`crate::Plan::groups`].
    Group(u32),
    /// An address that is not a mailbox or group name; resolved again at
    /// expansion (it may be remote, or an address of a local recipient).
    External(String),
}

/// What an SMTP address belongs to.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Index into [`crate::Plan::mailboxes`].
    Mailbox(u32),
    /// Index into [`crate::Plan::groups`].
    Group(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox<'a>(name: &'a str, password_hash: Option<&'a str>) -> Mailbox<'a> {
        Mailbox {
            name,
            backend: 1,
            password_hash,
            source: SourceRef::new(0, 7),
        }
    }

    #[test]
    fn mailboxes_come_back_as_they_went_in() {
        let mut list = Mailboxes::with_capacity(3, 3);
        list.push(mailbox("a", None));
        assert!(list.has_password.0.is_empty(), "no password column yet");
        list.push(mailbox("bé", Some("$argon2id$x")));
        list.push(mailbox("c", Some("")));
        list.push(mailbox("d", None));
        assert_eq!(list.len(), 4);
        assert!(list.is_consistent(2));
        assert!(!list.is_consistent(1), "backend 1 does not exist");
        let all: Vec<Mailbox<'_>> = list.iter().collect();
        assert_eq!(
            all,
            [
                mailbox("a", None),
                mailbox("bé", Some("$argon2id$x")),
                mailbox("c", Some("")),
                mailbox("d", None)
            ]
        );
        assert_eq!(list.get(4), None);
        let bytes = postcard::to_stdvec(&list).expect("encodes");
        assert_eq!(postcard::from_bytes::<Mailboxes>(&bytes).ok(), Some(list));
    }

    #[test]
    fn columns_of_different_lengths_are_inconsistent() {
        let mut list = Mailboxes::default();
        list.push(mailbox("a", Some("x")));
        assert_eq!(list.get(0).and_then(|m| m.password_hash), Some("x"));
        assert!(list.is_consistent(2));
        list.has_password.0.push(1);
        assert!(!list.is_consistent(2));
        let mut list = Mailboxes::default();
        list.push(mailbox("a", Some("x")));
        list.has_password.0[0] = 2;
        assert!(!list.is_consistent(2));
        let mut list = Mailboxes::default();
        list.push(mailbox("a", None));
        list.sources.push(1);
        assert!(!list.is_consistent(2));
    }
}
