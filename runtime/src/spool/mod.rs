//! The durable spool: where an accepted message lives until every recipient
//! is delivered or failed.
//!
//! The on-disk format is documented in `docs/spool.md`. Invariants:
//!
//! - a message is in `queue/` only complete and synced: [`SpoolWriter::commit`]
//!   returns `Ok` only after its bytes and the directory entry of the file
//!   holding them are durable, so a 250 is never given for a message a crash
//!   can lose;
//! - a small message shares an append-only segment with others (one sync
//!   per batch, no file per message); a large one gets a file of its own,
//!   written in `incoming/` (deleted at start) and renamed into `queue/`;
//! - a recipient's final state (delivered, failed) is durable before
//!   [`Spool::mark`] returns and never changes again, so no recipient gets a
//!   message twice because of a crash;
//! - one thread (the committer) writes `queue/`, in batches: one segment
//!   sync and at most one directory sync cover every message committed while
//!   the previous batch synced (group commit);
//! - one process uses a spool at a time (a lock file); queue admin on a
//!   running gateway goes through that process's [`Spool`].

mod codec;
mod committer;
mod envelope;
mod error;
mod files;
mod hot;
mod id;
mod recovery;
mod segment;
mod writer;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::oneshot;

pub use envelope::{BodyType, Envelope, Notify, Origin, Recipient, RecipientState, Ret};
pub use error::SpoolError;
pub use id::MessageId;
pub use recovery::Recovered;
pub use writer::SpoolWriter;

use codec::{to_micros, Record, HEADER_LEN};
use committer::{Committer, Op};
use files::{msg_path, read_image, read_journal, read_message, replay, state_path, ReadError};
use segment::{seg_path, Index, Location};

/// A queued message as the queue manager and the admin commands see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The message ID.
    pub id: MessageId,
    /// The envelope, with each recipient's current state.
    pub envelope: Envelope,
    /// Whether the message is on hold (not to be delivered until released).
    pub hold: bool,
    /// Delivery attempts so far, as last recorded by
    /// [`Spool::schedule`].
    pub attempts: u32,
    /// When the next attempt is due, as last recorded; `None`: now.
    pub next_attempt: Option<SystemTime>,
    /// Whether the sender was told the message is delayed.
    pub warned: bool,
}

impl QueuedMessage {
    /// Whether every recipient is delivered or failed: the message can be
    /// removed.
    pub fn is_done(&self) -> bool {
        files::all_final(&self.envelope)
    }
}

/// Tuning of a spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The most changes made durable together by one directory sync. 1
    /// turns group commit off (one sync per message, for comparison).
    pub max_batch: usize,
    /// The largest message (bytes as received) held in memory while it
    /// arrives and stored in a shared segment; a larger one gets a file of
    /// its own. 0 gives every message its own file.
    pub max_inline: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_batch: 256,
            max_inline: 1 << 20,
        }
    }
}

/// A handle to an open spool; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    /// `incoming/`.
    incoming: PathBuf,
    /// `queue/`.
    queue: PathBuf,
    /// The committer's queue. A `Mutex` only to make the handle `Sync` on
    /// every supported toolchain; sends never block.
    tx: Mutex<Sender<Op>>,
    /// Where segment messages are; changed only by the committer.
    index: Arc<Mutex<Index>>,
    /// [`Options::max_inline`].
    max_inline: usize,
    /// Where [`Spool::arrivals`] announces committed messages.
    arrivals: Mutex<Option<tokio::sync::mpsc::UnboundedSender<MessageId>>>,
    /// Messages just committed, for their first attempt.
    hot: hot::Hot,
}

impl Inner {
    fn send(&self, op: Op) -> Result<(), SpoolError> {
        let tx = self.tx.lock().map_err(|_| SpoolError::Closed)?;
        tx.send(op).map_err(|_| SpoolError::Closed)
    }
}

