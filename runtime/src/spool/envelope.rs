//! The spool's own envelope: what the SMTP session accepted, in the form the
//! spool stores and the queue manager delivers from.
//!
//! The SMTP layer converts its session envelope into this type; the spool does
//! not depend on the SMTP module, so either can change without the other.

use std::net::IpAddr;
use std::time::SystemTime;

/// The envelope of one spooled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path as normalized address text; `None` for the null
    /// sender `<>` (bounces).
    pub sender: Option<String>,
    /// The accepted recipients, in `RCPT` order. A recipient's index in this
    /// list is its identity in [`Spool::mark`](super::Spool::mark).
    pub recipients: Vec<Recipient>,
    /// `RET=` of `MAIL FROM` (RFC 3461), if given.
    pub ret: Option<Ret>,
    /// `ENVID=` of `MAIL FROM` (RFC 3461), xtext-decoded, if given.
    pub envid: Option<String>,
    /// `BODY=` of `MAIL FROM` (RFC 6152).
    pub body: BodyType,
    /// Whether `MAIL FROM` carried `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The `HELO`/`EHLO` argument as the client sent it.
    pub helo: String,
    /// The authenticated user, if the session authenticated.
    pub auth_user: Option<String>,
    /// When the message was accepted. Stored with microsecond precision.
    pub received_at: SystemTime,
    /// The size of the message in bytes. Set by the spool at commit from the
    /// bytes actually written; what the caller puts here is ignored.
    pub size: u64,
    /// Where the message came from, for the direction of disclaimers,
    /// journaling and content filters.
    pub origin: Origin,
}

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Origin {
    /// Sent by the organization: an authenticated client, one the relay
    /// rules let relay, or the gateway itself (DSNs, journal reports).
    /// Mail from anyone else to a local recipient is inbound.
    pub inside: bool,
    /// Came back from the content filter (a `filter-return` listener): it
    /// is not filtered again.
    pub filtered: bool,
}

/// One recipient of a spooled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The forward path as normalized address text.
    pub address: String,
    /// `ORCPT=` of `RCPT TO` (RFC 3461), decoded, as `addr-type;address`.
    pub orcpt: Option<String>,
    /// `NOTIFY=` of `RCPT TO` (RFC 3461); `None` when not given.
    pub notify: Option<Notify>,
    /// Where delivery to this recipient stands. Always
    /// [`RecipientState::Pending`] in the committed message file; later
    /// states come from the state journal.
    pub state: RecipientState,
    /// The journal address (`journal to`): this recipient gets a journal
    /// report wrapping the message, not the message itself.
    pub journal: bool,
}

impl Recipient {
    /// A pending recipient without DSN parameters.
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            orcpt: None,
            notify: None,
            state: RecipientState::Pending,
            journal: false,
        }
    }
}

/// `NOTIFY=` of one recipient. `NEVER` is all three false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    /// `SUCCESS`: report delivery.
    pub success: bool,
    /// `FAILURE`: report failure.
    pub failure: bool,
    /// `DELAY`: report delay.
    pub delay: bool,
}

/// `RET=` of `MAIL FROM` (RFC 3461).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// `RET=FULL`: return the whole message in a DSN.
    Full,
    /// `RET=HDRS`: return the headers only.
    Hdrs,
}

/// `BODY=` of `MAIL FROM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    /// `7BIT`, also when `BODY=` was not given.
    #[default]
    SevenBit,
    /// `8BITMIME`.
    EightBitMime,
}

/// Where delivery to one recipient stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientState {
    /// Not yet tried.
    Pending,
    /// Delivered; final: the recipient is never sent the message again.
    Delivered,
    /// Failed permanently, with the reason; final.
    Failed(String),
    /// Tried and failed temporarily, with the reason; will be retried.
    Deferred(String),
}

impl RecipientState {
    /// Whether the state is final (delivered or failed).
    pub fn is_final(&self) -> bool {
        matches!(self, RecipientState::Delivered | RecipientState::Failed(_))
    }
}
