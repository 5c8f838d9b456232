//! Spooling a message the session accepted: the session's envelope into
//! the spool's (groups expanded, the journal added: [`intake`]), the bytes
//! into `incoming/`, the commit into `queue/`.

use super::connection::Context;
use crate::queue::intake;
use crate::smtp::{Delivery, SpoolResult};
use crate::spool::{self, SpoolError};

/// Stores `delivery` durably; the result is what the session answers
/// (`250` only once the message is committed, every error `452 4.3.1`).
pub async fn spool_message(ctx: &Context, session: &str, delivery: Delivery) -> SpoolResult {
    match write(ctx, delivery).await {
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

async fn write(ctx: &Context, delivery: Delivery) -> Result<spool::MessageId, SpoolError> {
    let envelope = intake::spool_envelope(
        &ctx.plan,
        &ctx.members,
        &delivery.envelope,
        ctx.listener.filter_return,
    );
    let mut writer = ctx.spool.create().await?;
    writer.write(&delivery.message).await?;
    writer.commit(envelope).await
}
