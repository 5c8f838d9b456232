//! One delivery attempt of one queued message: decide each pending
//! recipient's way, send one transaction per way (each to the first hop
//! that can be reached), record every outcome durably as it comes, then
//! notify the sender and reschedule or remove the message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mailgw_plan::Plan;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::content::{self, Content};
use super::notify::{self, Event};
use super::route::{self, Decision, Way};
use super::schedule::Schedule;
use super::Limits;
use crate::delivery::{self, Client, Outcome, Report, Status};
use crate::spool::{MessageId, QueuedMessage, RecipientState, Spool, SpoolError};

/// Where the current plan comes from (it changes at a reload).
pub type PlanSource = Arc<dyn Fn() -> Arc<Plan> + Send + Sync>;

/// What every attempt shares.
pub struct Shared {
    /// The spool.
    pub spool: Spool,
    /// The current plan.
    pub plan: PlanSource,
    /// The delivery client of the plan it was made for.
    client: Mutex<Option<(Arc<Plan>, Client)>>,
    /// One permit per open delivery connection.
    total: Arc<Semaphore>,
    /// Open connections per next hop.
    per_hop: Mutex<HashMap<String, Arc<Semaphore>>>,
    limits: Limits,
    /// Turns, for sharing load among connectors of equal cost.
    turn: AtomicUsize,
}

impl Shared {
    /// The shared state of a queue.
    pub fn new(spool: Spool, plan: PlanSource, limits: Limits) -> Shared {
        Shared {
            spool,
            plan,
            client: Mutex::new(None),
            total: Arc::new(Semaphore::new(limits.connections.max(1))),
            per_hop: Mutex::new(HashMap::new()),
            limits,
            turn: AtomicUsize::new(0),
        }
    }

    /// The client for `plan`, made anew after a reload.
    fn client(&self, plan: &Arc<Plan>) -> Result<Client, String> {
        let mut slot = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((p, c)) = slot.as_ref() {
            if Arc::ptr_eq(p, plan) {
                return Ok(c.clone());
            }
        }
        let client = Client::new(plan)?;
        *slot = Some((Arc::clone(plan), client.clone()));
        Ok(client)
    }

    fn hop_limit(&self, key: &str) -> Arc<Semaphore> {
        let mut map = self
            .per_hop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            let full = self.limits.per_hop.max(1);
            map.retain(|_, s| s.available_permits() < full);
        }
        Arc::clone(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limits.per_hop.max(1)))),
        )
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every recipient is final; the message is gone from the spool.
    Removed,
    /// The message is on hold.
    Held,
    /// Some recipients are deferred: try again then.
    Retry(SystemTime),
    /// The message is no longer in the spool (deleted meanwhile).
    Gone,
}

/// The recipients that go one way, with the content they get.
struct Batch {
    way: Way,
    content: Content,
    /// Indices into the envelope's recipients.
    indices: Vec<usize>,
    /// For each, the address to send instead of the envelope's (a
    /// backend knows a mailbox by its name).
    rcpts: Vec<Option<String>>,
}

