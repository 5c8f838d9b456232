//! Relay rules as written in the `relay` block.

use serde::{Deserialize, Serialize};

use crate::network::Network;
use crate::pattern::AddressPattern;
use crate::source::SourceRef;

/// One `allow …` or `deny …` line.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RelayRule {
    /// What a match means.
    pub action: RelayAction,
    /// Conditions, all of which must hold; empty (`all`) always matches.
    pub conditions: Vec<Condition>,
    /// The rule's line.
    pub source: SourceRef,
}

/// The verdict of a matching relay rule.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayAction {
    /// Relay.
    Allow,
    /// Refuse.
    Deny,
}

/// A relay rule condition.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Condition {
    /// The client authenticated.
    Authenticated,
    /// The client address is in the network.
    From(Network),
    /// The recipient matches.
    To(AddressPattern),
    /// The envelope sender matches (never the null sender).
    Sender(AddressPattern),
}
