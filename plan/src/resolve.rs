//! Recipient resolution: local mailbox, group expansion or connector route,
//! and connector delivery restrictions.

use std::collections::BTreeSet;

use crate::address::{parse_mailbox, Address, Domain};
use crate::connector::SenderMatch;
use crate::plan::Plan;
use crate::policy::UnknownRecipients;
use crate::recipient::{LocalDomain, Member, Target};
use crate::recipient_table::normalize_address;
use crate::source::SourceRef;

/// Where mail for one recipient goes, with the lines that decided it.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// A local mailbox.
    Mailbox {
        /// Index into [`Plan::mailboxes`].
        mailbox: u32,
        /// Index into [`Plan::backends`].
        backend: u32,
        /// The local `domain` line.
        domain: SourceRef,
        /// The mailbox definition.
        source: SourceRef,
    },
    /// A local group, expanded.
    Group {
        /// Index into [`Plan::groups`].
        group: u32,
        /// The local `domain` line.
        domain: SourceRef,
        /// The group definition.
        source: SourceRef,
        /// Every final recipient, de-duplicated, in member order (depth
        /// first).
        expanded: Vec<Recipient>,
    },
    /// A local domain, but no such address.
    UnknownLocal {
        /// The local `domain` line.
        domain: SourceRef,
        /// What to do with it.
        action: UnknownRecipients,
    },
    /// Not a local domain: relayed through a connector.
    Remote {
        /// The connectors to try.
        route: Route,
    },
    /// Not a local domain, and no connector serves it.
    Unroutable,
}

/// One final recipient of a group expansion.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipient {
    /// A local mailbox.
    Mailbox {
        /// Index into [`Plan::mailboxes`].
        mailbox: u32,
        /// Index into [`Plan::backends`].
        backend: u32,
        /// The mailbox definition.
        source: SourceRef,
    },
    /// An external member that is relayed.
    Remote {
        /// The member address, normalized.
        address: String,
        /// The connectors to try.
        route: Route,
    },
    /// An external member in a local domain that names no recipient.
    UnknownLocal {
        /// The member address, normalized.
        address: String,
        /// What to do with it.
        action: UnknownRecipients,
        /// The local `domain` line.
        domain: SourceRef,
    },
    /// An external member no connector serves.
    Unroutable {
        /// The member address, normalized.
        address: String,
    },
    /// An external member that is not a valid address.
    Invalid {
        /// The member as stored.
        address: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// The connectors for a remote domain, in the order to use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Each tier shares load among its connectors; when a whole tier fails
    /// the next (higher cost) tier is tried. Within a tier, connectors are in
    /// plan order.
    pub tiers: Vec<Vec<ConnectorChoice>>,
}

/// One connector in a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectorChoice {
    /// Index into [`Plan::connectors`].
    pub connector: u32,
    /// Cost of the matching address space.
    pub cost: u32,
    /// The matching `address-space` line.
    pub source: SourceRef,
}

impl Route {
    /// Every address-space line behind the route, tier by tier.
    pub fn sources(&self) -> impl Iterator<Item = SourceRef> + '_ {
        self.tiers.iter().flatten().map(|c| c.source)
    }
}

/// Why a connector refuses a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The sender is in the connector's `reject-from` list.
    RejectedSender {
        /// The connector definition.
        connector: SourceRef,
    },
    /// The connector has an `accept-from` list and the sender (or the null
    /// sender) is not in it.
    NotAccepted {
        /// The connector definition.
        connector: SourceRef,
    },
    /// No connector has this index.
    NoSuchConnector,
}

/// An address classified without expanding groups.
enum Class {
    Local(Target, SourceRef),
    Unknown(SourceRef),
    Remote(Route),
    Unroutable,
}

impl Plan {
    /// The local domain entry for `domain`, if mail to it is local.
    pub fn local_domain(&self, domain: &Domain) -> Option<&LocalDomain> {
        let name = domain.name()?;
        self.domains.iter().find(|d| d.name == name)
    }

