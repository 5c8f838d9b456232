//! The relay decision: may this client send to this recipient?

use std::net::IpAddr;

use crate::address::{Address, Domain};
use crate::plan::Plan;
use crate::relay_rule::{Condition, RelayAction, RelayRule};
use crate::source::SourceRef;

/// One recipient of one SMTP transaction, as the relay check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayQuery<'a> {
    /// The client's IP address as the socket reports it (IPv4-mapped IPv6
    /// is handled).
    pub client: IpAddr,
    /// The authenticated user, if any.
    pub authenticated: Option<&'a str>,
    /// The envelope sender; `None` is the null sender `<>`.
    pub sender: Option<&'a Address>,
    /// The recipient.
    pub recipient: &'a Address,
}

/// The outcome of the relay check, with the line that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayVerdict {
    /// The recipient's domain is local, so this is not relaying.
    NotRelay {
        /// The local `domain` line.
        domain: SourceRef,
    },
    /// A rule allows relaying.
    Allowed {
        /// The rule's line.
        rule: SourceRef,
    },
    /// Relaying is refused.
    Denied {
        /// The denying rule, or `None` for the default deny when no rule
        /// matched.
        rule: Option<SourceRef>,
    },
}

impl RelayVerdict {
    /// Whether the recipient may be accepted (local, or relay allowed).
    pub fn is_accepted(&self) -> bool {
        !matches!(self, RelayVerdict::Denied { .. })
    }
}

impl Plan {
    /// Whether `client` may ask for the mail queued for `domain` with
    /// `ETRN`: some `etrn` line names both.
    pub fn etrn_allows(&self, client: IpAddr, domain: &Domain) -> Option<SourceRef> {
        self.etrn
            .iter()
            .find(|e| {
                e.from.iter().any(|n| n.contains(client))
                    && e.domains.iter().any(|d| d.matches(domain))
            })
            .map(|e| e.source)
    }

    /// Checks a recipient against the relay rules: local domains are never
    /// relaying; otherwise rules apply top to bottom, first match wins, and
    /// the default is deny.
    pub fn relay(&self, query: &RelayQuery<'_>) -> RelayVerdict {
        if let Some(local) = self.local_domain(&query.recipient.domain) {
            return RelayVerdict::NotRelay {
                domain: local.source,
            };
        }
        match self.relay.iter().find(|rule| rule_matches(rule, query)) {
            Some(rule) => match rule.action {
                RelayAction::Allow => RelayVerdict::Allowed { rule: rule.source },
                RelayAction::Deny => RelayVerdict::Denied {
                    rule: Some(rule.source),
                },
            },
            None => RelayVerdict::Denied { rule: None },
        }
    }
}

fn rule_matches(rule: &RelayRule, query: &RelayQuery<'_>) -> bool {
    rule.conditions.iter().all(|condition| match condition {
        Condition::Authenticated => query.authenticated.is_some(),
        Condition::From(network) => network.contains(query.client),
        Condition::To(pattern) => pattern.matches(query.recipient),
        Condition::Sender(pattern) => query.sender.is_some_and(|s| pattern.matches(s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{addr, sample_plan, src};

    fn check(client: &str, user: Option<&str>, sender: Option<&str>, rcpt: &str) -> RelayVerdict {
        let plan = sample_plan();
        let sender = sender.map(addr);
        let recipient = addr(rcpt);
        plan.relay(&RelayQuery {
            client: client.parse().expect("ip"),
            authenticated: user,
            sender: sender.as_ref(),
            recipient: &recipient,
        })
    }

    #[test]
    fn local_domains_are_never_relaying() {
        assert_eq!(
            check("203.0.113.5", None, None, "anyone@Example.org"),
            RelayVerdict::NotRelay { domain: src(11) }
        );
        assert_eq!(
            check(
                "203.0.113.5",
                None,
                None,
                "user%foreign.example@example.com"
            ),
            RelayVerdict::NotRelay { domain: src(10) }
        );
    }

    #[test]
    fn first_match_wins() {
        // allow authenticated (40) comes before deny from 10.66.0.0/16 (41).
        assert_eq!(
            check("10.66.1.1", Some("alice"), None, "x@foreign.example"),
            RelayVerdict::Allowed { rule: src(40) }
        );
        // deny from 10.66.0.0/16 (41) comes before allow from 10.0.0.0/8 (42).
        assert_eq!(
            check("10.66.1.1", None, None, "x@foreign.example"),
            RelayVerdict::Denied {
                rule: Some(src(41))
            }
        );
        assert_eq!(
            check("10.1.2.3", None, None, "x@foreign.example"),
            RelayVerdict::Allowed { rule: src(42) }
        );
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_networks() {
        assert_eq!(
            check("::ffff:10.1.2.3", None, None, "x@foreign.example"),
            RelayVerdict::Allowed { rule: src(42) }
        );
        assert_eq!(
            check("::ffff:10.66.0.9", None, None, "x@foreign.example"),
            RelayVerdict::Denied {
                rule: Some(src(41))
            }
        );
    }

    #[test]
    fn conditions_are_anded() {
        // allow to "*.tochter.example" and sender "*@example.com" (43).
        assert_eq!(
            check(
                "203.0.113.5",
                None,
                Some("alice@example.com"),
                "x@a.tochter.example"
            ),
            RelayVerdict::Allowed { rule: src(43) }
        );
        assert_eq!(
            check(
                "203.0.113.5",
                None,
                Some("mallory@evil.example"),
                "x@a.tochter.example"
            ),
            RelayVerdict::Denied { rule: None }
        );
        assert_eq!(
            check("203.0.113.5", None, None, "x@a.tochter.example"),
            RelayVerdict::Denied { rule: None },
            "the null sender matches no sender pattern"
        );
    }

    #[test]
    fn default_deny() {
        let verdict = check(
            "203.0.113.5",
            None,
            Some("alice@example.com"),
            "x@foreign.example",
        );
        assert_eq!(verdict, RelayVerdict::Denied { rule: None });
        assert!(!verdict.is_accepted());
        let mut plan = sample_plan();
        plan.relay.clear();
        let rcpt = addr("x@foreign.example");
        let q = RelayQuery {
            client: "127.0.0.1".parse().expect("ip"),
            authenticated: Some("alice"),
            sender: None,
            recipient: &rcpt,
        };
        assert_eq!(plan.relay(&q), RelayVerdict::Denied { rule: None });
    }
}
