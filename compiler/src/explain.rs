//! Explain: what the gateway does with mail for one address, like
//! `exim -bt` and `exim -bh` but offline.
//!
//! Every decision here comes from the plan's own decision engine —
//! [`Plan::relay`], [`Plan::resolve`] and [`Plan::connector_accepts`] — the
//! code the runtime runs, so `mailgwc explain` and the gateway cannot
//! disagree. This module only phrases the answers, each with the `file:line`
//! that decided it. The output is deterministic: plan order, no hash map.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use mailgw_plan::{
    parse_mailbox, parse_path, Address, Backend, ConnectorChoice, Deliver, EndpointTls, Plan,
    Recipient, Refusal, RelayQuery, RelayVerdict, Resolution, Route, SourceRef, TlsPolicy,
    UnknownRecipients,
};
use serde_json::{json, Value};

/// The client address used when none is given: `192.0.2.1`, a documentation
/// address (RFC 5737) standing for any host on the internet, so that the
/// default question is "what if a stranger sends this?".
pub const DEFAULT_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// One question: a recipient, with the envelope and session around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The recipient, as given (`alice@example.com` or `<alice@example.com>`).
    pub to: String,
    /// The envelope sender as given; `None`, `""` or `<>` is the null sender.
    pub from: Option<String>,
    /// The client's IP address; `None` means [`DEFAULT_CLIENT`].
    pub client: Option<IpAddr>,
    /// The user the client authenticated as, if any.
    pub auth: Option<String>,
}

/// Why a question cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The recipient is not an address (the gateway answers `501 5.1.3`).
    Recipient {
        /// The text given.
        text: String,
        /// Why it is refused.
        reason: String,
    },
    /// The sender is not an address (the gateway answers `501 5.1.7`).
    Sender {
        /// The text given.
        text: String,
        /// Why it is refused.
        reason: String,
    },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Recipient { text, reason } => write!(
                f,
                "the recipient `{text}` is not an address the gateway would accept ({reason}); the gateway answers 501 5.1.3"
            ),
            QueryError::Sender { text, reason } => write!(
                f,
                "the sender `{text}` is not an address the gateway would accept ({reason}); the gateway answers 501 5.1.7"
            ),
        }
    }
}

impl std::error::Error for QueryError {}

/// The answer to a [`Query`]: the plan's decisions, ready to print.
#[derive(Debug, Clone)]
pub struct Explanation<'a> {
    plan: &'a Plan,
    query: &'a Query,
    recipient: Address,
    sender: Option<Address>,
    client: IpAddr,
    relay: RelayVerdict,
    resolution: Resolution,
}

/// Asks the plan what happens to mail for `query.to`.
pub fn explain<'a>(plan: &'a Plan, query: &'a Query) -> Result<Explanation<'a>, QueryError> {
    let recipient = parse_address(&query.to).map_err(|reason| QueryError::Recipient {
        text: query.to.clone(),
        reason,
    })?;
    let sender = match query.from.as_deref().map(str::trim) {
        None | Some("" | "<>") => None,
        Some(text) => Some(parse_address(text).map_err(|reason| QueryError::Sender {
            text: text.to_owned(),
            reason,
        })?),
    };
    let client = query.client.unwrap_or(DEFAULT_CLIENT);
    let relay = plan.relay(&RelayQuery {
        client,
        authenticated: query.auth.as_deref(),
        sender: sender.as_ref(),
        recipient: &recipient,
    });
    let resolution = plan.resolve(&recipient);
    Ok(Explanation {
        plan,
        query,
        recipient,
        sender,
        client,
        relay,
        resolution,
    })
}

