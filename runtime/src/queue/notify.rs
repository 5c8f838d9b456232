//! Telling the sender: delivery status notifications (RFC 3464, 3461) for
//! failures, delays and, when asked, successes — queued like any message,
//! from the null sender, so a DSN never causes another.

use std::time::SystemTime;

use mailgw_plan::Plan;

use super::schedule::Schedule;
use crate::delivery::Outcome;
use crate::message::dsn::{self, Action, Dsn, DsnRecipient, Returned};
use crate::spool::{
    Envelope, Notify, Origin, QueuedMessage, Recipient, RecipientState, Ret, Spool, SpoolError,
};

/// The largest original returned whole in a failure report when the
/// sender did not ask (`RET`); a larger one comes back as headers only.
const RETURN_FULL_LIMIT: usize = 256 * 1024;

/// What became of one recipient in an attempt.
#[derive(Debug, Clone)]
pub struct Event {
    /// Index into the envelope's recipients.
    pub index: usize,
    /// The outcome.
    pub outcome: Outcome,
    /// The host that answered, if any.
    pub remote: Option<String>,
    /// Whether the message went on to another MTA (not a backend).
    pub relayed: bool,
    /// Whether the outcome is already recorded in the spool.
    pub recorded: bool,
    /// Whether the next hop took `NOTIFY` (it offered `DSN`) and reports
    /// on delivery itself.
    pub reported_onward: bool,
}

impl Event {
    /// An event for recipient `index`.
    pub fn new(index: usize, outcome: Outcome, remote: Option<String>) -> Event {
        Event {
            index,
            outcome,
            remote,
            relayed: false,
            recorded: false,
            reported_onward: false,
        }
    }
}

/// What [`send`] sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    /// A delay warning went out.
    pub warned: bool,
}

/// The notification the events (and, with `warn`, the recipients still
/// deferred) call for, queued for the sender; copies of failure reports
/// go to `ndr { copy-to }`. Nothing for the null sender.
pub async fn send(
    spool: &Spool,
    plan: &Plan,
    message: &QueuedMessage,
    body: &[u8],
    events: &[Event],
    warn: bool,
    schedule: &Schedule,
) -> Sent {
    let envelope = &message.envelope;
    let Some(sender) = envelope.sender.as_deref() else {
        return Sent::default();
    };
    let now = SystemTime::now();
    let notify = |index: usize| {
        envelope
            .recipients
            .get(index)
            .map_or(Notify::default(), |r| {
                r.notify.unwrap_or(Notify {
                    success: false,
                    failure: true,
                    delay: true,
                })
            })
    };
    let mut recipients = Vec::new();
    for e in events {
        let Some(r) = envelope.recipients.get(e.index) else {
            continue;
        };
        let wants = notify(e.index);
        let (action, status, diagnostic) = match &e.outcome {
            Outcome::Failed(f) if wants.failure => (
                Action::Failed,
                f.status.to_string(),
                Some(
                    f.reply
                        .as_ref()
                        .map_or(f.reason.clone(), ToString::to_string),
                ),
            ),
            // RFC 3461 6.2.1: a next hop that offered DSN was given NOTIFY
            // and reports success itself; only a hop without DSN (or the
            // final delivery to a backend) is reported from here.
            Outcome::Delivered { reply } if wants.success && !(e.relayed && e.reported_onward) => (
                if e.relayed {
                    Action::Relayed
                } else {
                    Action::Delivered
                },
                reply.status_or_generic().to_string(),
                Some(reply.to_string()),
            ),
            _ => continue,
        };
        recipients.push(DsnRecipient {
            final_recipient: r.address.clone(),
            original_recipient: r.orcpt.clone(),
            action,
            status,
            diagnostic,
            remote_mta: e.remote.as_ref().map(|h| format!("dns; {h}")),
            last_attempt: Some(now),
            will_retry_until: None,
        });
    }
    let mut warned = false;
    if warn {
        for (index, r) in envelope.recipients.iter().enumerate() {
            let RecipientState::Deferred(why) = current(&r.state, index, events) else {
                continue;
            };
            if !notify(index).delay {
                continue;
            }
            warned = true;
            recipients.push(DsnRecipient {
                final_recipient: r.address.clone(),
                original_recipient: r.orcpt.clone(),
                action: Action::Delayed,
                status: why.split(' ').next().unwrap_or("4.0.0").to_owned(),
                diagnostic: Some(why),
                remote_mta: None,
                last_attempt: Some(now),
                will_retry_until: Some(schedule.until(envelope.received_at)),
            });
        }
    }
    if recipients.is_empty() {
        return Sent { warned: true };
    }
    let failed = recipients
        .iter()
        .any(|r| matches!(r.action, Action::Failed));
    let returned = match envelope.ret {
        Some(Ret::Hdrs) => Returned::Headers,
        Some(Ret::Full) => Returned::Full,
        None if failed && body.len() <= RETURN_FULL_LIMIT => Returned::Full,
        None => Returned::Headers,
    };
    let hostname = plan.gateway.hostname.as_str();
    let postmaster = plan.postmaster();
    let received_from = format!("dns; {} ([{}])", envelope.helo, envelope.client_ip);
    let id = message.id.to_string();
    let report = dsn::build(
        &Dsn {
            reporting_mta: hostname,
            from: &postmaster,
            to: sender,
            envid: envelope.envid.as_deref(),
            queue_id: &id,
            arrival: envelope.received_at,
            received_from: Some(&received_from),
            recipients: &recipients,
            original: body,
            returned,
            smtputf8: envelope.smtputf8,
        },
        now,
        hostname,
    );
    let mut to = vec![sender.to_owned()];
    if failed {
        to.extend(plan.ndr.copy_to.iter().cloned());
    }
    match queue(spool, plan, envelope, to, &report).await {
        Ok(dsn_id) => {
            tracing::info!(queue_id = %message.id, dsn = %dsn_id, recipients = recipients.len(), failed, warned, "delivery status notification queued");
        }
        Err(e) => {
            tracing::error!(queue_id = %message.id, error = %e, "cannot queue the delivery status notification");
            return Sent::default();
        }
    }
    Sent { warned: true }
}

/// The state of recipient `index` after this attempt's events.
fn current(state: &RecipientState, index: usize, events: &[Event]) -> RecipientState {
    match events.iter().find(|e| e.index == index).map(|e| &e.outcome) {
        Some(Outcome::Deferred(f)) => {
            RecipientState::Deferred(format!("{} {}", f.status, f.reason))
        }
        Some(Outcome::Delivered { .. }) => RecipientState::Delivered,
        Some(Outcome::Failed(f)) => RecipientState::Failed(f.reason.clone()),
        None => state.clone(),
    }
}

/// Queues a message the gateway wrote itself, from the null sender.
async fn queue(
    spool: &Spool,
    plan: &Plan,
    original: &Envelope,
    to: Vec<String>,
    message: &[u8],
) -> Result<crate::spool::MessageId, SpoolError> {
    let envelope = Envelope {
        sender: None,
        recipients: to
            .into_iter()
            .map(|address| Recipient {
                notify: Some(Notify::default()),
                ..Recipient::new(address)
            })
            .collect(),
        ret: None,
        envid: None,
        body: original.body,
        smtputf8: original.smtputf8,
        client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        helo: plan.gateway.hostname.clone(),
        auth_user: None,
        received_at: SystemTime::now(),
        size: 0,
        origin: Origin {
            inside: true,
            filtered: true,
        },
    };
    let mut writer = spool.create().await?;
    writer.write(message).await?;
    writer.commit(envelope).await
}
