//! Spooling a message the session accepted: the session's envelope into
//! the spool's, the bytes into `incoming/`, the commit into `queue/`.

use crate::smtp::{self, Delivery, SpoolResult};
use crate::spool::{self, Spool, SpoolError};

/// Stores `delivery` durably; the result is what the session answers
/// (`250` only once the message is committed, every error `452 4.3.1`).
pub async fn spool_message(spool: &Spool, session: &str, delivery: Delivery) -> SpoolResult {
    match write(spool, delivery).await {
        Ok(id) => {
            tracing::info!(session = %session, queue_id = %id, "queued");
            SpoolResult::Queued(id.to_string())
        }
        Err(e) => {
            tracing::error!(session = %session, error = %e, storage_full = e.is_storage_full(), "cannot spool the message");
            SpoolResult::DiskFull
        }
    }
}

async fn write(spool: &Spool, delivery: Delivery) -> Result<spool::MessageId, SpoolError> {
    let mut writer = spool.create().await?;
    writer.write(&delivery.message).await?;
    writer.commit(envelope(&delivery.envelope)).await
}

/// The spool's form of a session envelope.
pub fn envelope(e: &smtp::Envelope) -> spool::Envelope {
    spool::Envelope {
        sender: e.sender.as_ref().map(ToString::to_string),
        recipients: e
            .recipients
            .iter()
            .map(|r| spool::Recipient {
                address: r.address.to_string(),
                orcpt: r
                    .orcpt
                    .as_ref()
                    .map(|o| format!("{};{}", o.addr_type, o.address)),
                notify: r.notify.map(|n| match n {
                    smtp::Notify::Never => spool::Notify::default(),
                    smtp::Notify::On {
                        success,
                        failure,
                        delay,
                    } => spool::Notify {
                        success,
                        failure,
                        delay,
                    },
                }),
                state: spool::RecipientState::Pending,
            })
            .collect(),
        ret: e.ret.map(|r| match r {
            smtp::Ret::Full => spool::Ret::Full,
            smtp::Ret::Headers => spool::Ret::Hdrs,
        }),
        envid: e.envid.clone(),
        body: match e.body {
            smtp::Body::SevenBit => spool::BodyType::SevenBit,
            smtp::Body::EightBitMime => spool::BodyType::EightBitMime,
        },
        smtputf8: e.smtputf8 == smtp::Utf8::Yes,
        client_ip: e.client,
        helo: e.helo.clone(),
        auth_user: e.authenticated.clone(),
        received_at: e.received_at,
        size: 0,
    }
}