/// A mailbox in angle brackets (as in `RCPT TO:<...>`, source routes
/// allowed) or bare.
fn parse_address(text: &str) -> Result<Address, String> {
    let text = text.trim();
    if text.starts_with('<') {
        match parse_path(text) {
            Ok(Some(address)) => Ok(address),
            Ok(None) => Err("the null path `<>` is no recipient".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    } else {
        parse_mailbox(text).map_err(|e| e.to_string())
    }
}

/// The outcome for the recipient, as the `result` line states it.
struct Outcome {
    accepted: bool,
    reply: &'static str,
    text: String,
}

impl Explanation<'_> {
    fn at(&self, source: SourceRef) -> String {
        self.plan.sources.describe(source)
    }

    fn sender_text(&self) -> String {
        match &self.sender {
            Some(s) => s.to_string(),
            None => "<>".to_owned(),
        }
    }

    fn relay_text(&self) -> String {
        match self.relay {
            RelayVerdict::NotRelay { domain } => format!(
                "not relaying: {} is a local domain  ({})",
                self.recipient.domain,
                self.at(domain)
            ),
            RelayVerdict::Allowed { rule } => {
                format!("allowed by `{}`  ({})", self.rule_text(rule), self.at(rule))
            }
            RelayVerdict::Denied { rule: Some(rule) } => {
                format!("denied by `{}`  ({})", self.rule_text(rule), self.at(rule))
            }
            RelayVerdict::Denied { rule: None } => match self.plan.relay.len() {
                0 => "denied by default: there are no relay rules".to_owned(),
                1 => "denied by default: the one relay rule does not match".to_owned(),
                n => format!("denied by default: none of the {n} relay rules matches"),
            },
        }
    }

    fn rule_text(&self, source: SourceRef) -> String {
        self.plan
            .relay
            .iter()
            .find(|r| r.source == source)
            .map_or_else(|| "a relay rule".to_owned(), ToString::to_string)
    }

    fn mailbox_name(&self, mailbox: u32) -> String {
        self.plan
            .mailboxes
            .get(mailbox as usize)
            .map_or_else(|| format!("#{mailbox}"), |m| m.name.to_owned())
    }

    fn backend(&self, backend: u32) -> Option<&Backend> {
        self.plan.backends.get(backend as usize)
    }

    fn connector_name(&self, connector: u32) -> String {
        self.plan
            .connectors
            .get(connector as usize)
            .map_or_else(|| format!("#{connector}"), |c| c.name.clone())
    }

    /// `LMTP 10.0.0.11:24`, or why there is no local delivery.
    fn delivery(&self, backend: u32) -> String {
        let Some(b) = self.backend(backend) else {
            return format!("backend #{backend} does not exist");
        };
        let (protocol, endpoint) = match (b.lmtp, b.smtp) {
            (Some(e), _) => ("LMTP", e),
            (None, Some(e)) => ("SMTP", e),
            (None, None) => {
                return format!(
                    "backend \"{}\" has no LMTP or SMTP port: undeliverable",
                    b.name
                )
            }
        };
        let tls = match endpoint.tls {
            EndpointTls::None => "",
            EndpointTls::StartTls => ", STARTTLS",
            EndpointTls::Implicit => ", TLS",
        };
        format!("{protocol} {}{tls}", host_port(&b.host, endpoint.port))
    }

    fn mailbox_lines(&self, out: &mut Vec<String>, mailbox: u32, backend: u32, source: SourceRef) {
        out.push(format!(
            "mailbox \"{}\"  ({})",
            self.mailbox_name(mailbox),
            self.at(source)
        ));
        if let Some(b) = self.backend(backend) {
            out.push(format!(
                "  on backend \"{}\"  ({})",
                b.name,
                self.at(b.source)
            ));
        }
        out.push(format!("  delivered over {}", self.delivery(backend)));
    }

    /// One line per connector of a route, tier by tier, with the sender's
    /// delivery restriction result.
    fn route_lines(&self, out: &mut Vec<String>, route: &Route, indent: &str) {
        for (i, tier) in route.tiers.iter().enumerate() {
            let cost = tier.first().map_or(0, |c| c.cost);
            let what = if i == 0 { "first" } else { "then" };
            out.push(format!("{indent}{what}, cost {cost}:"));
            for choice in tier {
                self.connector_lines(out, choice, indent);
            }
        }
    }

    fn connector_lines(&self, out: &mut Vec<String>, choice: &ConnectorChoice, indent: &str) {
        let Some(c) = self.plan.connectors.get(choice.connector as usize) else {
            out.push(format!(
                "{indent}  connector #{} (missing)",
                choice.connector
            ));
            return;
        };
        out.push(format!(
            "{indent}  connector \"{}\"  ({})",
            c.name,
            self.at(c.source)
        ));
        let pattern = c
            .address_spaces
            .iter()
            .find(|s| s.source == choice.source && s.cost == choice.cost)
            .map_or_else(|| "?".to_owned(), |s| s.pattern.to_string());
        out.push(format!(
            "{indent}    address-space \"{pattern}\" cost {}  ({})",
            choice.cost,
            self.at(choice.source)
        ));
        let deliver = match &c.deliver {
            Deliver::Smarthost { host, port } => format!("smarthost {}", host_port(host, *port)),
            Deliver::Mx { port } => format!("the domain's MX hosts, port {port}"),
        };
        let tls = match c.tls {
            TlsPolicy::None => "none",
            TlsPolicy::Opportunistic => "opportunistic",
            TlsPolicy::Require => "require",
        };
        out.push(format!("{indent}    delivers to {deliver}, tls {tls}"));
        out.push(format!(
            "{indent}    sender {}: {}",
            self.sender_text(),
            self.restriction_text(choice.connector)
        ));
    }

    fn restriction_text(&self, connector: u32) -> String {
        match self.plan.connector_accepts(connector, self.sender.as_ref()) {
            Ok(()) => match self.plan.connectors.get(connector as usize) {
                Some(c) if !c.accept_from.is_empty() => "accepted by accept-from".to_owned(),
                Some(c) if !c.reject_from.is_empty() => "accepted (not in reject-from)".to_owned(),
                _ => "accepted (no delivery restriction)".to_owned(),
            },
            Err(Refusal::RejectedSender { connector }) => {
                format!("refused by reject-from  ({})", self.at(connector))
            }
            Err(Refusal::NotAccepted { connector }) => {
                format!("refused: not in accept-from  ({})", self.at(connector))
            }
            Err(Refusal::NoSuchConnector) => "refused: no such connector".to_owned(),
        }
    }

    /// `Ok("connector \"x\"")`: the connectors the sender's mail goes to
    /// first; `Err(why)`: the preferred connectors refuse the sender.
    fn relayed(&self, route: &Route) -> Result<String, String> {
        match self.plan.route_for_sender(route, self.sender.as_ref()) {
            Ok(usable) => {
                let names: Vec<String> = usable
                    .tiers
                    .first()
                    .into_iter()
                    .flatten()
                    .map(|c| format!("\"{}\"", self.connector_name(c.connector)))
                    .collect();
                Ok(if names.len() == 1 {
                    format!("connector {}", names.join(""))
                } else {
                    format!("connectors {} (load shared)", names.join(", "))
                })
            }
            Err(refusal) => {
                let why = match refusal {
                    Refusal::RejectedSender { connector } => {
                        format!("it is in reject-from  ({})", self.at(connector))
                    }
                    Refusal::NotAccepted { connector } => {
                        format!("it is not in accept-from  ({})", self.at(connector))
                    }
                    Refusal::NoSuchConnector => "no connector is left".to_owned(),
                };
                Err(format!(
                    "the preferred connectors refuse the sender {}: {why}",
                    self.sender_text()
                ))
            }
        }
    }

    /// Who hears about a member that cannot be delivered.
    fn ndr(&self) -> &'static str {
        match self.sender {
            Some(_) => "the sender gets an NDR",
            None => "no NDR (the null sender never gets one)",
        }
    }

    fn unknown_text(&self, action: &UnknownRecipients) -> String {
        let at = match self.plan.unknown_recipients_source {
            Some(source) => self.at(source),
            None => "default".to_owned(),
        };
        match action {
            UnknownRecipients::Reject => format!("unknown-recipients reject  ({at})"),
            UnknownRecipients::Forward { host, port } => {
                format!(
                    "unknown-recipients forward to {}  ({at})",
                    host_port(host, *port)
                )
            }
        }
    }

    fn resolution_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.resolution {
            Resolution::Mailbox {
                mailbox,
                backend,
                source,
                ..
            } => self.mailbox_lines(&mut out, *mailbox, *backend, *source),
            Resolution::Group {
                group,
                source,
                expanded,
                ..
            } => {
                let name = self
                    .plan
                    .groups
                    .get(*group as usize)
                    .map_or("?", |g| g.name.as_str());
                out.push(format!("group \"{name}\"  ({})", self.at(*source)));
                let n = expanded.len();
                let s = if n == 1 { "" } else { "s" };
                out.push(format!("  expands to {n} recipient{s}:"));
                for recipient in expanded {
                    self.expanded_lines(&mut out, recipient);
                }
            }
            Resolution::UnknownLocal { domain, action } => {
                out.push(format!(
                    "no recipient has this address in local domain {}  ({})",
                    self.recipient.domain,
                    self.at(*domain)
                ));
                out.push(format!("  {}", self.unknown_text(action)));
            }
            Resolution::Remote { route } => {
                out.push(format!(
                    "remote domain {}, served by these connectors:",
                    self.recipient.domain
                ));
                self.route_lines(&mut out, route, "  ");
            }
            Resolution::Unroutable => out.push(format!(
                "remote domain {}: no connector's address space covers it",
                self.recipient.domain
            )),
        }
        out
    }

    fn expanded_lines(&self, out: &mut Vec<String>, recipient: &Recipient) {
        match recipient {
            Recipient::Mailbox {
                mailbox,
                backend,
                source,
            } => {
                let on = self
                    .backend(*backend)
                    .map_or_else(String::new, |b| format!(" on \"{}\"", b.name));
                out.push(format!(
                    "    mailbox \"{}\"{on}: {}  ({})",
                    self.mailbox_name(*mailbox),
                    self.delivery(*backend),
                    self.at(*source)
                ));
            }
            Recipient::Remote { address, route } => {
                out.push(format!("    {address}: remote, relayed by the gateway"));
                self.route_lines(out, route, "      ");
                match self.relayed(route) {
                    Ok(via) => out.push(format!("      relayed via {via}")),
                    Err(why) => out.push(format!("      not delivered, {}: {why}", self.ndr())),
                }
            }
            Recipient::UnknownLocal {
                address,
                action,
                domain,
            } => {
                let fate = match action {
                    UnknownRecipients::Reject => format!("not delivered, {}", self.ndr()),
                    UnknownRecipients::Forward { host, port } => {
                        format!("forwarded to {}", host_port(host, *port))
                    }
                };
                out.push(format!(
                    "    {address}: unknown in a local domain, {fate}  ({})",
                    self.at(*domain)
                ));
            }
            Recipient::Unroutable { address } => out.push(format!(
                "    {address}: remote, but no connector serves it: not delivered, {}",
                self.ndr()
            )),
            Recipient::Invalid { address, reason } => out.push(format!(
                "    \"{address}\": not an address ({reason}): skipped"
            )),
        }
    }

    fn outcome(&self) -> Outcome {
        if let RelayVerdict::Denied { .. } = self.relay {
            return Outcome {
                accepted: false,
                reply: "550 5.7.1",
                text: "rejected at RCPT: relaying denied".to_owned(),
            };
        }
        match &self.resolution {
            Resolution::Mailbox {
                mailbox, backend, ..
            } => Outcome {
                accepted: true,
                reply: "250 2.1.5",
                text: format!(
                    "accepted for mailbox \"{}\", delivered over {}",
                    self.mailbox_name(*mailbox),
                    self.delivery(*backend)
                ),
            },
            Resolution::Group {
                group, expanded, ..
            } => Outcome {
                accepted: true,
                reply: "250 2.1.5",
                text: format!(
                    "accepted for group \"{}\", expanded to {} recipient{}",
                    self.plan
                        .groups
                        .get(*group as usize)
                        .map_or("?", |g| g.name.as_str()),
                    expanded.len(),
                    if expanded.len() == 1 { "" } else { "s" }
                ),
            },
            Resolution::UnknownLocal {
                action: UnknownRecipients::Reject,
                ..
            } => Outcome {
                accepted: false,
                reply: "550 5.1.1",
                text: "rejected at RCPT: no such user".to_owned(),
            },
            Resolution::UnknownLocal {
                action: UnknownRecipients::Forward { host, port },
                ..
            } => Outcome {
                accepted: true,
                reply: "250 2.1.5",
                text: format!("accepted, forwarded to {}", host_port(host, *port)),
            },
            Resolution::Remote { route } => match self.relayed(route) {
                Ok(via) => Outcome {
                    accepted: true,
                    reply: "250 2.1.5",
                    text: format!("accepted, relayed via {via}"),
                },
                Err(why) => Outcome {
                    accepted: false,
                    reply: "550 5.7.1",
                    text: format!("rejected at RCPT: {why}"),
                },
            },
            Resolution::Unroutable => Outcome {
                accepted: false,
                reply: "550 5.4.4",
                text: format!("rejected at RCPT: no route to {}", self.recipient.domain),
            },
        }
    }

    /// The explanation as JSON, for scripts.
    pub fn to_json(&self) -> Value {
        let relay = match self.relay {
            RelayVerdict::NotRelay { domain } => {
                json!({ "verdict": "not-relay", "source": self.at(domain) })
            }
            RelayVerdict::Allowed { rule } => json!({
                "verdict": "allowed",
                "rule": self.rule_text(rule),
                "source": self.at(rule),
            }),
            RelayVerdict::Denied { rule: Some(rule) } => json!({
                "verdict": "denied",
                "rule": self.rule_text(rule),
                "source": self.at(rule),
            }),
            RelayVerdict::Denied { rule: None } => {
                json!({ "verdict": "denied", "rule": null, "source": null })
            }
        };
        let outcome = self.outcome();
        json!({
            "recipient": self.recipient.to_string(),
            "sender": self.sender.as_ref().map(ToString::to_string),
            "client": self.client.to_string(),
            "authenticated": self.query.auth,
            "relay": relay,
            "resolution": self.resolution_json(),
            "result": {
                "accepted": outcome.accepted,
                "reply": outcome.reply,
                "text": outcome.text,
            },
        })
    }

    fn resolution_json(&self) -> Value {
        match &self.resolution {
            Resolution::Mailbox {
                mailbox,
                backend,
                source,
                ..
            } => json!({
                "kind": "mailbox",
                "mailbox": self.mailbox_name(*mailbox),
                "source": self.at(*source),
                "backend": self.backend(*backend).map(|b| b.name.clone()),
                "delivery": self.delivery(*backend),
            }),
            Resolution::Group {
                group,
                source,
                expanded,
                ..
            } => json!({
                "kind": "group",
                "group": self.plan.groups.get(*group as usize).map(|g| g.name.clone()),
                "source": self.at(*source),
                "members": expanded.iter().map(|r| self.recipient_json(r)).collect::<Vec<_>>(),
            }),
            Resolution::UnknownLocal { domain, action } => json!({
                "kind": "unknown-local",
                "domain": self.at(*domain),
                "action": self.unknown_text(action),
            }),
            Resolution::Remote { route } => json!({
                "kind": "remote",
                "route": self.route_json(route),
            }),
            Resolution::Unroutable => json!({ "kind": "unroutable" }),
        }
    }

    fn recipient_json(&self, recipient: &Recipient) -> Value {
        match recipient {
            Recipient::Mailbox {
                mailbox,
                backend,
                source,
            } => json!({
                "kind": "mailbox",
                "mailbox": self.mailbox_name(*mailbox),
                "source": self.at(*source),
                "delivery": self.delivery(*backend),
            }),
            Recipient::Remote { address, route } => json!({
                "kind": "remote",
                "address": address,
                "route": self.route_json(route),
            }),
            Recipient::UnknownLocal {
                address, domain, ..
            } => json!({
                "kind": "unknown-local",
                "address": address,
                "domain": self.at(*domain),
            }),
            Recipient::Unroutable { address } => {
                json!({ "kind": "unroutable", "address": address })
            }
            Recipient::Invalid { address, reason } => {
                json!({ "kind": "invalid", "address": address, "reason": reason })
            }
        }
    }

    fn route_json(&self, route: &Route) -> Value {
        let tiers: Vec<Value> = route
            .tiers
            .iter()
            .map(|tier| {
                let connectors: Vec<Value> = tier
                    .iter()
                    .map(|c| {
                        json!({
                            "connector": self.connector_name(c.connector),
                            "cost": c.cost,
                            "address_space": self.at(c.source),
                            "sender": self.restriction_text(c.connector),
                            "accepts_sender": self
                                .plan
                                .connector_accepts(c.connector, self.sender.as_ref())
                                .is_ok(),
                        })
                    })
                    .collect();
                Value::Array(connectors)
            })
            .collect();
        Value::Array(tiers)
    }
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sender = match (&self.sender, &self.query.from) {
            (Some(s), _) => s.to_string(),
            (None, None) => "<> (the null sender; give one with --from)".to_owned(),
            (None, Some(_)) => "<> (the null sender)".to_owned(),
        };
        let client = match self.query.client {
            Some(ip) => ip.to_string(),
            None => format!("{DEFAULT_CLIENT} (any host on the internet; give one with --client)"),
        };
        let auth = match &self.query.auth {
            Some(user) => format!("authenticated as {user} (the password is not checked)"),
            None => "not authenticated".to_owned(),
        };
        let parsed = self.recipient.to_string();
        if parsed == self.query.to.trim() {
            writeln!(f, "recipient   {parsed}")?;
        } else {
            writeln!(
                f,
                "recipient   {parsed} (given as {})",
                self.query.to.trim()
            )?;
        }
        writeln!(f, "sender      {sender}")?;
        writeln!(f, "client      {client}")?;
        writeln!(f, "            {auth}")?;
        writeln!(f, "relay       {}", self.relay_text())?;
        let mut lines = self.resolution_lines().into_iter();
        if let Some(first) = lines.next() {
            writeln!(f, "resolution  {first}")?;
        }
        for line in lines {
            writeln!(f, "            {line}")?;
        }
        let outcome = self.outcome();
        writeln!(f, "result      {} {}", outcome.reply, outcome.text)
    }
}

