//! Local domains, mailboxes and groups.

use serde::{Deserialize, Serialize};

use crate::source::SourceRef;

/// A domain this gateway accepts mail for.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LocalDomain {
    /// Lowercase, without trailing dot.
    pub name: String,
    /// The `domain` statement.
    pub source: SourceRef,
}

/// A mailbox on one backend. Its addresses are in the plan's
/// [`crate::RecipientTable`], the one place addresses are kept.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Mailbox {
    /// The mailbox name (also its login name).
    pub name: String,
    /// Index into [`crate::Plan::backends`].
    pub backend: u32,
    /// Password hash from the directory, when auth verifies against it.
    pub password_hash: Option<String>,
    /// The `mailbox` block or directory entry.
    pub source: SourceRef,
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