    /// The connector route for a remote domain: the most specific matching
    /// address space wins (exact, then the longest `*.suffix`, then `*`);
    /// among equally specific ones, tiers by ascending cost. A connector
    /// appears once, with its best matching address space. `None` when no
    /// connector matches.
    pub fn route(&self, domain: &Domain) -> Option<Route> {
        let mut candidates = Vec::new();
        for (index, connector) in self.connectors.iter().enumerate() {
            let best = connector
                .address_spaces
                .iter()
                .filter(|space| space.pattern.matches(domain))
                .max_by(|a, b| {
                    (a.pattern.specificity(), std::cmp::Reverse(a.cost))
                        .cmp(&(b.pattern.specificity(), std::cmp::Reverse(b.cost)))
                });
            if let Some(space) = best {
                let choice = ConnectorChoice {
                    connector: u32::try_from(index).unwrap_or(u32::MAX),
                    cost: space.cost,
                    source: space.source,
                };
                candidates.push((space.pattern.specificity(), choice));
            }
        }
        let top = candidates.iter().map(|(s, _)| *s).max()?;
        let mut chosen: Vec<ConnectorChoice> = candidates
            .into_iter()
            .filter(|(s, _)| *s == top)
            .map(|(_, c)| c)
            .collect();
        chosen.sort_by_key(|c| (c.cost, c.connector));
        let mut tiers: Vec<Vec<ConnectorChoice>> = Vec::new();
        for choice in chosen {
            match tiers.last_mut() {
                Some(tier) if tier.first().is_some_and(|c| c.cost == choice.cost) => {
                    tier.push(choice)
                }
                _ => tiers.push(vec![choice]),
            }
        }
        Some(Route { tiers })
    }

    /// Where mail for `rcpt` goes. Groups are expanded recursively,
    /// de-duplicated and cycle-safe; external members are resolved again.
    pub fn resolve(&self, rcpt: &Address) -> Resolution {
        match self.classify(rcpt) {
            Class::Local(Target::Mailbox(m), domain) => match self.mailboxes.get(m as usize) {
                Some(mailbox) => Resolution::Mailbox {
                    mailbox: m,
                    backend: mailbox.backend,
                    domain,
                    source: mailbox.source,
                },
                None => self.unknown(domain),
            },
            Class::Local(Target::Group(g), domain) => match self.groups.get(g as usize) {
                Some(group) => Resolution::Group {
                    group: g,
                    domain,
                    source: group.source,
                    expanded: self.expand(g),
                },
                None => self.unknown(domain),
            },
            Class::Unknown(domain) => self.unknown(domain),
            Class::Remote(route) => Resolution::Remote { route },
            Class::Unroutable => Resolution::Unroutable,
        }
    }

    fn unknown(&self, domain: SourceRef) -> Resolution {
        Resolution::UnknownLocal {
            domain,
            action: self.unknown_recipients.clone(),
        }
    }

    fn classify(&self, address: &Address) -> Class {
        match self.local_domain(&address.domain) {
            Some(local) => match self.recipients.lookup(&address.key()) {
                Some(target) => Class::Local(target, local.source),
                None => Class::Unknown(local.source),
            },
            None => match self.route(&address.domain) {
                Some(route) => Class::Remote(route),
                None => Class::Unroutable,
            },
        }
    }

    /// Expands a group depth first with an explicit stack, so neither a
    /// cycle nor a deep nesting can hang or overflow.
    fn expand(&self, root: u32) -> Vec<Recipient> {
        let mut out = Vec::new();
        let mut visited = vec![false; self.groups.len()];
        let mut mailboxes = BTreeSet::new();
        let mut externals = BTreeSet::new();
        let mut stack: Vec<(u32, usize)> = Vec::new();
        let mut enter = |g: u32, stack: &mut Vec<(u32, usize)>| {
            if let Some(seen) = visited.get_mut(g as usize) {
                if !*seen {
                    *seen = true;
                    stack.push((g, 0));
                }
            }
        };
        enter(root, &mut stack);
        while let Some((group, next)) = stack.last_mut() {
            let member = self
                .groups
                .get(*group as usize)
                .and_then(|g| g.members.get(*next));
            *next += 1;
            let Some(member) = member else {
                stack.pop();
                continue;
            };
            let mut add_mailbox = |m: u32, out: &mut Vec<Recipient>| {
                if let Some(mailbox) = self.mailboxes.get(m as usize) {
                    if mailboxes.insert(m) {
                        out.push(Recipient::Mailbox {
                            mailbox: m,
                            backend: mailbox.backend,
                            source: mailbox.source,
                        });
                    }
                }
            };
            match member {
                Member::Mailbox(m) => add_mailbox(*m, &mut out),
                Member::Group(g) => enter(*g, &mut stack),
                Member::External(text) => {
                    if !externals.insert(normalize_address(text)) {
                        continue;
                    }
                    let address = match parse_mailbox(text) {
                        Ok(address) => address,
                        Err(e) => {
                            out.push(Recipient::Invalid {
                                address: text.clone(),
                                reason: e.to_string(),
                            });
                            continue;
                        }
                    };
                    match self.classify(&address) {
                        Class::Local(Target::Mailbox(m), _) => add_mailbox(m, &mut out),
                        Class::Local(Target::Group(g), _) => enter(g, &mut stack),
                        Class::Unknown(domain) => out.push(Recipient::UnknownLocal {
                            address: address.key(),
                            action: self.unknown_recipients.clone(),
                            domain,
                        }),
                        Class::Remote(route) => out.push(Recipient::Remote {
                            address: address.key(),
                            route,
                        }),
                        Class::Unroutable => out.push(Recipient::Unroutable {
                            address: address.key(),
                        }),
                    }
                }
            }
        }
        out
    }

