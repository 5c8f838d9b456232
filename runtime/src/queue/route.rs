//! Where each recipient of a queued message goes, decided with the plan
//! the gateway runs now (a reload that moves a mailbox moves its queued
//! mail too).

use mailgw_plan::{
    parse_mailbox, Direction as Scope, Plan, Refusal, Resolution, Route, TlsPolicy,
    UnknownRecipients,
};

use crate::delivery::{NextHop, SmtpHop, Status, Target};
use crate::spool::{Envelope, Recipient};

/// Which way a recipient's copy travels, for disclaimers and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From outside the organization to a local mailbox.
    Inbound,
    /// Relayed out through a connector.
    Outbound,
    /// From inside to a local mailbox: neither.
    Internal,
}

impl Direction {
    /// Whether a policy for `scope` applies to this direction.
    pub fn within(self, scope: Scope) -> bool {
        matches!(
            (self, scope),
            (Direction::Inbound, Scope::Inbound | Scope::Both)
                | (Direction::Outbound, Scope::Outbound | Scope::Both)
        )
    }
}

/// The way to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Way {
    /// A mailbox backend, with the name the backend knows the mailbox by.
    Backend {
        /// Index into the plan's backends.
        backend: u32,
        /// The mailbox name, sent as the recipient.
        mailbox: String,
    },
    /// `unknown-recipients forward to HOST:PORT`.
    Forward {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Out through the connectors of a route (already filtered by the
    /// connectors' sender restrictions).
    Connectors {
        /// The connectors, tier by tier.
        route: Route,
        /// The recipient's domain (for `deliver mx`).
        domain: String,
    },
    /// The content filter at this index of the plan's filters.
    Filter(usize),
}

/// The decision for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Deliver this way.
    Deliver {
        /// Where to.
        way: Way,
        /// Which way the copy travels.
        direction: Direction,
    },
    /// Never deliverable: fail the recipient.
    Fail {
        /// The enhanced status code.
        status: Status,
        /// Why, for the log and the DSN.
        reason: String,
    },
}

fn fail(status: (u8, u16, u16), reason: impl Into<String>) -> Decision {
    Decision::Fail {
        status: Status::new(status.0, status.1, status.2),
        reason: reason.into(),
    }
}

/// Decides where `recipient` of the message with `envelope` goes.
pub fn decide(plan: &Plan, envelope: &Envelope, recipient: &Recipient) -> Decision {
    let address = match parse_mailbox(&recipient.address) {
        Ok(a) => a,
        Err(e) => return fail((5, 1, 3), format!("bad recipient address: {e}")),
    };
    let inbound = if envelope.origin.inside && !envelope.origin.filtered {
        Direction::Internal
    } else {
        Direction::Inbound
    };
    let decision = match plan.resolve(&address) {
        Resolution::Mailbox {
            mailbox, backend, ..
        } => {
            let Some(m) = plan.mailboxes.get(mailbox as usize) else {
                return fail((5, 1, 1), "no such mailbox");
            };
            Decision::Deliver {
                way: Way::Backend {
                    backend,
                    mailbox: m.name.to_owned(),
                },
                direction: inbound,
            }
        }
        Resolution::Group { .. } => {
            // Groups are expanded when a message is queued; an address that
            // became a group since then is not expanded again (its members
            // would have no delivery state of their own).
            fail(
                (5, 3, 0),
                "the address became a group after the message was queued; it was not expanded",
            )
        }
        Resolution::UnknownLocal { action, .. } => match action {
            UnknownRecipients::Reject => fail((5, 1, 1), "no such recipient"),
            UnknownRecipients::Forward { host, port } => Decision::Deliver {
                way: Way::Forward { host, port },
                direction: inbound,
            },
        },
        Resolution::Remote { route } => {
            let sender = envelope
                .sender
                .as_deref()
                .and_then(|s| parse_mailbox(s).ok());
            match plan.route_for_sender(&route, sender.as_ref()) {
                Ok(route) => Decision::Deliver {
                    way: Way::Connectors {
                        route,
                        domain: address.domain.name().unwrap_or_default().to_owned(),
                    },
                    direction: Direction::Outbound,
                },
                Err(Refusal::RejectedSender { connector } | Refusal::NotAccepted { connector }) => {
                    fail(
                        (5, 7, 1),
                        format!(
                            "the sender may not send through {}",
                            plan.sources.describe(connector)
                        ),
                    )
                }
                Err(Refusal::NoSuchConnector) => fail((5, 4, 4), "no connector for the domain"),
            }
        }
        Resolution::Unroutable => fail((5, 4, 4), "no connector for the domain"),
    };
    match decision {
        Decision::Deliver { direction, .. } if !recipient.journal && !envelope.origin.filtered => {
            match plan
                .filters
                .iter()
                .position(|f| direction.within(f.direction))
            {
                Some(filter) => Decision::Deliver {
                    way: Way::Filter(filter),
                    direction,
                },
                None => decision,
            }
        }
        other => other,
    }
}

