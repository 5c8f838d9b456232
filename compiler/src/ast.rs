//! The typed configuration, as the reader built it from all files.
//!
//! Everything keeps its span so that checks can point at it. Names are not
//! resolved yet: a mailbox names its backend by string; the checks prove the
//! names exist and lowering turns them into indices.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::source::{Span, Spanned, Text};

/// A whole configuration: the main file, its includes and directories.
#[derive(Debug, Default)]
pub struct Config {
    /// `gateway { ... }`.
    pub gateway: Option<Gateway>,
    /// `tls "name" { ... }`.
    pub tls: Vec<TlsProfile>,
    /// `listener "name" { ... }`.
    pub listeners: Vec<Listener>,
    /// `backend "name" { ... }`.
    pub backends: Vec<Backend>,
    /// `domain "name" local`.
    pub domains: Vec<Domain>,
    /// `mailbox "name" on "backend" { ... }` and `[[mailbox]]` in directories.
    pub mailboxes: Vec<Mailbox>,
    /// `group "name" { ... }` and `[[group]]` in directories.
    pub groups: Vec<Group>,
    /// `auth { ... }`.
    pub auth: Option<Auth>,
    /// `connector "name" { ... }`.
    pub connectors: Vec<Connector>,
    /// `relay { ... }`.
    pub relay: Option<Relay>,
    /// `unknown-recipients ...`.
    pub unknown_recipients: Option<Spanned<UnknownRecipients>>,
    /// `journal to ... scope ...`.
    pub journal: Option<Journal>,
    /// `disclaimer ...`.
    pub disclaimers: Vec<Disclaimer>,
    /// `filter ...`.
    pub filters: Vec<Filter>,
    /// `etrn ...` statements.
    pub etrn: Vec<Etrn>,
    /// `ndr { ... }`.
    pub ndr: Option<Ndr>,
    /// `queue { ... }`.
    pub queue: Option<Queue>,
    /// `log { ... }`.
    pub log: Option<Log>,
    /// `dns { ... }`.
    pub dns: Option<Dns>,
}

/// `gateway { ... }`: who this gateway is.
#[derive(Debug)]
pub struct Gateway {
    /// The name used in greetings, `Received:` and reports.
    pub hostname: Option<Spanned<String>>,
    /// The address reports are sent from.
    pub postmaster: Option<Spanned<String>>,
    /// The largest message accepted, in bytes.
    pub max_message_size: Option<Spanned<u64>>,
    /// The most `Received:` headers before a message is taken for a loop.
    pub max_hops: Option<Spanned<u32>>,
    /// The `gateway` keyword.
    pub span: Span,
}

/// `tls "name" { certificate ...; key ... }` or `tls "name" { self-signed }`.
#[derive(Debug)]
pub struct TlsProfile {
    /// The profile's name.
    pub name: Spanned<String>,
    /// Certificate chain file (PEM), resolved against the file it was written in.
    pub certificate: Option<Spanned<PathBuf>>,
    /// Private key file (PEM).
    pub key: Option<Spanned<PathBuf>>,
    /// `self-signed`: the runtime makes a certificate at start.
    pub self_signed: Option<Span>,
    /// The statement head.
    pub span: Span,
}

/// The protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// SMTP (and submission).
    Smtp,
    /// IMAP, proxied.
    Imap,
    /// POP3, proxied.
    Pop3,
}

/// A listener's TLS mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Clear text only.
    None,
    /// STARTTLS offered, clear text allowed.
    StartTlsOffer,
    /// STARTTLS required before anything else of substance.
    StartTlsRequire,
    /// TLS from the first byte.
    Implicit,
}

/// A listener's `tls` statement.
#[derive(Debug)]
pub struct ListenerTls {
    /// The mode.
    pub mode: TlsMode,
    /// The TLS profile, for every mode but `none`.
    pub profile: Option<Spanned<String>>,
}

/// A listener's authentication setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// No AUTH.
    Off,
    /// AUTH offered, not required.
    Offer,
    /// AUTH required before mail is accepted.
    Require,
}

/// `listener "name" { ... }`: one Domino-style site document.
#[derive(Debug)]
pub struct Listener {
    /// The listener's name.
    pub name: Spanned<String>,
    /// `protocol`.
    pub protocol: Option<Spanned<Protocol>>,
    /// `bind`.
    pub binds: Vec<Spanned<SocketAddr>>,
    /// `tls`.
    pub tls: Option<Spanned<ListenerTls>>,
    /// `auth`.
    pub auth: Option<Spanned<AuthMode>>,
    /// `max-connections`.
    pub max_connections: Option<Spanned<u32>>,
    /// `max-per-client`.
    pub max_per_client: Option<Spanned<u32>>,
    /// `timeout kind duration, ...`: seconds per kind.
    pub timeouts: Vec<(Spanned<TimeoutKind>, Spanned<u64>)>,
    /// `min-data-rate SIZE`: bytes per second.
    pub min_data_rate: Option<Spanned<u64>>,
    /// `filter-return`: the listener the content filter gives messages back on.
    pub filter_return: Option<Span>,
    /// The statement head.
    pub span: Span,
}

