//! A readable overview of a plan, for `mailgwc inspect` and start-up logs.

use std::fmt;

use crate::backend::{Endpoint, EndpointTls};
use crate::connector::{Deliver, SenderMatch, TlsPolicy};
use crate::listener::{AuthMode, Protocol, TlsMode};
use crate::plan::{Plan, Verify};
use crate::policy::{Direction, JournalScope, Position, UnknownRecipients};
use crate::recipient::Target;
use crate::relay_rule::RelayAction;

/// Displays a plan as a human summary. Output is deterministic: items in
/// plan order, no hash map iterated.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a>(pub &'a Plan);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.0;
        let at = |s| plan.sources.describe(s);
        let g = &plan.gateway;
        writeln!(f, "gateway {}", g.hostname)?;
        writeln!(
            f,
            "  postmaster        {}",
            g.postmaster.as_deref().unwrap_or("(none)")
        )?;
        writeln!(f, "  max-message-size  {} bytes", g.max_message_size)?;
        writeln!(f, "  max-hops          {}", g.max_hops)?;

        writeln!(f, "listeners ({})", plan.listeners.len())?;
        for l in &plan.listeners {
            let binds: Vec<String> = l.binds.iter().map(ToString::to_string).collect();
            let profile = l
                .tls
                .profile
                .and_then(|p| plan.tls.get(p as usize))
                .map(|p| format!(" \"{}\"", p.name))
                .unwrap_or_default();
            writeln!(
                f,
                "  {:<12} {} on {}; tls {}{}; auth {}  ({})",
                l.name,
                protocol(l.protocol),
                binds.join(", "),
                tls_mode(l.tls.mode),
                profile,
                auth_mode(l.auth),
                at(l.source)
            )?;
        }

        writeln!(f, "backends ({})", plan.backends.len())?;
        for b in &plan.backends {
            let mut parts = Vec::new();
            for (name, e) in [
                ("imap", b.imap),
                ("pop3", b.pop3),
                ("lmtp", b.lmtp),
                ("smtp", b.smtp),
            ] {
                if let Some(e) = e {
                    parts.push(format!("{name} {}", endpoint(e)));
                }
            }
            if let Some(ca) = &b.ca {
                parts.push(format!("ca {ca}"));
            }
            writeln!(
                f,
                "  {:<12} {}: {}  ({})",
                b.name,
                b.host,
                parts.join(", "),
                at(b.source)
            )?;
        }

        let domains: Vec<&str> = plan.domains.iter().map(|d| d.name.as_str()).collect();
        writeln!(
            f,
            "local domains ({}): {}",
            domains.len(),
            domains.join(", ")
        )?;
        let group_addresses = plan
            .recipients
            .iter()
            .filter(|(_, t)| matches!(t, Target::Group(_)))
            .count();
        writeln!(
            f,
            "recipients: {} mailboxes, {} groups, {} addresses ({} of groups)",
            plan.mailboxes.len(),
            plan.groups.len(),
            plan.recipients.len(),
            group_addresses
        )?;
        let unknown = match &plan.unknown_recipients {
            UnknownRecipients::Reject => "reject".to_owned(),
            UnknownRecipients::Forward { host, port } => format!("forward to {host}:{port}"),
        };
        match plan.unknown_recipients_source {
            Some(source) => writeln!(f, "unknown recipients: {unknown}  ({})", at(source))?,
            None => writeln!(f, "unknown recipients: {unknown}")?,
        }
        let verify = match plan.auth.verify {
            Verify::Directory => "directory",
            Verify::BackendImap => "backend imap",
        };
        writeln!(
            f,
            "auth: verify {verify}, max-failures {}, failure-delay {}ms",
            plan.auth.max_failures, plan.auth.failure_delay_ms
        )?;

        writeln!(f, "connectors ({})", plan.connectors.len())?;
        for c in &plan.connectors {
            let deliver = match &c.deliver {
                Deliver::Smarthost { host, port } => format!("smarthost {host}:{port}"),
                Deliver::Mx { port } => format!("mx port {port}"),
            };
            let tls = match c.tls {
                TlsPolicy::None => "none",
                TlsPolicy::Opportunistic => "opportunistic",
                TlsPolicy::Require => "require",
            };
            write!(f, "  {:<12} deliver {deliver}, tls {tls}", c.name)?;
            if c.credentials.is_some() {
                f.write_str(", credentials")?;
            }
            writeln!(f, "  ({})", at(c.source))?;
            for s in &c.address_spaces {
                writeln!(
                    f,
                    "    address-space {:<24} cost {:<4} ({})",
                    s.pattern.to_string(),
                    s.cost,
                    at(s.source)
                )?;
            }
            for (label, list) in [
                ("accept-from", &c.accept_from),
                ("reject-from", &c.reject_from),
            ] {
                if !list.is_empty() {
                    let items: Vec<String> = list.iter().map(|m| sender(plan, m)).collect();
                    writeln!(f, "    {label} {}", items.join(", "))?;
                }
            }
        }

        writeln!(f, "relay rules ({}, then deny)", plan.relay.len())?;
        for r in &plan.relay {
            let action = match r.action {
                RelayAction::Allow => "allow",
                RelayAction::Deny => "deny ",
            };
            let conditions: Vec<String> = r.conditions.iter().map(ToString::to_string).collect();
            let conditions = if conditions.is_empty() {
                "all".to_owned()
            } else {
                conditions.join(" and ")
            };
            writeln!(f, "  {action} {conditions}  ({})", at(r.source))?;
        }

        if let Some(j) = &plan.journal {
            let scope = match j.scope {
                JournalScope::Inbound => "inbound",
                JournalScope::Outbound => "outbound",
                JournalScope::Both => "both",
            };
            writeln!(f, "journal to {} scope {scope}  ({})", j.to, at(j.source))?;
        }
        for d in &plan.disclaimers {
            let position = match d.position {
                Position::Append => "append",
                Position::Prepend => "prepend",
            };
            writeln!(
                f,
                "disclaimer {} {position} {:?}  ({})",
                direction(d.direction),
                d.text,
                at(d.source)
            )?;
        }
        for flt in &plan.filters {
            writeln!(
                f,
                "filter {} smtp {}:{}  ({})",
                direction(flt.direction),
                flt.host,
                flt.port,
                at(flt.source)
            )?;
        }
        for e in &plan.etrn {
            let domains: Vec<String> = e.domains.iter().map(ToString::to_string).collect();
            let from: Vec<String> = e.from.iter().map(ToString::to_string).collect();
            writeln!(
                f,
                "etrn {} from {}  ({})",
                domains.join(", "),
                from.join(", "),
                at(e.source)
            )?;
        }
        if !plan.ndr.copy_to.is_empty() {
            writeln!(f, "ndr copy-to {}", plan.ndr.copy_to.join(", "))?;
        }
        let q = &plan.queue;
        let retry: Vec<String> = q.retry.iter().map(|s| duration(*s)).collect();
        writeln!(f, "queue {}", q.spool)?;
        writeln!(f, "  retry       {}", retry.join(", "))?;
        writeln!(f, "  warn-after  {}", duration(q.warn_after_s))?;
        writeln!(f, "  expire      {}", duration(q.expire_s))?;
        writeln!(
            f,
            "  concurrency {}, per destination {}",
            q.concurrency, q.per_destination
        )?;
        writeln!(
            f,
            "log level {}, protocol trace {}",
            plan.log.level.as_str(),
            if plan.log.protocol_trace { "on" } else { "off" }
        )?;
        if plan.dns.servers.is_empty() {
            writeln!(f, "dns: system resolver")
        } else {
            let servers: Vec<String> = plan.dns.servers.iter().map(ToString::to_string).collect();
            writeln!(f, "dns: {}", servers.join(", "))
        }
    }
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Smtp => "smtp",
        Protocol::Imap => "imap",
        Protocol::Pop3 => "pop3",
    }
}

