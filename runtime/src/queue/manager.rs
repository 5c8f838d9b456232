//! The queue manager's loop: which message is tried when. It keeps, for
//! every queued message, when it is due and whether it is held or being
//! tried; attempts run as tasks, at most [`Limits::messages`] at once; the
//! admin's requests are answered here, between events.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::admin::{unix_seconds, Answer, Command, Entry, EntryRecipient, Request};
use super::attempt::{self, End, Shared};
use crate::spool::{MessageId, QueuedMessage, RecipientState, SpoolError};

/// What the manager knows of one queued message.
#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// When it is due; `None`: now.
    due: Option<SystemTime>,
    hold: bool,
    /// An attempt is running.
    running: bool,
    /// Tried again as soon as the running attempt ends (admin `retry`).
    again: bool,
    /// Waiting in `ready`.
    queued: bool,
}

/// The loop's state.
pub struct Manager {
    shared: Arc<Shared>,
    messages: HashMap<MessageId, State>,
    timers: BinaryHeap<Reverse<(SystemTime, MessageId)>>,
    ready: VecDeque<MessageId>,
    running: JoinSet<End>,
    /// The message of each running attempt's task, so that a task that
    /// panicked still ends its message's attempt.
    attempts: HashMap<tokio::task::Id, MessageId>,
    max_running: usize,
}

impl Manager {
    /// A manager for the messages recovered at start.
    pub fn new(shared: Arc<Shared>, recovered: Vec<QueuedMessage>, max_running: usize) -> Manager {
        let mut manager = Manager {
            shared,
            messages: HashMap::new(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            running: JoinSet::new(),
            attempts: HashMap::new(),
            max_running: max_running.max(1),
        };
        for m in recovered {
            let state = State {
                due: m.next_attempt,
                hold: m.hold,
                ..State::default()
            };
            manager.messages.insert(m.id.clone(), state);
            manager.wake(&m.id);
        }
        manager
    }

    /// Runs until `stop` fires: picks up new messages from `arrivals`,
    /// answers `admin`, starts attempts as they fall due.
    pub async fn run(
        mut self,
        mut arrivals: mpsc::UnboundedReceiver<MessageId>,
        mut admin: mpsc::Receiver<Request>,
        mut stop: oneshot::Receiver<()>,
    ) {
        loop {
            self.start_ready();
            let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
            let sleep = next_timer.map_or(Duration::from_secs(3600), |t| {
                t.duration_since(SystemTime::now()).unwrap_or_default()
            });
            tokio::select! {
                _ = &mut stop => break,
                Some(id) = arrivals.recv() => {
                    self.messages.entry(id.clone()).or_default();
                    self.wake(&id);
                }
                Some(done) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    let (task, end) = match done {
                        Ok(ended) => ended,
                        Err(e) => {
                            tracing::error!(error = %e, "a delivery attempt failed");
                            (e.id(), End::Retry(SystemTime::now() + attempt::PAUSE_AFTER_ERROR))
                        }
                    };
                    if let Some(id) = self.attempts.remove(&task) {
                        self.ended(id, end);
                    }
                }
                Some(request) = admin.recv() => self.answer(request).await,
                () = tokio::time::sleep(sleep) => self.fire_timers(),
            }
        }
        self.running.abort_all();
    }

    /// Puts `id` in the ready line if it is due now, else sets its timer.
    fn wake(&mut self, id: &MessageId) {
        let Some(state) = self.messages.get_mut(id) else {
            return;
        };
        if state.hold || state.running || state.queued {
            return;
        }
        match state.due {
            Some(t) if t > SystemTime::now() => self.timers.push(Reverse((t, id.clone()))),
            _ => {
                state.queued = true;
                self.ready.push_back(id.clone());
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = SystemTime::now();
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((t, id))) = self.timers.pop() else {
                break;
            };
            // A timer is stale when the message's due time moved since.
            if self.messages.get(&id).is_some_and(|s| s.due == Some(t)) {
                if let Some(s) = self.messages.get_mut(&id) {
                    s.due = None;
                }
                self.wake(&id);
            }
        }
    }

    fn start_ready(&mut self) {
        while self.running.len() < self.max_running {
            let Some(id) = self.ready.pop_front() else {
                return;
            };
            let Some(state) = self.messages.get_mut(&id) else {
                continue;
            };
            state.queued = false;
            if state.hold || state.running {
                continue;
            }
            state.running = true;
            let shared = Arc::clone(&self.shared);
            let task = self.running.spawn(attempt::run(shared, id.clone()));
            self.attempts.insert(task.id(), id);
        }
    }

    fn ended(&mut self, id: MessageId, end: End) {
        let Some(state) = self.messages.get_mut(&id) else {
            return;
        };
        state.running = false;
        match end {
            End::Removed | End::Gone => {
                self.messages.remove(&id);
            }
            End::Held => state.hold = true,
            End::Retry(t) => {
                state.due = if std::mem::take(&mut state.again) {
                    None
                } else {
                    Some(t)
                };
                self.wake(&id);
            }
        }
    }

