//! The committer: one thread that makes spool changes durable, in batches.
//!
//! Every change that must survive a crash goes through here: committing a
//! written message, appending to a state journal, removing a message. The
//! thread takes whatever has queued up while it was busy and makes the whole
//! batch durable with one sync per file and a single directory sync (group
//! commit), then wakes every waiter. Because it is the only writer of
//! `queue/`, journal appends never interleave and a state check and the
//! append it guards cannot race.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

use tokio::sync::oneshot;

use super::codec::{encode_record, header, Record, STATE_MAGIC};
use super::error::SpoolError;
use super::files::{self, msg_path, read_journal, read_message, state_path, ReadError};
use super::id::MessageId;

/// A reply channel for one operation.
pub type Done = oneshot::Sender<Result<(), SpoolError>>;

/// One request to the committer.
pub enum Op {
    /// Sync a fully written temporary file and move it into `queue/`.
    Commit {
        /// The file, written and flushed.
        file: File,
        /// Its path in `incoming/`.
        tmp: PathBuf,
        /// The message ID it becomes.
        id: MessageId,
        /// Woken once the message is durable in `queue/`.
        done: Done,
    },
    /// Append a record to a message's state journal.
    Append {
        /// The message.
        id: MessageId,
        /// The record.
        record: Record,
        /// Woken once the record is durable.
        done: Done,
    },
    /// Remove a message and its journal.
    Remove {
        /// The message.
        id: MessageId,
        /// Woken once the removal is durable.
        done: Done,
    },
    /// Delete an abandoned temporary file (a writer dropped without commit).
    Discard(PathBuf),
}

/// The committer's fixed state.
pub struct Committer {
    /// `queue/`.
    pub queue: PathBuf,
    /// The most operations handled in one batch; 1 disables group commit.
    pub max_batch: usize,
    /// Journals whose tail could not be repaired after a failed append;
    /// further appends to them fail until the next start (recovery cuts the
    /// torn tail).
    pub poisoned: Vec<MessageId>,
}