impl Spool {
    /// Opens (creating if needed) the spool at `root` and recovers it:
    /// deletes incomplete messages, validates every queued message, moves
    /// corrupt files to `corrupt/` with a warning, and cuts torn journal
    /// records. Returns the spool and the queued messages.
    ///
    /// This blocks (it reads every queued message); call it at start, or
    /// from `spawn_blocking`.
    pub fn open(root: impl AsRef<Path>) -> Result<(Spool, Recovered), SpoolError> {
        Spool::open_with(root, Options::default())
    }

    /// [`Spool::open`] with explicit options.
    pub fn open_with(
        root: impl AsRef<Path>,
        options: Options,
    ) -> Result<(Spool, Recovered), SpoolError> {
        let root = root.as_ref();
        let incoming = root.join("incoming");
        let queue = root.join("queue");
        let corrupt = root.join("corrupt");
        for dir in [root, &incoming, &queue, &corrupt] {
            std::fs::create_dir_all(dir).map_err(|e| SpoolError::io("create", dir, e))?;
        }
        committer::sync_dir(root).map_err(|e| SpoolError::io("sync", root, e))?;
        let lock_path = root.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SpoolError::io("open", &lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| SpoolError::Locked(root.to_owned()))?;

        let (recovered, index) = recovery::recover(&incoming, &queue, &corrupt)?;
        let next_segment = index.segments.keys().next_back().map_or(1, |n| n + 1);
        let index = Arc::new(Mutex::new(index));

        let (tx, rx) = mpsc::channel();
        let committer = Committer {
            queue: queue.clone(),
            max_batch: options.max_batch.max(1),
            poisoned: Vec::new(),
            index: Arc::clone(&index),
            active: None,
            next_segment,
        };
        std::thread::Builder::new()
            .name("spool-committer".into())
            .spawn(move || {
                committer.run(rx);
                // The lock goes only once the committer has finished what
                // was queued: a spool opened afterwards never overlaps it.
                drop(lock);
            })
            .map_err(|e| SpoolError::io("start committer for", root, e))?;
        let spool = Spool {
            inner: Arc::new(Inner {
                incoming,
                queue,
                tx: Mutex::new(tx),
                index,
                max_inline: options.max_inline,
                arrivals: Mutex::new(None),
                hot: hot::Hot::default(),
            }),
        };
        Ok((spool, recovered))
    }