/// `host:port`, with brackets around an IPv6 address.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgw_plan::{Backend, Endpoint, LocalDomain, Mailbox, RecipientTable, Target};

    fn plan() -> Plan {
        let mut plan = Plan::empty("mail.example.com");
        let file = plan.sources.add("t.mailgw");
        plan.backends.push(Backend {
            name: "b".to_owned(),
            host: "2001:db8::11".to_owned(),
            imap: None,
            pop3: None,
            lmtp: None,
            smtp: Some(Endpoint {
                port: 25,
                tls: EndpointTls::StartTls,
            }),
            forward_client: false,
            ca: None,
            source: SourceRef::new(file, 1),
        });
        plan.domains.push(LocalDomain {
            name: "example.com".to_owned(),
            source: SourceRef::new(file, 2),
        });
        plan.mailboxes.push(Mailbox {
            name: "alice",
            backend: 0,
            password_hash: None,
            source: SourceRef::new(file, 3),
        });
        plan.recipients =
            RecipientTable::build(vec![("alice@example.com".to_owned(), Target::Mailbox(0))])
                .expect("no duplicates");
        plan
    }

    fn query(to: &str, from: Option<&str>) -> Query {
        Query {
            to: to.to_owned(),
            from: from.map(str::to_owned),
            client: None,
            auth: None,
        }
    }

    #[test]
    fn null_sender_forms_and_defaults() {
        let plan = plan();
        for from in [None, Some(""), Some("<>"), Some(" <> ")] {
            let q = query("alice@example.com", from);
            let e = explain(&plan, &q).expect("valid");
            assert_eq!(e.sender, None, "{from:?}");
            assert_eq!(e.client, DEFAULT_CLIENT);
        }
        let q = query("<alice@example.com>", Some("<bob@elsewhere.example>"));
        let e = explain(&plan, &q).expect("valid");
        assert_eq!(
            e.sender.map(|s| s.to_string()).as_deref(),
            Some("bob@elsewhere.example")
        );
    }

    #[test]
    fn bad_addresses_are_errors_not_answers() {
        let plan = plan();
        let q = query("<>", None);
        assert!(matches!(
            explain(&plan, &q),
            Err(QueryError::Recipient { .. })
        ));
        let q = query("alice@example.com", Some("no-at-sign"));
        let err = explain(&plan, &q).expect_err("bad sender");
        assert!(err.to_string().contains("501 5.1.7"), "{err}");
    }

    #[test]
    fn delivery_names_protocol_ipv6_host_and_tls() {
        let plan = plan();
        let q = query("alice@example.com", None);
        let text = explain(&plan, &q).expect("valid").to_string();
        assert!(
            text.contains("delivered over SMTP [2001:db8::11]:25, STARTTLS"),
            "{text}"
        );
        assert!(text.contains("(t.mailgw:3)"), "{text}");
        // No relay rules and no connector: a remote address is refused and
        // unroutable, and the output says both.
        let q = query("x@foreign.example", None);
        let text = explain(&plan, &q).expect("valid").to_string();
        assert!(
            text.contains("relay       denied by default: there are no relay rules"),
            "{text}"
        );
        assert!(
            text.contains("no connector's address space covers it"),
            "{text}"
        );
        assert!(text.contains("result      550 5.7.1 "), "{text}");
    }
}