/// The next hops to try for `way`, in order: for connectors, the tiers by
/// cost, each tier starting at `spread` (so equal-cost connectors share
/// the load) and going round. An entry is an error when the hop cannot be
/// built (a connector's credentials file cannot be read).
pub fn hops(plan: &Plan, way: &Way, spread: usize) -> Vec<(String, Result<NextHop, String>)> {
    match way {
        Way::Backend { backend, .. } => {
            let key = format!("backend {backend}");
            let Some(b) = plan.backends.get(*backend as usize) else {
                return vec![(key, Err("no such backend".into()))];
            };
            let hop = NextHop::backend(b).or_else(|| {
                b.smtp.map(|endpoint| {
                    NextHop::Smtp(SmtpHop {
                        target: Target::Host {
                            host: b.host.clone(),
                            port: endpoint.port,
                        },
                        tls: match endpoint.tls {
                            mailgw_plan::EndpointTls::None => TlsPolicy::None,
                            _ => TlsPolicy::Require,
                        },
                        credentials: None,
                        ca: b.ca.as_ref().map(std::path::PathBuf::from),
                    })
                })
            });
            let hop = hop.ok_or_else(|| format!("backend {} has no LMTP or SMTP port", b.name));
            vec![(format!("backend {}", b.name), hop)]
        }
        Way::Forward { host, port } => vec![(
            format!("forward {host}:{port}"),
            Ok(smtp_host(host, *port, TlsPolicy::Opportunistic)),
        )],
        Way::Filter(i) => match plan.filters.get(*i) {
            Some(f) => vec![(
                format!("filter {}:{}", f.host, f.port),
                Ok(smtp_host(&f.host, f.port, TlsPolicy::None)),
            )],
            None => vec![(format!("filter {i}"), Err("no such filter".into()))],
        },
        Way::Connectors { route, domain } => {
            let mut out = Vec::new();
            for tier in &route.tiers {
                let n = tier.len().max(1);
                for k in 0..tier.len() {
                    let Some(choice) = tier.get((spread + k) % n) else {
                        continue;
                    };
                    let Some(c) = plan.connectors.get(choice.connector as usize) else {
                        continue;
                    };
                    let key = match c.deliver {
                        mailgw_plan::Deliver::Smarthost { .. } => format!("connector {}", c.name),
                        mailgw_plan::Deliver::Mx { .. } => {
                            format!("connector {} {domain}", c.name)
                        }
                    };
                    out.push((key, NextHop::connector(c, domain)));
                }
            }
            out
        }
    }
}

fn smtp_host(host: &str, port: u16, tls: TlsPolicy) -> NextHop {
    NextHop::Smtp(SmtpHop {
        target: Target::Host {
            host: host.to_owned(),
            port,
        },
        tls,
        credentials: None,
        ca: None,
    })
}

/// The key that puts recipients in one transaction: the same way (for
/// connectors: the same route and, for MX delivery, the same domain).
pub fn batch_key(plan: &Plan, way: &Way) -> String {
    match way {
        Way::Backend { backend, .. } => format!("backend {backend}"),
        Way::Forward { host, port } => format!("forward {host}:{port}"),
        Way::Filter(i) => format!("filter {i}"),
        Way::Connectors { route, domain } => {
            let mut key = String::from("route");
            let mut mx = false;
            for c in route.tiers.iter().flatten() {
                key.push_str(&format!(" {}:{}", c.connector, c.cost));
                mx |= plan
                    .connectors
                    .get(c.connector as usize)
                    .is_some_and(|c| matches!(c.deliver, mailgw_plan::Deliver::Mx { .. }));
            }
            if mx {
                key.push(' ');
                key.push_str(domain);
            }
            key
        }
    }
}