/// Which timeout a `timeout` statement sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Until the client may send its first command.
    Greeting,
    /// Waiting for a command.
    Command,
    /// Waiting for a block of DATA.
    Data,
    /// Idle between transactions.
    Idle,
    /// The whole session.
    Session,
}

/// TLS on a connection to a backend or next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointTls {
    /// Clear text.
    None,
    /// STARTTLS, required.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// A backend service: port and TLS.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// TCP port.
    pub port: u16,
    /// TLS mode.
    pub tls: EndpointTls,
}

/// `backend "name" { ... }`: a mailbox server users never see.
#[derive(Debug)]
pub struct Backend {
    /// The backend's name.
    pub name: Spanned<String>,
    /// `host`.
    pub host: Option<Spanned<String>>,
    /// `imap PORT [tls ...]`.
    pub imap: Option<Spanned<Endpoint>>,
    /// `pop3 PORT [tls ...]`.
    pub pop3: Option<Spanned<Endpoint>>,
    /// `lmtp PORT [tls ...]`.
    pub lmtp: Option<Spanned<Endpoint>>,
    /// `smtp PORT [tls ...]`.
    pub smtp: Option<Spanned<Endpoint>>,
    /// `forward-client on|off`: pass the client's address to the backend.
    pub forward_client: Option<Spanned<bool>>,
    /// `ca "file"`: the CA that signs the backend's certificate.
    pub ca: Option<Spanned<PathBuf>>,
    /// The statement head.
    pub span: Span,
}

/// `domain "name" local`.
#[derive(Debug)]
pub struct Domain {
    /// The domain, lowercase, without trailing dot.
    pub name: Spanned<String>,
    /// The statement head.
    pub span: Span,
}

/// A mailbox, from the configuration or a directory file. Its strings are
/// [`Text`]s, read with [`crate::source::SourceDb::text`]: a directory's
/// plain strings stay in the file's text.
#[derive(Debug)]
pub struct Mailbox {
    /// The mailbox's name (also its login name).
    pub name: Spanned<Text>,
    /// The backend holding it.
    pub backend: Spanned<Text>,
    /// Its SMTP addresses, normalized; the first is the primary one.
    pub addresses: Vec<Spanned<Text>>,
    /// A password hash (argon2id, SHA512-CRYPT, bcrypt) for `verify directory`.
    pub password: Option<Spanned<Text>>,
    /// The statement head (or the TOML table).
    pub span: Span,
}

/// A distribution group; its strings are [`Text`]s, like a mailbox's.
#[derive(Debug)]
pub struct Group {
    /// The group's name.
    pub name: Spanned<Text>,
    /// Its own SMTP addresses, normalized.
    pub addresses: Vec<Spanned<Text>>,
    /// Members: mailbox or group names, or external addresses.
    pub members: Vec<Spanned<Text>>,
    /// The statement head (or the TOML table).
    pub span: Span,
}

/// How passwords are verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Against the password hashes in the directory.
    Directory,
    /// By an IMAP LOGIN on the user's backend.
    BackendImap,
}

/// `auth { ... }`.
#[derive(Debug)]
pub struct Auth {
    /// `verify`.
    pub verify: Option<Spanned<Verify>>,
    /// `max-failures N`: failed attempts per client before it is cut off.
    pub max_failures: Option<Spanned<u32>>,
    /// `failure-delay DURATION`: the first delay after a failure, in milliseconds; it grows.
    pub failure_delay: Option<Spanned<u64>>,
    /// The `auth` keyword.
    pub span: Span,
}

/// TLS policy towards a next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never TLS.
    None,
    /// STARTTLS when offered, clear text otherwise.
    Opportunistic,
    /// STARTTLS or no delivery.
    Require,
}

/// How a connector delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Deliver {
    /// To one smarthost.
    Smarthost {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// To the recipient domain's MX hosts.
    Mx {
        /// Port on the MX hosts.
        port: u16,
    },
}

/// A sender restriction entry of a connector.
#[derive(Debug, Clone, PartialEq)]
pub enum SenderRef {
    /// `mailbox "name"`.
    Mailbox(String),
    /// `group "name"`.
    Group(String),
    /// An address pattern.
    Pattern(String),
}

/// `address-space PATTERN cost N`.
#[derive(Debug)]
pub struct AddressSpace {
    /// `*`, `*.example`, `example.com`.
    pub pattern: Spanned<String>,
    /// The cost; lower wins.
    pub cost: Spanned<u32>,
    /// The statement.
    pub span: Span,
}

/// `connector "name" { ... }`: the Internet Mail Connector.
#[derive(Debug)]
pub struct Connector {
    /// The connector's name.
    pub name: Spanned<String>,
    /// Its address spaces.
    pub address_spaces: Vec<AddressSpace>,
    /// `deliver ...`.
    pub deliver: Option<Spanned<Deliver>>,
    /// The TLS policy from the `deliver` statement.
    pub tls: Option<Spanned<TlsPolicy>>,
    /// Credentials file for AUTH at the smarthost.
    pub credentials: Option<Spanned<PathBuf>>,
    /// CA certificates the smarthost or MX hosts must chain to (`ca FILE`).
    pub ca: Option<Spanned<PathBuf>>,
    /// `accept-from`: only these senders may use the connector.
    pub accept_from: Vec<Spanned<SenderRef>>,
    /// `reject-from`: these senders may not.
    pub reject_from: Vec<Spanned<SenderRef>>,
    /// The statement head.
    pub span: Span,
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Relaying allowed.
    Allow,
    /// Relaying denied.
    Deny,
}