    /// The IDs of the messages queued in the spool at `root`, oldest first,
    /// read without taking the lock: for tests and for looking at a running
    /// gateway's spool from outside. A commit or removal in progress may or
    /// may not be seen; nothing is validated beyond the segments' record
    /// checksums, and nothing is changed.
    pub fn queued_ids(root: impl AsRef<Path>) -> Result<Vec<MessageId>, SpoolError> {
        let queue = root.as_ref().join("queue");
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&queue).map_err(|e| SpoolError::io("list", &queue, e))? {
            let entry = entry.map_err(|e| SpoolError::io("list", &queue, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_suffix(".msg").and_then(MessageId::parse) {
                ids.push(id);
            } else if let Some(no) = segment::parse_name(name) {
                let path = seg_path(&queue, no);
                let removed = segment::read_del(&segment::del_path(&queue, no))
                    .map(|(ids, _)| ids)
                    .unwrap_or_default();
                match segment::scan(&path, no) {
                    Ok(scan) => {
                        let gone: std::collections::BTreeSet<MessageId> =
                            removed.into_iter().chain(scan.removed).collect();
                        ids.extend(
                            scan.messages
                                .into_iter()
                                .map(|(id, _)| id)
                                .filter(|id| !gone.contains(id)),
                        );
                    }
                    // Deleted meanwhile: its messages are gone.
                    Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(ReadError::Io(e)) => return Err(SpoolError::io("read", &path, e)),
                    Err(ReadError::Corrupt(_)) => {}
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Starts a new message (in memory, moving to `incoming/` if it grows
    /// past [`Options::max_inline`]). An error means the message cannot be
    /// taken: answer `452 4.3.1`.
    pub async fn create(&self) -> Result<SpoolWriter, SpoolError> {
        SpoolWriter::create(self.clone()).await
    }

    /// Records a recipient's new state; durable when this returns. A final
    /// state (delivered, failed) cannot be changed afterwards.
    pub async fn mark(
        &self,
        id: &MessageId,
        recipient: u32,
        state: RecipientState,
    ) -> Result<(), SpoolError> {
        self.append(
            id,
            Record::State {
                index: recipient,
                state,
            },
        )
        .await
    }

    /// Puts a message on hold (`true`) or releases it (`false`); durable
    /// when this returns.
    pub async fn hold(&self, id: &MessageId, hold: bool) -> Result<(), SpoolError> {
        self.append(id, Record::Hold(hold)).await
    }

    /// Records the retry bookkeeping of a message: attempts so far and when
    /// the next is due (the admin `retry` sets it to now).
    pub async fn schedule(
        &self,
        id: &MessageId,
        attempts: u32,
        next_attempt: SystemTime,
    ) -> Result<(), SpoolError> {
        self.append(
            id,
            Record::Schedule {
                attempts,
                next_attempt: to_micros(next_attempt),
            },
        )
        .await
    }

    /// Records that the sender was told the message is delayed, so it is
    /// told only once; durable when this returns.
    pub async fn warned(&self, id: &MessageId) -> Result<(), SpoolError> {
        self.append(id, Record::Warned).await
    }

    /// Every message committed from now on, announced once it is durable
    /// (for the queue manager, the one consumer; a second call takes the
    /// announcements away from the first).
    pub fn arrivals(&self) -> tokio::sync::mpsc::UnboundedReceiver<MessageId> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self
            .inner
            .arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        rx
    }

    /// Tells the queue manager, if one listens, that `id` is queued.
    fn announce(&self, id: &MessageId) {
        let arrivals = self
            .inner
            .arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = arrivals.as_ref() {
            let _ = tx.send(id.clone());
        }
    }

    /// Removes a message and its state journal; durable when this returns.
    /// The queue manager removes a message once every recipient is final;
    /// the admin `delete` removes it regardless.
    pub async fn remove(&self, id: &MessageId) -> Result<(), SpoolError> {
        self.inner.hot.evict(id);
        let (done, wait) = oneshot::channel();
        self.inner.send(Op::Remove {
            id: id.clone(),
            done,
        })?;
        wait.await.map_err(|_| SpoolError::Closed)?
    }

    async fn append(&self, id: &MessageId, record: Record) -> Result<(), SpoolError> {
        // From now on the message's state is its envelope and its journal.
        self.inner.hot.evict(id);
        let (done, wait) = oneshot::channel();
        self.inner.send(Op::Append {
            id: id.clone(),
            record,
            done,
        })?;
        wait.await.map_err(|_| SpoolError::Closed)?
    }

    /// One queued message with its current state (admin `show`). Does not
    /// read the message bytes.
    pub async fn load(&self, id: &MessageId) -> Result<QueuedMessage, SpoolError> {
        if let Some(envelope) = self.inner.hot.envelope(id) {
            // Just committed, no journal yet: nothing to replay.
            return Ok(QueuedMessage {
                id: id.clone(),
                envelope,
                hold: false,
                attempts: 0,
                next_attempt: None,
                warned: false,
            });
        }
        let queue = self.inner.queue.clone();
        let index = Arc::clone(&self.inner.index);
        let id = id.clone();
        spawn_blocking(move || load(&queue, &index, &id)).await
    }

    /// Every queued message, oldest first (admin `list`). Messages removed
    /// while listing are left out.
    pub async fn list(&self) -> Result<Vec<QueuedMessage>, SpoolError> {
        let queue = self.inner.queue.clone();
        let index = Arc::clone(&self.inner.index);
        spawn_blocking(move || {
            let mut ids: Vec<MessageId> = lock(&index).messages.keys().cloned().collect();
            for entry in std::fs::read_dir(&queue).map_err(|e| SpoolError::io("list", &queue, e))? {
                let entry = entry.map_err(|e| SpoolError::io("list", &queue, e))?;
                let name = entry.file_name();
                if let Some(id) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".msg"))
                    .and_then(MessageId::parse)
                {
                    ids.push(id);
                }
            }
            ids.sort();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                match load(&queue, &index, &id) {
                    Ok(m) => out.push(m),
                    Err(SpoolError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
        .await
    }

    /// The bytes of `message` (as [`Spool::load`] or [`Spool::list`] gave
    /// it), read at once: what the queue manager delivers.
    pub async fn read(&self, message: &QueuedMessage) -> Result<Vec<u8>, SpoolError> {
        if let Some(body) = self.inner.hot.body(&message.id) {
            return Ok(body);
        }
        let id = message.id.clone();
        let loc = lock(&self.inner.index).messages.get(&id).copied();
        let (path, start) = match loc {
            Some(loc) => (seg_path(&self.inner.queue, loc.segment), loc.offset),
            None => (msg_path(&self.inner.queue, &id), 0),
        };
        let len = usize::try_from(message.envelope.size)
            .map_err(|_| SpoolError::Corrupt(id.clone(), "size does not fit in memory".into()))?;
        spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let file = File::open(&path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => SpoolError::NotFound(id.clone()),
                _ => SpoolError::io("open", &path, e),
            })?;
            let mut bytes = vec![0; len];
            file.read_exact_at(&mut bytes, start + HEADER_LEN)
                .map_err(|e| SpoolError::io("read", &path, e))?;
            Ok(bytes)
        })
        .await
    }

    /// The message bytes of a queued message, for delivery, with their
    /// length. The reader yields exactly the bytes written.
    pub async fn body(
        &self,
        id: &MessageId,
    ) -> Result<(tokio::io::Take<tokio::fs::File>, u64), SpoolError> {
        let loc = lock(&self.inner.index).messages.get(id).copied();
        let (path, start) = match loc {
            Some(loc) => (seg_path(&self.inner.queue, loc.segment), loc.offset),
            None => (msg_path(&self.inner.queue, id), 0),
        };
        let m = self.load(id).await?;
        let mut f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => SpoolError::NotFound(id.clone()),
                _ => SpoolError::io("open", &path, e),
            })?;
        f.seek(io::SeekFrom::Start(start + HEADER_LEN))
            .await
            .map_err(|e| SpoolError::io("seek", &path, e))?;
        let len = m.envelope.size;
        Ok((f.take(len), len))
    }
}

async fn spawn_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| SpoolError::Closed)?
}