    /// Tries `id` now (unless held); a running attempt is followed by
    /// another.
    fn retry_now(&mut self, id: &MessageId) -> bool {
        let Some(state) = self.messages.get_mut(id) else {
            return false;
        };
        if state.running {
            state.again = true;
        } else {
            state.due = None;
        }
        self.wake(id);
        true
    }

    async fn answer(&mut self, request: Request) {
        let answer = match request.command {
            Command::List => self.entries(None).await,
            Command::Show { id } => match parse(&id) {
                Ok(id) => self.entries(Some(id)).await,
                Err(a) => a,
            },
            Command::Retry { id: None } => {
                let ids: Vec<MessageId> = self.messages.keys().cloned().collect();
                let count = ids.iter().filter(|id| self.retry_now(id)).count();
                Answer::Done { count }
            }
            Command::Retry { id: Some(id) } => match parse(&id) {
                Ok(id) if self.retry_now(&id) => Answer::Done { count: 1 },
                Ok(id) => no_such(&id),
                Err(a) => a,
            },
            Command::Delete { id } => match parse(&id) {
                Ok(id) => match self.shared.spool.remove(&id).await {
                    Ok(()) => {
                        self.messages.remove(&id);
                        tracing::info!(queue_id = %id, "deleted by the administrator");
                        Answer::Done { count: 1 }
                    }
                    Err(e) => error(&id, &e),
                },
                Err(a) => a,
            },
            Command::Hold { id } => self.hold(&id, true).await,
            Command::Release { id } => self.hold(&id, false).await,
            Command::Flush { domain } => self.flush(&domain).await,
        };
        let _ = request.reply.send(answer);
    }

    async fn hold(&mut self, id: &str, hold: bool) -> Answer {
        let id = match parse(id) {
            Ok(id) => id,
            Err(a) => return a,
        };
        if !self.messages.contains_key(&id) {
            return no_such(&id);
        }
        if let Err(e) = self.shared.spool.hold(&id, hold).await {
            return error(&id, &e);
        }
        if let Some(state) = self.messages.get_mut(&id) {
            state.hold = hold;
            if !hold {
                state.due = None;
            }
        }
        tracing::info!(queue_id = %id, hold, "hold changed by the administrator");
        self.wake(&id);
        Answer::Done { count: 1 }
    }

    async fn flush(&mut self, domain: &str) -> Answer {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let listed = match self.shared.spool.list().await {
            Ok(l) => l,
            Err(e) => {
                return Answer::Error {
                    message: e.to_string(),
                }
            }
        };
        let mut count = 0;
        for m in listed {
            let wanted = m.envelope.recipients.iter().any(|r| {
                !r.state.is_final()
                    && r.address
                        .rsplit_once('@')
                        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&domain))
            });
            if wanted && !m.hold && self.retry_now(&m.id) {
                count += 1;
            }
        }
        tracing::info!(%domain, messages = count, "flush");
        Answer::Done { count }
    }

    async fn entries(&self, only: Option<MessageId>) -> Answer {
        let listed = match only {
            Some(id) => match self.shared.spool.load(&id).await {
                Ok(m) => vec![m],
                Err(e) => return error(&id, &e),
            },
            None => match self.shared.spool.list().await {
                Ok(l) => l,
                Err(e) => {
                    return Answer::Error {
                        message: e.to_string(),
                    }
                }
            },
        };
        let messages = listed
            .into_iter()
            .map(|m| {
                let state = self.messages.get(&m.id);
                let next_attempt = match state {
                    Some(s) if s.running || s.queued => None,
                    Some(s) => s.due,
                    None => m.next_attempt,
                };
                Entry {
                    id: m.id.to_string(),
                    sender: m.envelope.sender.clone().unwrap_or_default(),
                    recipients: m
                        .envelope
                        .recipients
                        .iter()
                        .map(|r| {
                            let (state, error) = match &r.state {
                                RecipientState::Pending => ("pending", None),
                                RecipientState::Delivered => ("delivered", None),
                                RecipientState::Deferred(why) => ("deferred", Some(why.clone())),
                                RecipientState::Failed(why) => ("failed", Some(why.clone())),
                            };
                            EntryRecipient {
                                address: r.address.clone(),
                                state: state.to_owned(),
                                error,
                            }
                        })
                        .collect(),
                    size: m.envelope.size,
                    received_at: unix_seconds(m.envelope.received_at),
                    next_attempt: next_attempt.map(unix_seconds),
                    attempts: m.attempts,
                    hold: state.map_or(m.hold, |s| s.hold),
                }
            })
            .collect();
        Answer::Messages { messages }
    }
}

fn parse(id: &str) -> Result<MessageId, Answer> {
    MessageId::parse(id).ok_or_else(|| Answer::Error {
        message: format!("{id:?} is not a queue id"),
    })
}

fn no_such(id: &MessageId) -> Answer {
    Answer::Error {
        message: format!("no message {id} in the queue"),
    }
}

fn error(id: &MessageId, e: &SpoolError) -> Answer {
    match e {
        SpoolError::NotFound(_) => no_such(id),
        e => Answer::Error {
            message: e.to_string(),
        },
    }
}