/// A relay rule condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The client authenticated.
    Authenticated,
    /// The client's address is in a network.
    From(ipnet::Network),
    /// The recipient matches.
    To(String),
    /// The envelope sender matches (forgeable: never enough on its own).
    Sender(String),
}

/// One relay rule.
#[derive(Debug)]
pub struct RelayRule {
    /// Allow or deny.
    pub action: Spanned<Action>,
    /// Conditions, ANDed; empty means `all`.
    pub conditions: Vec<Spanned<Condition>>,
    /// The statement.
    pub span: Span,
}

/// `relay { ... }`.
#[derive(Debug)]
pub struct Relay {
    /// The rules in order.
    pub rules: Vec<RelayRule>,
    /// The `relay` keyword.
    pub span: Span,
}

/// What happens to mail for an unknown recipient in a local domain.
#[derive(Debug, Clone, PartialEq)]
pub enum UnknownRecipients {
    /// 550 5.1.1 at RCPT time.
    Reject,
    /// Accept and forward to another host.
    Forward {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Where the host was written.
        span: Span,
    },
}

/// A direction of mail flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From outside to local recipients.
    Inbound,
    /// From local senders to outside.
    Outbound,
    /// Both.
    Both,
}

/// `journal to ADDRESS scope DIRECTION`.
#[derive(Debug)]
pub struct Journal {
    /// The journal recipient.
    pub to: Spanned<String>,
    /// Which mail is journaled.
    pub scope: Spanned<Direction>,
    /// The statement.
    pub span: Span,
}

/// Append or prepend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// After the body.
    Append,
    /// Before the body.
    Prepend,
}

/// `disclaimer DIRECTION append|prepend TEXT`.
#[derive(Debug)]
pub struct Disclaimer {
    /// Which mail.
    pub direction: Spanned<Direction>,
    /// Where in the body.
    pub position: Spanned<Position>,
    /// The text.
    pub text: Spanned<String>,
    /// The statement.
    pub span: Span,
}

/// `filter DIRECTION smtp HOST:PORT`.
#[derive(Debug)]
pub struct Filter {
    /// Which mail passes the filter.
    pub direction: Spanned<Direction>,
    /// The scanner's host.
    pub host: Spanned<String>,
    /// The scanner's port.
    pub port: u16,
    /// The statement.
    pub span: Span,
}

/// `etrn PATTERN, ... from NETWORK, ...`.
#[derive(Debug)]
pub struct Etrn {
    /// The domains a client may ask for.
    pub domains: Vec<Spanned<String>>,
    /// The clients that may ask.
    pub from: Vec<Spanned<ipnet::Network>>,
    /// The statement.
    pub span: Span,
}

/// `ndr { copy-to ... }`.
#[derive(Debug)]
pub struct Ndr {
    /// Who gets a copy of each NDR.
    pub copy_to: Vec<Spanned<String>>,
    /// The `ndr` keyword.
    pub span: Span,
}

/// `queue { ... }`.
#[derive(Debug)]
pub struct Queue {
    /// Spool directory.
    pub spool: Option<Spanned<PathBuf>>,
    /// Retry intervals in seconds.
    pub retry: Vec<Spanned<u64>>,
    /// Delay warning after, in seconds.
    pub warn_after: Option<Spanned<u64>>,
    /// Bounce after, in seconds.
    pub expire: Option<Spanned<u64>>,
    /// Delivery connections at once.
    pub concurrency: Option<Spanned<u32>>,
    /// Delivery connections at once per destination.
    pub per_destination: Option<Spanned<u32>>,
    /// The `queue` keyword.
    pub span: Span,
}

/// `log { ... }`.
#[derive(Debug)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: Option<Spanned<String>>,
    /// Log every protocol line (never passwords).
    pub protocol_trace: Option<Spanned<bool>>,
    /// The `log` keyword.
    pub span: Span,
}

/// `dns { server ADDR:PORT }`: the resolver used for MX lookups.
#[derive(Debug)]
pub struct Dns {
    /// Name servers; none means the system's resolver configuration.
    pub servers: Vec<Spanned<SocketAddr>>,
    /// The `dns` keyword.
    pub span: Span,
}

/// IP networks as written in relay rules.
pub mod ipnet {
    use std::net::IpAddr;

    /// An address and a prefix length.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Network {
        /// The address as written.
        pub addr: IpAddr,
        /// Prefix length in bits.
        pub prefix: u8,
    }

    impl Network {
        /// True for `0.0.0.0/0` and `::/0`: every address of the family.
        pub fn is_everything(&self) -> bool {
            self.prefix == 0
        }
    }
}
