//! The plan itself and its gateway-wide settings.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::connector::Connector;
use crate::listener::{Listener, TlsProfile};
use crate::policy::{Disclaimer, Etrn, Filter, Journal, Log, Ndr, Queue, UnknownRecipients};
use crate::recipient::{Group, LocalDomain, Mailboxes};
use crate::recipient_table::RecipientTable;
use crate::relay_rule::RelayRule;
use crate::source::{SourceMap, SourceRef};

/// A compiled configuration: everything the runtime needs, nothing it does
/// not. Items refer to each other by `u32` index into the vectors below.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Plan {
    /// Gateway-wide identity and limits.
    pub gateway: Gateway,
    /// TLS profiles, referred to by [`crate::ListenerTls::profile`].
    pub tls: Vec<TlsProfile>,
    /// Sockets the gateway accepts connections on.
    pub listeners: Vec<Listener>,
    /// Mailbox servers behind the gateway.
    pub backends: Vec<Backend>,
    /// Domains this gateway accepts mail for; mail to them is never relaying.
    pub domains: Vec<LocalDomain>,
    /// Mailboxes, each on one backend.
    pub mailboxes: Mailboxes,
    /// Distribution groups.
    pub groups: Vec<Group>,
    /// Every SMTP address of every mailbox and group, for fast lookup.
    pub recipients: RecipientTable,
    /// How client credentials are checked.
    pub auth: AuthPlan,
    /// Connectors that carry relayed mail out.
    pub connectors: Vec<Connector>,
    /// Relay rules in source order; first match wins, default deny.
    pub relay: Vec<RelayRule>,
    /// What happens to mail for an unknown address in a local domain.
    pub unknown_recipients: UnknownRecipients,
    /// The `unknown-recipients` line; `None` when the default applies.
    pub unknown_recipients_source: Option<SourceRef>,
    /// Journal copies, if configured.
    pub journal: Option<Journal>,
    /// Disclaimers in source order.
    pub disclaimers: Vec<Disclaimer>,
    /// Content filters (after-queue), in source order.
    pub filters: Vec<Filter>,
    /// `ETRN` permissions, in source order.
    pub etrn: Vec<Etrn>,
    /// Non-delivery report settings.
    pub ndr: Ndr,
    /// Queue settings.
    pub queue: Queue,
    /// Logging settings.
    pub log: Log,
    /// The resolver used for MX lookups.
    pub dns: Dns,
    /// The files the plan was compiled from; every `source` indexes into it.
    pub sources: SourceMap,
}

/// Gateway identity and message limits.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Gateway {
    /// The name used in greetings, `EHLO` and `Received:` lines.
    pub hostname: String,
    /// The address NDRs are sent from, if any.
    pub postmaster: Option<String>,
    /// Largest accepted message, in bytes (advertised as `SIZE`).
    pub max_message_size: u64,
    /// Messages with more `Received:` lines than this are refused as looping.
    pub max_hops: u32,
}

impl Gateway {
    /// Default maximum message size: 25 MiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 25 * 1024 * 1024;
    /// Default hop limit; RFC 5321 6.3 asks for at least 100.
    pub const DEFAULT_MAX_HOPS: u32 = 100;

    /// A gateway called `hostname` with the default limits and no postmaster.
    pub fn new(hostname: impl Into<String>) -> Gateway {
        Gateway {
            hostname: hostname.into(),
            postmaster: None,
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            max_hops: Self::DEFAULT_MAX_HOPS,
        }
    }
}

/// How a client's user name and password are verified.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AuthPlan {
    /// The verification method.
    pub verify: Verify,
    /// Failed attempts from one client before it is disconnected.
    pub max_failures: u32,
    /// Delay after the first failed attempt, in milliseconds; the runtime
    /// grows it with each further failure.
    pub failure_delay_ms: u64,
}

impl AuthPlan {
    /// Default for [`AuthPlan::max_failures`].
    pub const DEFAULT_MAX_FAILURES: u32 = 5;
    /// Default for [`AuthPlan::failure_delay_ms`]: one second.
    pub const DEFAULT_FAILURE_DELAY_MS: u64 = 1000;
}

impl Default for AuthPlan {
    fn default() -> AuthPlan {
        AuthPlan {
            verify: Verify::default(),
            max_failures: Self::DEFAULT_MAX_FAILURES,
            failure_delay_ms: Self::DEFAULT_FAILURE_DELAY_MS,
        }
    }
}

/// The DNS resolver used for MX lookups.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Dns {
    /// Name servers, in order; empty means the system's resolver
    /// configuration.
    pub servers: Vec<SocketAddr>,
}

/// A password verification method.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// Against the password hashes stored with the mailboxes.
    #[default]
    Directory,
    /// By logging in to the user's backend over IMAP.
    BackendImap,
}

impl Plan {
    /// The postmaster's address: `gateway { postmaster }`, else postmaster
    /// at the first local domain, else at the gateway's host name. DSNs
    /// and journal reports come from it; `RCPT TO:<Postmaster>` goes to it.
    pub fn postmaster(&self) -> String {
        match (&self.gateway.postmaster, self.domains.first()) {
            (Some(address), _) => address.clone(),
            (None, Some(domain)) => format!("postmaster@{}", domain.name),
            (None, None) => format!("postmaster@{}", self.gateway.hostname),
        }
    }

    /// An empty plan for `hostname`: no listeners, recipients or rules, and
    /// default settings elsewhere. The compiler fills it in.
    pub fn empty(hostname: impl Into<String>) -> Plan {
        Plan {
            gateway: Gateway::new(hostname),
            tls: Vec::new(),
            listeners: Vec::new(),
            backends: Vec::new(),
            domains: Vec::new(),
            mailboxes: Mailboxes::default(),
            groups: Vec::new(),
            recipients: RecipientTable::default(),
            auth: AuthPlan::default(),
            connectors: Vec::new(),
            relay: Vec::new(),
            unknown_recipients: UnknownRecipients::default(),
            unknown_recipients_source: None,
            journal: None,
            disclaimers: Vec::new(),
            filters: Vec::new(),
            etrn: Vec::new(),
            ndr: Ndr::default(),
            queue: Queue::default(),
            log: Log::default(),
            dns: Dns::default(),
            sources: SourceMap::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postmaster_is_configured_or_at_the_first_local_domain_or_the_host() {
        let mut plan = Plan::empty("gw.example.com");
        assert_eq!(plan.postmaster(), "postmaster@gw.example.com");
        plan.domains.push(LocalDomain {
            name: "example.com".into(),
            source: SourceRef::new(0, 1),
        });
        assert_eq!(plan.postmaster(), "postmaster@example.com");
        plan.gateway.postmaster = Some("hostmaster@example.com".into());
        assert_eq!(plan.postmaster(), "hostmaster@example.com");
    }
}
