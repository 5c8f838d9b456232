//! The queue manager: takes spooled messages to their next hops, retries,
//! and reports what became of them.
//!
//! - [`intake`]: what is queued for an accepted message (groups expanded,
//!   the journal address added, where it came from);
//! - `route`: where each recipient goes with the current plan (a backend,
//!   the forward host, connectors by address space and cost, the content
//!   filter);
//! - `attempt`: one attempt of one message — a transaction per way, each
//!   outcome durable at once, then notifications and the next attempt;
//! - `content`, `notify`: disclaimers and journal reports; DSNs;
//! - `schedule`: retry, warn-after, expire;
//! - `manager`: which message is tried when, and the [`admin`] requests.
//!
//! A recipient's final state is written to the spool as soon as its next
//! hop answers, before anything else happens: after a crash it is never
//! sent the message again, and a recipient not yet recorded is tried again
//! (delivered at worst twice, never lost).

pub mod admin;
mod attempt;
mod content;
pub mod intake;
mod manager;
mod notify;
mod route;
mod schedule;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use attempt::PlanSource;

use crate::spool::{MessageId, QueuedMessage, Spool};

/// How much the queue does at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Delivery connections open at once, over all next hops.
    pub connections: usize,
    /// Delivery connections open at once to one next hop (a backend, a
    /// smarthost, the MX hosts of one domain).
    pub per_hop: usize,
    /// Messages being tried at once.
    pub messages: usize,
}

impl Limits {
    /// The limits of a plan's `queue { concurrency; per-destination }`;
    /// twice as many messages as connections are tried at once, so that
    /// connections do not wait for messages to be read.
    pub fn of(queue: &mailgw_plan::Queue) -> Limits {
        let connections = usize::try_from(queue.concurrency.max(1)).unwrap_or(usize::MAX);
        Limits {
            connections,
            per_hop: usize::try_from(queue.per_destination.max(1)).unwrap_or(usize::MAX),
            messages: connections.saturating_mul(2),
        }
    }
}

/// A running queue manager.
pub struct Queue {
    admin: mpsc::Sender<Request>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

use admin::Request;

impl Queue {
    /// Starts the manager: the `recovered` messages are tried as they fall
    /// due, every message the spool announces on `arrivals` at once.
    pub fn start(
        spool: Spool,
        plan: PlanSource,
        recovered: Vec<QueuedMessage>,
        arrivals: mpsc::UnboundedReceiver<MessageId>,
        limits: Limits,
    ) -> Queue {
        let shared = Arc::new(attempt::Shared::new(spool, plan, limits));
        let manager = manager::Manager::new(shared, recovered, limits.messages);
        let (admin, admin_rx) = mpsc::channel(64);
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(manager.run(arrivals, admin_rx, stop_rx));
        Queue { admin, stop, task }
    }

    /// Where the admin's requests go.
    pub fn admin(&self) -> mpsc::Sender<Request> {
        self.admin.clone()
    }

    /// Stops the manager; attempts in flight are cut (their recipients
    /// not yet recorded are tried again at the next start).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
