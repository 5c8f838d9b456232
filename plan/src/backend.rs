//! Backends: the mailbox servers behind the gateway.

use serde::{Deserialize, Serialize};

use crate::source::SourceRef;

/// A mailbox server the users never see directly.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Backend {
    /// The backend name as written.
    pub name: String,
    /// Host name or IP address, as written.
    pub host: String,
    /// IMAP endpoint for proxied IMAP sessions.
    pub imap: Option<Endpoint>,
    /// POP3 endpoint for proxied POP3 sessions.
    pub pop3: Option<Endpoint>,
    /// LMTP endpoint for local delivery (preferred over SMTP).
    pub lmtp: Option<Endpoint>,
    /// SMTP endpoint for local delivery when there is no LMTP.
    pub smtp: Option<Endpoint>,
    /// Whether the proxy tells the backend the real client address
    /// (IMAP `ID`, XCLIENT and similar).
    pub forward_client: bool,
    /// The CA certificate file (PEM) that signs the backend's certificate,
    /// resolved by the compiler; `None` means the system's trust store.
    pub ca: Option<String>,
    /// The `backend` block.
    pub source: SourceRef,
}

/// A port on a backend and how to secure it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// TCP port.
    pub port: u16,
    /// TLS on this connection.
    pub tls: EndpointTls,
}

/// TLS towards a backend.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointTls {
    /// Cleartext.
    None,
    /// STARTTLS, required.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}