/// How long a message waits after an attempt that could not run (the
/// spool could not be read, the attempt's task failed).
pub(super) const PAUSE_AFTER_ERROR: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs one attempt of message `id`.
pub async fn run(shared: Arc<Shared>, id: MessageId) -> End {
    let retry_later = || End::Retry(SystemTime::now() + PAUSE_AFTER_ERROR);
    let message = match shared.spool.load(&id).await {
        Ok(m) => m,
        Err(SpoolError::NotFound(_)) => return End::Gone,
        Err(e) => {
            tracing::error!(queue_id = %id, error = %e, "cannot read the queued message");
            return retry_later();
        }
    };
    if message.hold {
        return End::Held;
    }
    let plan = (shared.plan)();
    let schedule = Schedule::of(&plan.queue);
    let now = SystemTime::now();
    let envelope = &message.envelope;
    let pending: Vec<usize> = envelope
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.state.is_final())
        .map(|(i, _)| i)
        .collect();
    let body = match shared.spool.read(&message).await {
        Ok(b) => b,
        Err(SpoolError::NotFound(_)) => return End::Gone,
        Err(e) => {
            tracing::error!(queue_id = %id, error = %e, "cannot read the queued message");
            return retry_later();
        }
    };
    let mut events: Vec<Event> = Vec::new();
    if schedule.expired(envelope.received_at, now) {
        for &i in &pending {
            let last = match &envelope.recipients[i].state {
                RecipientState::Deferred(why) => format!(": {why}"),
                _ => String::new(),
            };
            let outcome = Outcome::Failed(delivery::Failure {
                status: Status::new(4, 4, 7),
                reason: format!("delivery time expired{last}"),
                reply: None,
            });
            log_outcome(&id, &envelope.recipients[i].address, &outcome);
            events.push(Event::new(i, outcome, None));
        }
        return Box::pin(finish(&shared, &plan, &message, &body, events, &schedule)).await;
    }
    let mut batches: HashMap<(String, Content), Batch> = HashMap::new();
    for &i in &pending {
        let recipient = &envelope.recipients[i];
        match route::decide(&plan, envelope, recipient) {
            Decision::Fail { status, reason } => {
                let outcome = Outcome::Failed(delivery::Failure {
                    status,
                    reason,
                    reply: None,
                });
                log_outcome(&id, &recipient.address, &outcome);
                events.push(Event::new(i, outcome, None));
            }
            Decision::Deliver { way, direction } => {
                let content = content::kind(&plan, recipient, &way, direction);
                let key = (route::batch_key(&plan, &way), content);
                let rcpt = match &way {
                    Way::Backend { mailbox, .. } => Some(mailbox.clone()),
                    _ => None,
                };
                let batch = batches.entry(key).or_insert_with(|| Batch {
                    way,
                    content,
                    indices: Vec::new(),
                    rcpts: Vec::new(),
                });
                batch.indices.push(i);
                batch.rcpts.push(rcpt);
            }
        }
    }
    let client = match shared.client(&plan) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the delivery client");
            return retry_later();
        }
    };
    if batches.len() == 1 {
        // All recipients go one way (the usual case): no task of its own.
        let running = AtomicUsize::new(1);
        for batch in batches.into_values() {
            let mut e = Box::pin(send(
                &shared, &plan, &client, &message, &body, batch, &running,
            ))
            .await;
            events.append(&mut e);
        }
        return Box::pin(finish(&shared, &plan, &message, &body, events, &schedule)).await;
    }
    let body = Arc::new(body);
    let message = Arc::new(message);
    let mut tasks = JoinSet::new();
    let running = Arc::new(AtomicUsize::new(batches.len()));
    for batch in batches.into_values() {
        let shared = Arc::clone(&shared);
        let plan = Arc::clone(&plan);
        let client = client.clone();
        let body = Arc::clone(&body);
        let message = Arc::clone(&message);
        let running = Arc::clone(&running);
        tasks.spawn(async move {
            send(&shared, &plan, &client, &message, &body, batch, &running).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(mut e) => events.append(&mut e),
            Err(e) => tracing::error!(queue_id = %id, error = %e, "a delivery task failed"),
        }
    }
    Box::pin(finish(&shared, &plan, &message, &body, events, &schedule)).await
}

/// Sends one batch: the hops of its way in turn, until one is reached.
/// While other batches of the message are still running (`running`
/// counts them), the outcomes are recorded at once, so a crash meanwhile
/// never sends them again; the last batch leaves that to [`finish`].
async fn send(
    shared: &Shared,
    plan: &Plan,
    client: &Client,
    message: &QueuedMessage,
    body: &[u8],
    batch: Batch,
    running: &AtomicUsize,
) -> Vec<Event> {
    let envelope = &message.envelope;
    let content = match content::render(plan, batch.content, message, body) {
        Ok(c) => c,
        Err(why) => {
            tracing::error!(queue_id = %message.id, error = %why, "cannot prepare the message");
            return Vec::new();
        }
    };
    let mut delivery_envelope = delivery::Envelope::from_spool(envelope, &batch.indices);
    for (r, rcpt) in delivery_envelope.recipients.iter_mut().zip(&batch.rcpts) {
        if let Some(rcpt) = rcpt {
            r.address.clone_from(rcpt);
        }
    }
    if batch.content == Content::Journal {
        delivery_envelope.sender = None;
    }
    let spread = shared.turn.fetch_add(1, Ordering::Relaxed);
    let hops = route::hops(plan, &batch.way, spread);
    let count = hops.len();
    let mut report: Option<Report> = None;
    for (n, (key, hop)) in hops.into_iter().enumerate() {
        let hop = match hop {
            Ok(hop) => hop,
            Err(why) => {
                tracing::warn!(queue_id = %message.id, hop = %key, error = %why, "cannot use this hop");
                report = Some(Report {
                    remote: None,
                    outcomes: vec![
                        Outcome::Deferred(delivery::Failure {
                            status: Status::new(4, 3, 5),
                            reason: why,
                            reply: None,
                        });
                        batch.indices.len()
                    ],
                    dsn: false,
                });
                continue;
            }
        };
        // The hop's permit first: waiting for a busy (or dead) hop holds
        // none of the connections other hops could use.
        let hop_limit = shared.hop_limit(&key);
        let Ok(_one) = hop_limit.acquire_owned().await else {
            break;
        };
        let Ok(_total) = shared.total.acquire().await else {
            break;
        };
        // Boxed: the delivery's state is kilobytes, which would otherwise
        // be moved with this future at every spawn.
        let r = Box::pin(client.deliver(&hop, &delivery_envelope, &content)).await;
        let unreachable = r.remote.is_none() && r.outcomes.iter().all(|o| !o.is_final());
        tracing::info!(queue_id = %message.id, hop = %key, recipients = batch.indices.len(), unreachable, "attempt");
        report = Some(r);
        if !(unreachable && n + 1 < count) {
            break;
        }
    }
    let Some(report) = report else {
        return Vec::new();
    };
    let others_running = running.fetch_sub(1, Ordering::AcqRel) > 1;
    let remote = report.remote.as_ref().map(|r| r.name.clone());
    let mut events = Vec::with_capacity(batch.indices.len());
    for (&i, outcome) in batch.indices.iter().zip(report.outcomes) {
        let mut event = Event::new(i, outcome, remote.clone());
        if others_running {
            record(&shared.spool, &message.id, i, &event.outcome).await;
            event.recorded = true;
        }
        // After the record: a logged delivery is never sent again.
        log_outcome(&message.id, &envelope.recipients[i].address, &event.outcome);
        event.relayed = !matches!(batch.way, Way::Backend { .. });
        event.reported_onward = report.dsn;
        events.push(event);
    }
    events
}