/// The index, whatever a panicking thread left (every change to it is a
/// single insert or remove).
fn lock(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The envelope of a queued message, from its segment or its own file.
fn read_envelope(
    queue: &Path,
    index: &Mutex<Index>,
    id: &MessageId,
) -> Result<Envelope, SpoolError> {
    let loc: Option<Location> = lock(index).messages.get(id).copied();
    let (path, read) = match loc {
        Some(loc) => {
            let path = seg_path(queue, loc.segment);
            let read = File::open(&path)
                .map_err(ReadError::Io)
                .and_then(|mut f| read_image(&mut f, loc.offset, loc.len, false));
            (path, read)
        }
        None => {
            let path = msg_path(queue, id);
            let read = read_message(&path, false);
            (path, read)
        }
    };
    read.map(|(envelope, _)| envelope).map_err(|e| match e {
        ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound => SpoolError::NotFound(id.clone()),
        ReadError::Io(e) => SpoolError::io("read", &path, e),
        ReadError::Corrupt(why) => SpoolError::Corrupt(id.clone(), why),
    })
}

fn load(queue: &Path, index: &Mutex<Index>, id: &MessageId) -> Result<QueuedMessage, SpoolError> {
    let mut envelope = read_envelope(queue, index, id)?;
    let st = state_path(queue, id);
    let journal = read_journal(&st).map_err(|e| match e {
        ReadError::Io(e) => SpoolError::io("read", &st, e),
        ReadError::Corrupt(why) => SpoolError::Corrupt(id.clone(), why),
    })?;
    let flags = replay(&mut envelope, &journal.records)
        .map_err(|why| SpoolError::Corrupt(id.clone(), why))?;
    Ok(QueuedMessage {
        id: id.clone(),
        envelope,
        hold: flags.hold,
        attempts: flags.attempts,
        next_attempt: flags.next_attempt,
        warned: flags.warned,
    })
}
