//! What is delivered: the envelope of one spooled message, for the
//! recipients that go to one next hop.

use crate::spool::{self, BodyType, Notify, Ret};

/// The envelope of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path; `None` for the null sender `<>`.
    pub sender: Option<String>,
    /// `RET=` (RFC 3461), passed on when the peer offers `DSN`.
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461), decoded; passed on when the peer offers `DSN`.
    pub envid: Option<String>,
    /// `BODY=` as the client declared it. Whether the message is really
    /// 8-bit is decided from its bytes.
    pub body: BodyType,
    /// Whether the message needs `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// The recipients, in order; the [`Report`](super::Report) answers for
    /// each at the same index.
    pub recipients: Vec<Recipient>,
}

/// One recipient of a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The forward path.
    pub address: String,
    /// `NOTIFY=` (RFC 3461), passed on when the peer offers `DSN`.
    pub notify: Option<Notify>,
    /// `ORCPT=` as `addr-type;address`, decoded; passed on when the peer
    /// offers `DSN`.
    pub orcpt: Option<String>,
}

impl Recipient {
    /// A recipient without DSN parameters.
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            notify: None,
            orcpt: None,
        }
    }
}

impl Envelope {
    /// The envelope of a spooled message, for the recipients at `indices`
    /// (indices into [`spool::Envelope::recipients`]; out-of-range ones
    /// are skipped).
    pub fn from_spool(envelope: &spool::Envelope, indices: &[usize]) -> Envelope {
        Envelope {
            sender: envelope.sender.clone(),
            ret: envelope.ret,
            envid: envelope.envid.clone(),
            body: envelope.body,
            smtputf8: envelope.smtputf8,
            recipients: indices
                .iter()
                .filter_map(|&i| envelope.recipients.get(i))
                .map(|r| Recipient {
                    address: r.address.clone(),
                    notify: r.notify,
                    orcpt: r.orcpt.clone(),
                })
                .collect(),
        }
    }
}
