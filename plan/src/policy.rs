//! Message policies: unknown recipients, journal, disclaimers, filters,
//! NDRs, queue and logging.

use serde::{Deserialize, Serialize};

use crate::network::Network;
use crate::pattern::DomainPattern;
use crate::source::SourceRef;

/// What happens to mail for an unknown address in a local domain.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub enum UnknownRecipients {
    /// `550 5.1.1` at `RCPT` time, so no backscatter.
    #[default]
    Reject,
    /// Accept and forward to this host (Exchange's "forward mail with
    /// unresolved recipients").
    Forward {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
}

/// Copies of every message in scope to one address.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Journal {
    /// The journal recipient, normalized.
    pub to: String,
    /// Which messages are copied.
    pub scope: JournalScope,
    /// The `journal` line.
    pub source: SourceRef,
}

/// Which messages the journal copies.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalScope {
    /// Messages from outside to local recipients.
    Inbound,
    /// Messages relayed out.
    Outbound,
    /// Both.
    Both,
}

/// The direction of a message relative to the organization.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From outside to local recipients.
    Inbound,
    /// Relayed out.
    Outbound,
    /// Both.
    Both,
}

/// Where a disclaimer goes.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// After the body text.
    Append,
    /// Before the body text.
    Prepend,
}

/// Text added to messages, MIME-aware.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Disclaimer {
    /// Which messages get it.
    pub direction: Direction,
    /// Where it goes.
    pub position: Position,
    /// The text.
    pub text: String,
    /// The `disclaimer` line.
    pub source: SourceRef,
}

/// An after-queue content filter reached over SMTP.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Filter {
    /// Which messages pass through it.
    pub direction: Direction,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The `filter` line.
    pub source: SourceRef,
}

/// Who may ask for which domain's mail with SMTP `ETRN` (RFC 1985).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Etrn {
    /// The domains that may be asked for.
    pub domains: Vec<DomainPattern>,
    /// The clients that may ask.
    pub from: Vec<Network>,
    /// The `etrn` line.
    pub source: SourceRef,
}

/// Non-delivery report settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Ndr {
    /// Addresses that get a copy of every NDR, normalized.
    pub copy_to: Vec<String>,
}

/// Queue settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Queue {
    /// Spool directory.
    pub spool: String,
    /// Delays between attempts, in seconds; the last repeats until expiry.
    pub retry: Vec<u32>,
    /// Seconds after which the sender gets a delay warning.
    pub warn_after_s: u32,
    /// Seconds after which the message is returned as undeliverable.
    pub expire_s: u32,
    /// Delivery connections open at once, over all destinations.
    pub concurrency: u32,
    /// Delivery connections open at once to one destination (a backend,
    /// a smarthost, the MX hosts of one domain).
    pub per_destination: u32,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            spool: "/var/spool/mailgw".to_owned(),
            retry: vec![60, 300, 900, 3600, 14_400],
            warn_after_s: 14_400,
            expire_s: 5 * 86_400,
            concurrency: 100,
            per_destination: 20,
        }
    }
}

/// Logging settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Log {
    /// Least severe level written.
    pub level: LogLevel,
    /// Whether every protocol line is logged (passwords masked).
    pub protocol_trace: bool,
}

/// A log level.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// Also things that may be wrong.
    Warn,
    /// Also one line per session and message.
    #[default]
    Info,
    /// Also decisions and their reasons.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level as written in the language (`info`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}
