//! What became of each recipient, and which host answered.

use std::net::SocketAddr;

use super::reply::{Reply, Status};

/// The result of one delivery: one outcome per recipient, in the order of
/// [`Envelope::recipients`](super::Envelope::recipients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The host that took the transaction, or the last one tried when none
    /// did (`None` when no host was reached at all): the DSN's
    /// `Remote-MTA`.
    pub remote: Option<RemoteMta>,
    /// One outcome per recipient.
    pub outcomes: Vec<Outcome>,
    /// The host that took the transaction offered `DSN` (RFC 3461): it was
    /// given `NOTIFY` and reports on delivery itself, so no `relayed`
    /// notification is due from here.
    pub dsn: bool,
}

/// A host that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMta {
    /// Its name: the MX or smarthost name, or the backend's host.
    pub name: String,
    /// The address connected to.
    pub addr: SocketAddr,
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The next hop took responsibility (2xx after the data).
    Delivered {
        /// The reply to the end of the data (LMTP: this recipient's).
        reply: Reply,
    },
    /// Not delivered this time; to be tried again: a 4xx reply, or no host
    /// could be reached, or TLS, a timeout or the connection failed.
    Deferred(Failure),
    /// Never deliverable as it stands: a 5xx reply, a null MX, a message
    /// too large or 8-bit for the peer.
    Failed(Failure),
}

impl Outcome {
    /// Whether the outcome is final (delivered or failed).
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Deferred(_))
    }

    /// The outcome a reply means for the recipients it applies to: 2xx
    /// delivered, 5xx failed, anything else deferred.
    pub(crate) fn from_reply(reply: &Reply, host: &str) -> Outcome {
        if reply.is_positive() {
            return Outcome::Delivered {
                reply: reply.clone(),
            };
        }
        let failure = Failure {
            status: reply.status_or_generic(),
            reason: format!("host {host} said: {reply}"),
            reply: Some(reply.clone()),
        };
        if reply.is_permanent() {
            Outcome::Failed(failure)
        } else {
            Outcome::Deferred(Failure {
                status: if reply.is_transient() {
                    failure.status
                } else {
                    Status::new(4, 5, 0)
                },
                ..failure
            })
        }
    }

    /// A temporary failure found here, not said by a peer.
    pub(crate) fn deferred(status: Status, reason: impl Into<String>) -> Outcome {
        Outcome::Deferred(Failure {
            status,
            reason: reason.into(),
            reply: None,
        })
    }

    /// A permanent failure found here, not said by a peer.
    pub(crate) fn failed(status: Status, reason: impl Into<String>) -> Outcome {
        Outcome::Failed(Failure {
            status,
            reason: reason.into(),
            reply: None,
        })
    }
}

/// Why a recipient was deferred or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The enhanced status code: the peer's, or one chosen here (for a
    /// reply without one, the generic `x.0.0` of its class).
    pub status: Status,
    /// A sentence for logs and the DSN's human-readable part, naming the
    /// host.
    pub reason: String,
    /// The peer's reply when a peer gave the verdict (the DSN's
    /// `Diagnostic-Code: smtp; ...`); `None` when it was decided here
    /// (connection failure, null MX, size, 8-bit).
    pub reply: Option<Reply>,
}