    /// Applies a connector's delivery restrictions to an envelope sender
    /// (`None` is the null sender): `reject-from` first, then `accept-from`
    /// (empty means everyone). The null sender matches no entry.
    pub fn connector_accepts(
        &self,
        connector: u32,
        sender: Option<&Address>,
    ) -> Result<(), Refusal> {
        let c = self
            .connectors
            .get(connector as usize)
            .ok_or(Refusal::NoSuchConnector)?;
        let matches = |m: &SenderMatch| sender.is_some_and(|s| self.sender_matches(m, s));
        if c.reject_from.iter().any(matches) {
            return Err(Refusal::RejectedSender {
                connector: c.source,
            });
        }
        if !c.accept_from.is_empty() && !c.accept_from.iter().any(matches) {
            return Err(Refusal::NotAccepted {
                connector: c.source,
            });
        }
        Ok(())
    }

    /// The connectors of `route` that `sender` may use, in the order to
    /// try them. The preferred (first) tier decides: when none of its
    /// connectors accepts the sender, the sender is refused with the first
    /// connector's reason, and costlier tiers are not asked — they stand in
    /// when the preferred connectors fail, not when they refuse, so a
    /// delivery restriction cannot be bypassed through a failover connector.
    /// Later tiers keep only the connectors that accept the sender; tiers
    /// left empty are dropped.
    pub fn route_for_sender(
        &self,
        route: &Route,
        sender: Option<&Address>,
    ) -> Result<Route, Refusal> {
        let mut tiers = Vec::with_capacity(route.tiers.len());
        for (i, tier) in route.tiers.iter().enumerate() {
            let mut refusal = None;
            let accepted: Vec<ConnectorChoice> = tier
                .iter()
                .filter(
                    |choice| match self.connector_accepts(choice.connector, sender) {
                        Ok(()) => true,
                        Err(r) => {
                            refusal.get_or_insert(r);
                            false
                        }
                    },
                )
                .copied()
                .collect();
            if i == 0 && accepted.is_empty() {
                return Err(refusal.unwrap_or(Refusal::NoSuchConnector));
            }
            if !accepted.is_empty() {
                tiers.push(accepted);
            }
        }
        if tiers.is_empty() {
            return Err(Refusal::NoSuchConnector);
        }
        Ok(Route { tiers })
    }

    fn sender_matches(&self, m: &SenderMatch, sender: &Address) -> bool {
        let key = sender.key();
        match m {
            SenderMatch::Mailbox(i) => self.recipients.lookup(&key) == Some(Target::Mailbox(*i)),
            SenderMatch::Group(g) => self.is_member(*g, &key),
            SenderMatch::Pattern(p) => p.matches(sender),
        }
    }