/// Logs one recipient's outcome.
fn log_outcome(id: &MessageId, address: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Delivered { reply } => {
            tracing::info!(queue_id = %id, rcpt = %address, %reply, "delivered");
        }
        Outcome::Deferred(f) => {
            tracing::info!(queue_id = %id, rcpt = %address, status = %f.status, reason = %f.reason, "deferred");
        }
        Outcome::Failed(f) => {
            tracing::info!(queue_id = %id, rcpt = %address, status = %f.status, reason = %f.reason, "failed");
        }
    }
}

/// Records one recipient's outcome in the spool; durable when this returns.
async fn record(spool: &Spool, id: &MessageId, index: usize, outcome: &Outcome) {
    let state = match outcome {
        Outcome::Delivered { .. } => RecipientState::Delivered,
        Outcome::Deferred(f) => RecipientState::Deferred(format!("{} {}", f.status, f.reason)),
        Outcome::Failed(f) => RecipientState::Failed(format!("{} {}", f.status, f.reason)),
    };
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    if let Err(e) = spool.mark(id, index, state).await {
        tracing::error!(queue_id = %id, recipient = index, error = %e, "cannot record the outcome");
    }
}

/// After the outcomes: notifications, then removal or the next attempt.
async fn finish(
    shared: &Shared,
    plan: &Plan,
    message: &QueuedMessage,
    body: &[u8],
    events: Vec<Event>,
    schedule: &Schedule,
) -> End {
    let id = &message.id;
    let mut envelope = message.envelope.clone();
    for e in &events {
        if let Some(r) = envelope.recipients.get_mut(e.index) {
            r.state = match &e.outcome {
                Outcome::Delivered { .. } => RecipientState::Delivered,
                Outcome::Failed(f) => RecipientState::Failed(f.reason.clone()),
                Outcome::Deferred(f) => RecipientState::Deferred(f.reason.clone()),
            };
        }
    }
    let now = SystemTime::now();
    let warn = !message.warned
        && schedule.warn_due(envelope.received_at, now)
        && envelope.recipients.iter().any(|r| !r.state.is_final());
    // The DSN is queued (durably) before the outcomes it reports are
    // recorded: a crash in between repeats the report, never loses it.
    let sent = notify::send(&shared.spool, plan, message, body, &events, warn, schedule).await;
    let done = envelope.recipients.iter().all(|r| r.state.is_final());
    if !done {
        for e in events.iter().filter(|e| !e.recorded) {
            record(&shared.spool, id, e.index, &e.outcome).await;
        }
        if warn && sent.warned {
            if let Err(e) = shared.spool.warned(id).await {
                tracing::error!(queue_id = %id, error = %e, "cannot record the delay warning");
            }
        }
    }
    // Removal is the durable record of the outcomes not recorded yet: a
    // message finished in one attempt never needs a state journal.
    if done {
        return match shared.spool.remove(id).await {
            Ok(()) => {
                tracing::info!(queue_id = %id, "removed");
                End::Removed
            }
            Err(SpoolError::NotFound(_)) => End::Gone,
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "cannot remove the delivered message");
                // Without the removal, the outcomes must be recorded, or
                // the next attempt would send the message again.
                for e in events.iter().filter(|e| !e.recorded) {
                    record(&shared.spool, id, e.index, &e.outcome).await;
                }
                End::Retry(now + std::time::Duration::from_secs(60))
            }
        };
    }
    let attempts = message.attempts.saturating_add(1);
    let next = schedule.next_attempt(attempts, now, envelope.received_at);
    match shared.spool.schedule(id, attempts, next).await {
        Ok(()) => End::Retry(next),
        Err(SpoolError::NotFound(_)) => End::Gone,
        Err(e) => {
            tracing::error!(queue_id = %id, error = %e, "cannot record the next attempt");
            End::Retry(next)
        }
    }
}
