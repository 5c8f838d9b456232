//! Telling the sender: delivery status notifications (RFC 3464) for
//! failures, delays and, when asked, successes.

use mailgw_plan::Plan;

use super::schedule::Schedule;
use crate::delivery::Outcome;
use crate::spool::{QueuedMessage, Spool};

/// What became of one recipient in an attempt.
#[derive(Debug, Clone)]
pub struct Event {
    /// Index into the envelope's recipients.
    pub index: usize,
    /// The outcome.
    pub outcome: Outcome,
    /// The host that answered, if any.
    pub remote: Option<String>,
    /// Whether the message went on to another MTA (not a backend).
    pub relayed: bool,
}

impl Event {
    /// An event for recipient `index`.
    pub fn new(index: usize, outcome: Outcome, remote: Option<String>) -> Event {
        Event {
            index,
            outcome,
            remote,
            relayed: false,
        }
    }
}

/// What [`send`] sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    /// A delay warning went out.
    pub warned: bool,
}

/// Queues the notifications the events call for.
pub async fn send(
    _spool: &Spool,
    _plan: &Plan,
    _message: &QueuedMessage,
    _body: &[u8],
    _events: &[Event],
    _warn: bool,
    _schedule: &Schedule,
) -> Sent {
    Sent::default()
}