    /// Whether the address `key` (normalized) is in group `root`, directly,
    /// through nested groups, or as an address of a member mailbox.
    fn is_member(&self, root: u32, key: &str) -> bool {
        let target = self.recipients.lookup(key);
        let mut visited = vec![false; self.groups.len()];
        let mut stack = vec![root];
        while let Some(g) = stack.pop() {
            match visited.get_mut(g as usize) {
                Some(seen) if !*seen => *seen = true,
                _ => continue,
            }
            let Some(group) = self.groups.get(g as usize) else {
                continue;
            };
            for member in &group.members {
                match member {
                    Member::Mailbox(m) => {
                        if target == Some(Target::Mailbox(*m)) {
                            return true;
                        }
                    }
                    Member::Group(h) => stack.push(*h),
                    Member::External(text) => {
                        let normalized = normalize_address(text);
                        if normalized == key {
                            return true;
                        }
                        match self.recipients.lookup(&normalized) {
                            Some(Target::Group(h)) => stack.push(h),
                            Some(t) if Some(t) == target => return true,
                            _ => {}
                        }
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{addr, sample_plan, src};

    #[test]
    fn local_mailbox_and_secondary_address() {
        let plan = sample_plan();
        for a in [
            "alice@example.com",
            "a.smith@EXAMPLE.com",
            "\"alice\"@example.com.",
        ] {
            match plan.resolve(&addr(a)) {
                Resolution::Mailbox {
                    mailbox,
                    backend,
                    domain,
                    source,
                } => {
                    assert_eq!((mailbox, backend), (0, 0), "{a}");
                    assert_eq!(domain, src(10));
                    assert_eq!(source, src(20));
                }
                other => panic!("{a}: {other:?}"),
            }
        }
        // Local parts are case-sensitive.
        assert!(matches!(
            plan.resolve(&addr("Alice@example.com")),
            Resolution::UnknownLocal { .. }
        ));
    }

    #[test]
    fn open_relay_tricks_stay_local() {
        let plan = sample_plan();
        for a in [
            "user%foreign.example@example.com",
            "foreign.example!user@example.com",
            "\"user@foreign.example\"@example.com",
        ] {
            assert_eq!(
                plan.resolve(&addr(a)),
                Resolution::UnknownLocal {
                    domain: src(10),
                    action: UnknownRecipients::Reject
                },
                "{a}"
            );
        }
        let routed = crate::parse_path("<@example.com:user@foreign.example>")
            .expect("valid")
            .expect("not null");
        assert!(matches!(plan.resolve(&routed), Resolution::Remote { .. }));
    }

    #[test]
    fn group_expansion_nests_dedups_and_survives_cycles() {
        let plan = sample_plan();
        let Resolution::Group {
            group,
            expanded,
            source,
            ..
        } = plan.resolve(&addr("sales@example.com"))
        else {
            panic!("sales is a group");
        };
        assert_eq!((group, source), (0, src(30)));
        let summary: Vec<String> = expanded
            .iter()
            .map(|r| match r {
                Recipient::Mailbox { mailbox, .. } => format!("mailbox {mailbox}"),
                Recipient::Remote { address, route } => {
                    format!("remote {address} via {}", route.tiers[0][0].connector)
                }
                Recipient::UnknownLocal { address, .. } => format!("unknown {address}"),
                Recipient::Unroutable { address } => format!("unroutable {address}"),
                Recipient::Invalid { address, .. } => format!("invalid {address}"),
            })
            .collect();
        // sales = alice, team, partner@foreign.example, ghost@example.com,
        //         bob (again, via his address), "not an address"
        // team  = bob, alice (duplicate), sales (cycle), PARTNER@foreign.example. (duplicate)
        assert_eq!(
            summary,
            [
                "mailbox 0",
                "mailbox 1",
                "remote partner@foreign.example via 0",
                "unknown ghost@example.com",
                "invalid not an address",
            ]
        );
    }

    #[test]
    fn specificity_then_cost_then_tiers() {
        let plan = sample_plan();
        let tiers = |domain: &str| -> Vec<Vec<u32>> {
            match plan.resolve(&addr(&format!("u@{domain}"))) {
                Resolution::Remote { route } => route
                    .tiers
                    .iter()
                    .map(|t| t.iter().map(|c| c.connector).collect())
                    .collect(),
                Resolution::Unroutable => Vec::new(),
                other => panic!("{domain}: {other:?}"),
            }
        };
        // `*`: internet (0, cost 1) and backup (1, cost 1) share; slow (2, cost 5) fails over.
        assert_eq!(tiers("foreign.example"), [vec![0, 1], vec![2]]);
        // `*.tochter.example` beats `*`.
        assert_eq!(tiers("a.tochter.example"), [vec![3]]);
        // The longer suffix `*.eu.tochter.example` beats `*.tochter.example`.
        assert_eq!(tiers("x.eu.tochter.example"), [vec![4]]);
        // The exact domain beats every suffix; costs 2 then 3 are two tiers.
        assert_eq!(tiers("hq.tochter.example"), [vec![4], vec![3]]);
        // The bare parent of `*.tochter.example` is only matched by `*`.
        assert_eq!(tiers("tochter.example"), [vec![0, 1], vec![2]]);
        let routed = plan.resolve(&addr("u@hq.tochter.example"));
        let Resolution::Remote { route } = routed else {
            panic!("remote")
        };
        assert_eq!(route.sources().collect::<Vec<_>>(), [src(64), src(62)]);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let mut plan = sample_plan();
        let first = plan.groups.len() as u32;
        let depth = 100_000u32;
        for i in 0..depth {
            let next = if i + 1 < depth {
                Member::Group(first + i + 1)
            } else {
                Member::Mailbox(2)
            };
            plan.groups.push(crate::Group {
                name: format!("g{i}"),
                members: vec![next],
                source: src(99),
            });
        }
        plan.groups[0].members.push(Member::Group(first));
        let Resolution::Group { expanded, .. } = plan.resolve(&addr("sales@example.com")) else {
            panic!("group");
        };
        assert!(expanded
            .iter()
            .any(|r| matches!(r, Recipient::Mailbox { mailbox: 2, .. })));
        assert!(plan
            .connector_accepts(0, Some(&addr("carol@example.org")))
            .is_err());
        assert!(plan.is_member(0, "carol@example.org"));
    }

    #[test]
    fn unroutable_without_catch_all() {
        let mut plan = sample_plan();
        plan.connectors.truncate(1);
        plan.connectors[0]
            .address_spaces
            .retain(|s| s.pattern != crate::DomainPattern::Any);
        assert_eq!(
            plan.resolve(&addr("u@foreign.example")),
            Resolution::Unroutable
        );
    }

    #[test]
    fn forward_unknown_recipients() {
        let mut plan = sample_plan();
        plan.unknown_recipients = UnknownRecipients::Forward {
            host: "catchall.example.com".into(),
            port: 25,
        };
        assert_eq!(
            plan.resolve(&addr("nobody@example.org")),
            Resolution::UnknownLocal {
                domain: src(11),
                action: plan.unknown_recipients.clone()
            }
        );
    }

    #[test]
    fn restrictions_filter_routes_but_the_preferred_tier_decides() {
        let plan = sample_plan();
        let route = |domain: &str| match plan.resolve(&addr(&format!("u@{domain}"))) {
            Resolution::Remote { route } => route,
            other => panic!("{domain}: {other:?}"),
        };
        let ids = |r: &Route| -> Vec<Vec<u32>> {
            r.tiers
                .iter()
                .map(|t| t.iter().map(|c| c.connector).collect())
                .collect()
        };
        // `*`: internet (0, restricted) and backup (1) share cost 1, slow (2)
        // is the failover.
        let all = route("foreign.example");
        let alice = addr("alice@example.com");
        let carol = addr("carol@example.org");
        assert_eq!(
            plan.route_for_sender(&all, Some(&alice)).map(|r| ids(&r)),
            Ok(vec![vec![0, 1], vec![2]])
        );
        // carol is refused by internet but backup, in the same tier, takes her.
        assert_eq!(
            plan.route_for_sender(&all, Some(&carol)).map(|r| ids(&r)),
            Ok(vec![vec![1], vec![2]])
        );
        // A restricted preferred tier refuses; the failover is not asked.
        let mut restricted = sample_plan();
        restricted.connectors[1].accept_from = vec![SenderMatch::Group(0)];
        assert_eq!(
            restricted.route_for_sender(&all, Some(&carol)),
            Err(Refusal::RejectedSender { connector: src(50) })
        );
        assert_eq!(
            restricted.route_for_sender(&all, None),
            Err(Refusal::NotAccepted { connector: src(50) })
        );
        // A refusing connector in a later tier is left out of it.
        let mut later = sample_plan();
        later.connectors[2].accept_from = vec![SenderMatch::Group(0)];
        assert_eq!(
            later.route_for_sender(&all, Some(&carol)).map(|r| ids(&r)),
            Ok(vec![vec![1]])
        );
        assert_eq!(
            plan.route_for_sender(&Route { tiers: Vec::new() }, None),
            Err(Refusal::NoSuchConnector)
        );
    }

    #[test]
    fn delivery_restrictions() {
        let plan = sample_plan();
        // Connector 0 accepts group "sales" and rejects carol@example.org.
        let a = |s: &str| plan.connector_accepts(0, Some(&addr(s)));
        assert_eq!(a("alice@example.com"), Ok(()));
        assert_eq!(a("a.smith@example.com"), Ok(()));
        assert_eq!(
            a("bob@example.org"),
            Ok(()),
            "bob is in team, nested in sales"
        );
        assert_eq!(a("partner@foreign.example"), Ok(()), "external member");
        assert_eq!(
            a("carol@example.org"),
            Err(Refusal::RejectedSender { connector: src(50) })
        );
        assert_eq!(
            a("dave@example.org"),
            Err(Refusal::NotAccepted { connector: src(50) })
        );
        assert_eq!(
            plan.connector_accepts(0, None),
            Err(Refusal::NotAccepted { connector: src(50) })
        );
        // Connector 1 has no restriction.
        assert_eq!(plan.connector_accepts(1, None), Ok(()));
        assert_eq!(
            plan.connector_accepts(9, None),
            Err(Refusal::NoSuchConnector)
        );
    }
}
