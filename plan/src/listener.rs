//! TLS profiles and listeners (the Domino "site documents").

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::source::SourceRef;

/// A named certificate and key.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TlsProfile {
    /// The profile name as written.
    pub name: String,
    /// Where the certificate comes from.
    pub certificate: TlsSource,
    /// The `tls` block.
    pub source: SourceRef,
}

/// Where a TLS certificate comes from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum TlsSource {
    /// PEM files, resolved by the compiler (absolute, or relative to the
    /// configuration directory) and stored as resolved.
    Files {
        /// Certificate chain path.
        certificate: String,
        /// Private key path.
        key: String,
    },
    /// A self-signed certificate the runtime makes at start.
    SelfSigned {
        /// Names the certificate covers.
        hostnames: Vec<String>,
    },
}

/// The protocol a listener speaks.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SMTP (MX or submission).
    Smtp,
    /// IMAP, always proxied to the user's backend.
    Imap,
    /// POP3, always proxied to the user's backend.
    Pop3,
}

/// A socket the gateway accepts connections on.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Listener {
    /// The listener name as written.
    pub name: String,
    /// Protocol spoken on the sockets.
    pub protocol: Protocol,
    /// Addresses to bind, in source order.
    pub binds: Vec<SocketAddr>,
    /// TLS mode and certificate.
    pub tls: ListenerTls,
    /// Whether clients may or must authenticate.
    pub auth: AuthMode,
    /// Connection limits and timeouts.
    pub limits: Limits,
    /// Whether mail coming back from an after-queue content filter is
    /// accepted here (the filter's return port).
    pub filter_return: bool,
    /// The `listener` block.
    pub source: SourceRef,
}

/// A listener's TLS settings.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerTls {
    /// When TLS is used.
    pub mode: TlsMode,
    /// Index into [`crate::Plan::tls`]; `None` exactly when `mode` is `None`.
    pub profile: Option<u32>,
}

/// When a listener uses TLS.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Cleartext only.
    None,
    /// STARTTLS advertised; cleartext sessions allowed.
    StartTlsOffer,
    /// STARTTLS required before anything but the greeting and `EHLO`.
    StartTlsRequire,
    /// TLS from the first byte (ports 465, 993, 995).
    Implicit,
}

/// Whether clients authenticate on a listener.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Authentication is not offered.
    Off,
    /// Offered, not required.
    Offer,
    /// Required before mail is accepted.
    Require,
}

/// Connection limits and timeouts of one listener; each maps to a reply.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections on this listener.
    pub max_connections: u32,
    /// Concurrent connections from one client address.
    pub max_per_client: u32,
    /// Seconds to wait for the client to accept the greeting and speak
    /// (RFC 5321 4.5.3.2.1: 5 minutes).
    pub greeting_timeout_s: u32,
    /// Seconds to wait for a command (RFC 5321 4.5.3.2: 5 minutes).
    pub command_timeout_s: u32,
    /// Seconds to wait for each block of message data (RFC 5321 4.5.3.2.6:
    /// 3 minutes).
    pub data_timeout_s: u32,
    /// Seconds an idle, authenticated IMAP/POP3 session may stay open.
    pub idle_timeout_s: u32,
    /// Seconds a whole session may last, whatever it does.
    pub session_deadline_s: u32,
    /// Slowest accepted transfer rate during `DATA`, in bytes per second,
    /// measured over the whole transfer; 0 disables the check.
    pub min_data_rate: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            max_per_client: 16,
            greeting_timeout_s: 300,
            command_timeout_s: 300,
            data_timeout_s: 180,
            idle_timeout_s: 600,
            session_deadline_s: 3600,
            min_data_rate: 256,
        }
    }
}
