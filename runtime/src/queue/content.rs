//! What each recipient is sent: the message as queued, the message with
//! the disclaimers of its direction, or a journal report wrapping it.

use std::time::SystemTime;

use mailgw_plan::Plan;

use super::route::{Direction, Way};
use crate::message::disclaimer::{self, Applied};
use crate::message::journal::{self, JournalReport};
use crate::spool::{QueuedMessage, Recipient};

/// The form of the message a recipient gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Content {
    /// The bytes as queued.
    Original,
    /// With the disclaimers for this direction.
    Disclaimed(Direction),
    /// A journal report with the message attached.
    Journal,
}

/// The form `recipient`, going `way` in `direction`, gets.
pub fn kind(plan: &Plan, recipient: &Recipient, way: &Way, direction: Direction) -> Content {
    if recipient.journal {
        return Content::Journal;
    }
    if matches!(way, Way::Filter(_)) {
        return Content::Original;
    }
    if plan
        .disclaimers
        .iter()
        .any(|d| direction.within(d.direction))
    {
        return Content::Disclaimed(direction);
    }
    Content::Original
}

/// The bytes to send for `content`. A disclaimer that cannot be added
/// (a signed or encrypted message, no text part) leaves the message as it
/// is, and the log says why.
pub fn render(
    plan: &Plan,
    content: Content,
    message: &QueuedMessage,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    match content {
        Content::Original => Ok(body.to_vec()),
        Content::Disclaimed(direction) => {
            let mut out = body.to_vec();
            for d in plan
                .disclaimers
                .iter()
                .filter(|d| direction.within(d.direction))
            {
                match disclaimer::apply(&out, &d.text, d.position) {
                    Applied::Changed(changed) => out = changed,
                    Applied::Unchanged(why) => {
                        tracing::info!(queue_id = %message.id, reason = ?why, disclaimer = %plan.sources.describe(d.source), "disclaimer not added");
                    }
                }
            }
            Ok(out)
        }
        Content::Journal => {
            let hostname = plan.gateway.hostname.as_str();
            let postmaster = plan.postmaster();
            let envelope = &message.envelope;
            let recipients: Vec<String> = envelope
                .recipients
                .iter()
                .filter(|r| !r.journal)
                .map(|r| r.address.clone())
                .collect();
            let journal_to = envelope
                .recipients
                .iter()
                .find(|r| r.journal)
                .map_or_else(String::new, |r| r.address.clone());
            let client = format!("{} ({})", envelope.client_ip, envelope.helo);
            let id = message.id.to_string();
            Ok(journal::build(
                &JournalReport {
                    from: &postmaster,
                    to: &journal_to,
                    sender: envelope.sender.as_deref(),
                    recipients: &recipients,
                    queue_id: &id,
                    received_at: envelope.received_at,
                    client: &client,
                    original: body,
                },
                SystemTime::now(),
                hostname,
            ))
        }
    }
}