impl Committer {
    /// Runs until every sender is gone.
    pub fn run(mut self, rx: Receiver<Op>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.batch(batch);
        }
    }

    fn batch(&mut self, batch: Vec<Op>) {
        let mut commits = Vec::new();
        let mut appends = Vec::new();
        let mut removes = Vec::new();
        for op in batch {
            match op {
                Op::Commit {
                    file,
                    tmp,
                    id,
                    done,
                } => commits.push((file, tmp, id, done)),
                Op::Append { id, record, done } => appends.push((id, record, done)),
                Op::Remove { id, done } => removes.push((id, done)),
                Op::Discard(tmp) => {
                    if let Err(e) = std::fs::remove_file(&tmp) {
                        tracing::warn!(path = %tmp.display(), error = %e, "spool: cannot remove abandoned file");
                    }
                }
            }
        }
        // Whether a directory entry in queue/ changed and needs a sync.
        let mut dir_dirty = false;
        // Replies held until the directory sync, with whether they depend
        // on it.
        let mut pending: Vec<(Done, Result<(), SpoolError>, bool)> = Vec::new();

        // 1. Message data first: a rename must never become durable before
        // the bytes it names.
        let synced = sync_all(commits.iter().map(|c| &c.0).collect());
        let mut renamed = Vec::new();
        for ((file, tmp, id, done), sync) in commits.into_iter().zip(synced) {
            drop(file);
            let dest = msg_path(&self.queue, &id);
            let res = sync
                .map_err(|e| SpoolError::io("sync", &tmp, e))
                .and_then(|()| {
                    std::fs::rename(&tmp, &dest).map_err(|e| SpoolError::io("rename", &tmp, e))
                });
            match res {
                Ok(()) => {
                    dir_dirty = true;
                    renamed.push(dest);
                    pending.push((done, Ok(()), true));
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    pending.push((done, Err(e), false));
                }
            }
        }

        // 2. Journal appends, one sync per journal.
        let mut journals: BTreeMap<MessageId, OpenJournal> = BTreeMap::new();
        let mut append_results = Vec::new();
        for (id, record, done) in appends {
            let res = self.append(&mut journals, &id, &record);
            append_results.push((id, done, res));
        }
        for j in journals.values_mut() {
            if let Err(e) = j.file.sync_data() {
                j.failed = Some(e);
            }
            dir_dirty |= j.created;
        }
        for (id, done, res) in append_results {
            let j = journals.get(&id);
            let res = match (res, j.and_then(|j| j.failed.as_ref())) {
                (Ok(()), Some(e)) => Err(SpoolError::io(
                    "sync",
                    state_path(&self.queue, &id),
                    io::Error::new(e.kind(), e.to_string()),
                )),
                (res, _) => res,
            };
            let needs_dir = j.is_some_and(|j| j.created);
            pending.push((done, res, needs_dir));
        }

        // 3. Removals: the message file goes first; its journal only after
        // that is durable, so a crash never leaves a message without the
        // record of who already has it.
        let mut unlinked = Vec::new();
        for (id, done) in removes {
            let path = msg_path(&self.queue, &id);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    dir_dirty = true;
                    unlinked.push(id);
                    pending.push((done, Ok(()), true));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    pending.push((done, Err(SpoolError::NotFound(id)), false));
                }
                Err(e) => pending.push((done, Err(SpoolError::io("remove", path, e)), false)),
            }
        }

        // 4. One directory sync for the whole batch.
        let dir_result = if dir_dirty {
            sync_dir(&self.queue)
        } else {
            Ok(())
        };
        if let Err(e) = &dir_result {
            tracing::error!(dir = %self.queue.display(), error = %e, "spool: directory sync failed");
            // Nothing in this batch was acknowledged; take the new messages
            // back out so that none is delivered that the client will send
            // again after its 4xx.
            for path in &renamed {
                let _ = std::fs::remove_file(path);
            }
        }
        for id in &unlinked {
            let _ = std::fs::remove_file(state_path(&self.queue, id));
        }
        for (done, res, needs_dir) in pending {
            let res = match (&dir_result, needs_dir, res) {
                (Err(e), true, Ok(())) => Err(SpoolError::io(
                    "sync",
                    &self.queue,
                    io::Error::new(e.kind(), e.to_string()),
                )),
                (_, _, res) => res,
            };
            // The waiter may be gone (client disconnected); nothing to do.
            let _ = done.send(res);
        }
    }

    /// Checks and writes one journal record (not yet synced).
    fn append(
        &mut self,
        journals: &mut BTreeMap<MessageId, OpenJournal>,
        id: &MessageId,
        record: &Record,
    ) -> Result<(), SpoolError> {
        if self.poisoned.contains(id) {
            return Err(SpoolError::Corrupt(
                id.clone(),
                "state journal could not be repaired after a failed write".into(),
            ));
        }
        let (envelope, _) = match read_message(&msg_path(&self.queue, id), false) {
            Ok(m) => m,
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SpoolError::NotFound(id.clone()))
            }
            Err(ReadError::Io(e)) => {
                return Err(SpoolError::io("read", msg_path(&self.queue, id), e))
            }
            Err(ReadError::Corrupt(why)) => return Err(SpoolError::Corrupt(id.clone(), why)),
        };
        let path = state_path(&self.queue, id);
        if !journals.contains_key(id) {
            journals.insert(id.clone(), OpenJournal::open(&path)?);
        }
        let Some(j) = journals.get_mut(id) else {
            return Err(SpoolError::Closed);
        };
        if let Record::State { index, .. } = record {
            // The journal as written so far, this batch included.
            let mut env = envelope;
            let journal = read_journal(&path).map_err(|e| match e {
                ReadError::Io(e) => SpoolError::io("read", &path, e),
                ReadError::Corrupt(why) => SpoolError::Corrupt(id.clone(), why),
            })?;
            files::replay(&mut env, &journal.records)
                .map_err(|why| SpoolError::Corrupt(id.clone(), why))?;
            let r = usize::try_from(*index)
                .ok()
                .and_then(|i| env.recipients.get(i))
                .ok_or(SpoolError::NoSuchRecipient(id.clone(), *index))?;
            if r.state.is_final() {
                return Err(SpoolError::Final(id.clone(), *index));
            }
        }
        let mut bytes = Vec::new();
        if j.len == 0 {
            bytes.extend_from_slice(&header(STATE_MAGIC));
        }
        bytes.extend_from_slice(&encode_record(record));
        match j.file.write_all(&bytes) {
            Ok(()) => {
                j.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut the partial record off so later records stay readable.
                if j.file.set_len(j.len).is_err() {
                    self.poisoned.push(id.clone());
                }
                Err(SpoolError::io("append", path, e))
            }
        }
    }
}

/// A journal opened for appending during one batch.
struct OpenJournal {
    file: File,
    /// Length of the valid content.
    len: u64,
    /// Whether this batch created the file (its directory entry needs a
    /// sync).
    created: bool,
    /// The sync error, if the sync failed.
    failed: Option<io::Error>,
}

impl OpenJournal {
    fn open(path: &Path) -> Result<OpenJournal, SpoolError> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| SpoolError::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| SpoolError::io("stat", path, e))?
            .len();
        // A journal shorter than its header is a torn first append; start
        // it over (recovery does the same).
        let len = if len < super::codec::HEADER_LEN {
            file.set_len(0)
                .map_err(|e| SpoolError::io("truncate", path, e))?;
            0
        } else {
            len
        };
        Ok(OpenJournal {
            file,
            len,
            created: !existed,
            failed: None,
        })
    }
}

/// Syncs the data of several files. Several threads issue the syncs at once
/// so that the file system can fold them into one journal commit.
fn sync_all(files: Vec<&File>) -> Vec<io::Result<()>> {
    const THREADS: usize = 8;
    if files.len() <= 1 {
        return files.into_iter().map(File::sync_data).collect();
    }
    let chunk = files.len().div_ceil(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let h = s.spawn(move || part.iter().map(|f| f.sync_data()).collect::<Vec<_>>());
                (part.len(), h)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(n, h)| {
                h.join().unwrap_or_else(|_| {
                    (0..n)
                        .map(|_| Err(io::Error::other("sync thread panicked")))
                        .collect()
                })
            })
            .collect()
    })
}

/// Syncs a directory so that entries created, renamed or removed in it are
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
