//! Relay rules as written in the `relay` block.

use std::fmt;

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

impl fmt::Display for Condition {
    /// The condition as written: `authenticated`, `from 10.0.0.0/8`,
    /// `to "*.example"`, `sender "alice@example.com"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Authenticated => f.write_str("authenticated"),
            Condition::From(n) => write!(f, "from {n}"),
            Condition::To(p) => write!(f, "to \"{p}\""),
            Condition::Sender(p) => write!(f, "sender \"{p}\""),
        }
    }
}

impl fmt::Display for RelayRule {
    /// The rule as written: `allow authenticated and from 10.0.0.0/8`,
    /// `deny all`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.action {
            RelayAction::Allow => "allow",
            RelayAction::Deny => "deny",
        })?;
        if self.conditions.is_empty() {
            return f.write_str(" all");
        }
        for (i, condition) in self.conditions.iter().enumerate() {
            let join = if i == 0 { " " } else { " and " };
            write!(f, "{join}{condition}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_plan;

    #[test]
    fn rules_display_as_written() {
        let plan = sample_plan();
        let text: Vec<String> = plan.relay.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "allow authenticated",
                "deny from 10.66.0.0/16",
                "allow from 10.0.0.0/8",
                "allow to \"*.tochter.example\" and sender \"example.com\"",
            ]
        );
        let all = RelayRule {
            action: RelayAction::Deny,
            conditions: Vec::new(),
            source: crate::SourceRef::new(0, 1),
        };
        assert_eq!(all.to_string(), "deny all");
    }
}
