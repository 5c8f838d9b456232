//! What the queue admin asks the running queue manager, and what it
//! answers: the requests behind `mailgw queue list|show|retry|delete|hold|
//! release|flush` and SMTP `ETRN`.
//!
//! The control channel (a Unix socket in the spool directory) turns each
//! admin command into a [`Request`] and sends it to the queue manager, the
//! only writer of the spool; the manager answers on the request's oneshot
//! channel. Nothing here touches the spool itself.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// One admin command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum Command {
    /// Every queued message.
    List,
    /// One message, by queue id.
    Show {
        /// The queue id.
        id: String,
    },
    /// Try now: one message, or every message (`id: None`). Held messages
    /// stay held.
    Retry {
        /// The queue id; `None` means all.
        id: Option<String>,
    },
    /// Remove a message without notifying anyone.
    Delete {
        /// The queue id.
        id: String,
    },
    /// Stop delivering a message until it is released.
    Hold {
        /// The queue id.
        id: String,
    },
    /// Undo [`Command::Hold`]; the message is tried now.
    Release {
        /// The queue id.
        id: String,
    },
    /// Try now every message with a pending recipient in `domain` (also
    /// what `ETRN domain` asks).
    Flush {
        /// The recipient domain, lowercase.
        domain: String,
    },
}

/// The answer to a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "answer")]
pub enum Answer {
    /// For `list` and `show`: the messages, oldest first.
    Messages {
        /// The messages.
        messages: Vec<Entry>,
    },
    /// For `retry`, `delete`, `hold`, `release`, `flush`: how many messages
    /// the command applied to.
    Done {
        /// Messages affected.
        count: usize,
    },
    /// The command failed (no such message, spool error): why.
    Error {
        /// A sentence for the administrator.
        message: String,
    },
}

/// One queued message as the admin sees it: why it is still there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The queue id.
    pub id: String,
    /// The envelope sender; empty for the null sender.
    pub sender: String,
    /// The recipients not yet delivered or failed, and those that are.
    pub recipients: Vec<EntryRecipient>,
    /// Size in bytes.
    pub size: u64,
    /// When the message was accepted (seconds since the Unix epoch).
    pub received_at: u64,
    /// When the next attempt is due (seconds since the Unix epoch); `None`
    /// when it is due now or being tried.
    pub next_attempt: Option<u64>,
    /// Attempts so far.
    pub attempts: u32,
    /// Whether it is on hold.
    pub hold: bool,
}

/// One recipient of an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecipient {
    /// The address.
    pub address: String,
    /// `pending`, `deferred`, `delivered` or `failed`.
    pub state: String,
    /// The last error (deferred or failed), as the peer or the gateway put
    /// it.
    pub error: Option<String>,
}

/// A command on its way to the queue manager, with where to answer.
#[derive(Debug)]
pub struct Request {
    /// What is asked.
    pub command: Command,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Answer>,
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