fn tls_mode(m: TlsMode) -> &'static str {
    match m {
        TlsMode::None => "none",
        TlsMode::StartTlsOffer => "starttls offer",
        TlsMode::StartTlsRequire => "starttls require",
        TlsMode::Implicit => "implicit",
    }
}

fn auth_mode(m: AuthMode) -> &'static str {
    match m {
        AuthMode::Off => "off",
        AuthMode::Offer => "offer",
        AuthMode::Require => "require",
    }
}

fn endpoint(e: Endpoint) -> String {
    match e.tls {
        EndpointTls::None => e.port.to_string(),
        EndpointTls::StartTls => format!("{} tls starttls", e.port),
        EndpointTls::Implicit => format!("{} tls implicit", e.port),
    }
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
        Direction::Both => "both",
    }
}

fn sender(plan: &Plan, m: &SenderMatch) -> String {
    match m {
        SenderMatch::Mailbox(i) => match plan.mailboxes.get(*i as usize) {
            Some(mb) => format!("mailbox \"{}\"", mb.name),
            None => format!("mailbox #{i}"),
        },
        SenderMatch::Group(i) => match plan.groups.get(*i as usize) {
            Some(g) => format!("group \"{}\"", g.name),
            None => format!("group #{i}"),
        },
        SenderMatch::Pattern(p) => format!("\"{p}\""),
    }
}

/// Seconds in the largest whole unit the language has (`4h`, `90s`).
fn duration(seconds: u32) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds >= size && seconds.checked_rem(size) == Some(0) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_plan;

    #[test]
    fn summary_names_everything_with_its_line() {
        let text = Summary(&sample_plan()).to_string();
        let expected = [
            "gateway mail.example.com",
            "  mx           smtp on 0.0.0.0:25, [::]:25; tls starttls offer \"public\"; auth off  (examples/frontend.mailgw:3)",
            "  mbx1         10.0.0.11: imap 143 tls starttls, pop3 110, lmtp 24, ca certs/backend-ca.pem  (examples/frontend.mailgw:5)",
            "local domains (2): example.com, example.org",
            "recipients: 3 mailboxes, 2 groups, 6 addresses (2 of groups)",
            "  internet     deliver smarthost relay.isp.example:587, tls require, credentials  (examples/frontend.mailgw:50)",
            "    address-space *.tochter.example        cost 1    (examples/frontend.mailgw:61)",
            "    accept-from group \"sales\"",
            "    reject-from mailbox \"carol\"",
            "relay rules (4, then deny)",
            "  deny  from 10.66.0.0/16  (examples/frontend.mailgw:41)",
            "  allow to \"*.tochter.example\" and sender \"example.com\"",
            "  retry       1m, 5m, 15m, 1h, 4h",
            "  expire      5d",
            "  concurrency 100, per destination 20",
            "etrn *.tochter.example from 192.0.2.0/24",
            "log level info, protocol trace off",
            "auth: verify directory, max-failures 5, failure-delay 1000ms",
            "dns: 192.0.2.53:53",
            "lmtp 24, ca certs/backend-ca.pem  (examples/frontend.mailgw:5)",
        ];
        for line in expected {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(text, Summary(&sample_plan()).to_string());
    }

    #[test]
    fn durations_use_the_largest_unit() {
        assert_eq!(duration(90), "90s");
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(432_000), "5d");
    }
}
