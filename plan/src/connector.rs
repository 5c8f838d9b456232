//! Connectors: how relayed mail leaves (the Internet Mail Connector).

use serde::{Deserialize, Serialize};

use crate::pattern::{AddressPattern, DomainPattern};
use crate::source::SourceRef;

/// A way out for relayed mail.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Connector {
    /// The connector name as written.
    pub name: String,
    /// The domains it serves, with their costs.
    pub address_spaces: Vec<AddressSpace>,
    /// Where it delivers.
    pub deliver: Deliver,
    /// TLS towards the next hop.
    pub tls: TlsPolicy,
    /// Path of the credentials file for the smarthost, if any.
    pub credentials: Option<String>,
    /// CA certificates (PEM file) a `tls require` peer must chain to;
    /// `None`: the webpki roots.
    pub ca: Option<String>,
    /// Senders allowed to use it; empty means everyone.
    pub accept_from: Vec<SenderMatch>,
    /// Senders refused, checked before `accept_from`.
    pub reject_from: Vec<SenderMatch>,
    /// The `connector` block.
    pub source: SourceRef,
}

/// One `address-space` line.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AddressSpace {
    /// The domains covered.
    pub pattern: DomainPattern,
    /// Lower is preferred among equally specific spaces.
    pub cost: u32,
    /// The `address-space` line.
    pub source: SourceRef,
}

/// Where a connector delivers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Deliver {
    /// Everything to one host.
    Smarthost {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// To the recipient domain's MX hosts.
    Mx {
        /// TCP port on the MX hosts (25 normally).
        port: u16,
    },
}

/// TLS towards the next hop.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never use TLS.
    None,
    /// STARTTLS when offered, cleartext otherwise.
    Opportunistic,
    /// STARTTLS required with a valid certificate; defer otherwise.
    Require,
}

/// A sender in a delivery restriction.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum SenderMatch {
    /// Any address of this mailbox (index into [`crate::Plan::mailboxes`]).
    Mailbox(u32),
    /// Any member of this group, recursively (index into
    /// [`crate::Plan::groups`]).
    Group(u32),
    /// Any address matching the pattern.
    Pattern(AddressPattern),
}
