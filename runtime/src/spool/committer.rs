//! The committer: one thread that makes spool changes durable, in batches.
//!
//! Every change that must survive a crash goes through here: committing a
//! written message, appending to a state journal, removing a message. The
//! thread takes whatever has queued up while it was busy and makes the whole
//! batch durable with one sync per file and a single directory sync (group
//! commit), then wakes every waiter. Messages held in memory go into the
//! active segment (`segment.rs`), together with removal records for the
//! messages of that segment the batch removes, in one write and one sync
//! per batch. Because it is the only writer of `queue/`, journal appends
//! never interleave and a state check and the append it guards cannot race.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::codec::{encode_record, header, Record, STATE_MAGIC};
use super::error::SpoolError;
use super::files::{self, msg_path, read_journal, state_path, ReadError};
use super::id::MessageId;
use super::segment::{self, del_path, seg_path, Index, Location, SEGMENT_SIZE};

/// Removal log entries reserved beyond those needed, so that a batch
/// seldom needs a `fallocate` call (about 40 KiB per segment).
const RESERVE_AHEAD: usize = 1024;

/// How long a batch that no client waits for may wait for a commit to
/// share its sync with.
const LATE_WAIT: Duration = Duration::from_millis(2);

/// How long removal records written to the active segment may stay
/// unsynced when no commit syncs them first.
const REMOVAL_SYNC_WITHIN: Duration = Duration::from_secs(1);

/// A reply channel for one operation.
pub type Done = oneshot::Sender<Result<(), SpoolError>>;

/// One request to the committer.
pub enum Op {
    /// Make a written message durable in `queue/`.
    Commit {
        /// The message's bytes or file.
        payload: Payload,
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

impl Op {
    /// Whether the operation may wait a moment for others: only a commit
    /// has a client waiting for its `250`.
    fn may_wait(&self) -> bool {
        !matches!(self, Op::Commit { .. })
    }
}

/// A written message, as the committer gets it.
pub enum Payload {
    /// The complete message image, held in memory: appended to the active
    /// segment.
    Image(Arc<Vec<u8>>),
    /// A temporary file in `incoming/`, written and flushed: synced and
    /// renamed to `queue/ID.msg`.
    File {
        /// The file.
        file: File,
        /// Its path in `incoming/`.
        tmp: PathBuf,
    },
}

/// The segment being appended to.
pub struct Active {
    /// Its number.
    no: u64,
    /// The file, opened for positional writes.
    file: File,
    /// Its removal log, where room is reserved as messages are added.
    del: File,
    /// Removal log entries reserved so far.
    reserved: usize,
    /// The end of its records: everything before is durable or being made
    /// so.
    len: u64,
    /// The file's length: zeros from `len` to here.
    zeroed: u64,
    /// Since when removal records lie in it unsynced: a removal needs no
    /// sync of its own (lost in a crash, it means a second delivery, never
    /// a lost message), so it waits for the next commit's sync, or for
    /// [`REMOVAL_SYNC_WITHIN`].
    unsynced: Option<Instant>,
}

impl Active {
    /// Syncs the removal records written since the last sync, if any.
    fn sync_removals(&mut self, queue: &Path) {
        if self.unsynced.take().is_some() {
            if let Err(e) = self.file.sync_data() {
                let path = seg_path(queue, self.no);
                tracing::error!(path = %path.display(), error = %e, "spool: cannot sync removal records");
            }
        }
    }
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
    /// Where segment messages are; shared with the readers.
    pub index: Arc<Mutex<Index>>,
    /// The segment being appended to, created with the first message.
    pub active: Option<Active>,
    /// The number the next segment gets.
    pub next_segment: u64,
}

impl Committer {
    /// Runs until every sender is gone.
    ///
    /// A batch of nothing but removals and journal records, which no client
    /// waits for, waits up to [`LATE_WAIT`] for a commit to share its write
    /// with. Removal records in the active segment are never synced on their
    /// own account: the next commit's sync makes them durable, or a sync
    /// [`REMOVAL_SYNC_WITHIN`] after the first of them when no commit
    /// comes, or the end of the run.
    pub fn run(mut self, rx: Receiver<Op>) {
        loop {
            let unsynced = self.active.as_ref().and_then(|a| a.unsynced);
            let next = match unsynced {
                Some(since) => {
                    let left =
                        (since + REMOVAL_SYNC_WITHIN).saturating_duration_since(Instant::now());
                    rx.recv_timeout(left)
                }
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let first = match next {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    self.sync_removals();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            self.gather(&rx, &mut batch);
            if batch.iter().all(Op::may_wait) && batch.len() < self.max_batch {
                if let Ok(op) = rx.recv_timeout(LATE_WAIT) {
                    batch.push(op);
                    self.gather(&rx, &mut batch);
                }
            }
            self.batch(batch);
        }
        self.sync_removals();
    }

    /// Syncs the active segment's unsynced removal records.
    fn sync_removals(&mut self) {
        if let Some(active) = self.active.as_mut() {
            active.sync_removals(&self.queue);
        }
    }

    /// Adds to `batch` whatever is waiting, up to the batch limit.
    fn gather(&self, rx: &Receiver<Op>, batch: &mut Vec<Op>) {
        while batch.len() < self.max_batch {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        super::lock(&self.index)
    }

    fn batch(&mut self, batch: Vec<Op>) {
        let mut files = Vec::new();
        let mut images = Vec::new();
        let mut appends = Vec::new();
        let mut removes = Vec::new();
        let mut seg_removes = Vec::new();
        for op in batch {
            match op {
                Op::Commit {
                    payload: Payload::File { file, tmp },
                    id,
                    done,
                } => files.push((file, tmp, id, done)),
                Op::Commit {
                    payload: Payload::Image(image),
                    id,
                    done,
                } => images.push((image, id, done)),
                Op::Append { id, record, done } => appends.push((id, record, done)),
                Op::Remove { id, done } => {
                    if self.index().messages.contains_key(&id) {
                        seg_removes.push((id, done));
                    } else {
                        removes.push((id, done));
                    }
                }
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
        let synced = sync_all(files.iter().map(|c| &c.0).collect());
        let mut renamed = Vec::new();
        for ((file, tmp, id, done), sync) in files.into_iter().zip(synced) {
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
        // 2. New messages, and the removal of messages in the active
        // segment, in one write to it. Segments whose journals go once their
        // removal is durable are noted in `reclaimed`.
        let mut reclaimed = Vec::new();
        let seg_removes = self.locate(seg_removes, &mut pending);
        let (segment, seg_removes) =
            self.append_to_active(images, seg_removes, &mut pending, &mut reclaimed);
        dir_dirty |= segment.as_ref().is_some_and(|s| s.created) || !reclaimed.is_empty();

        // 3. Journal appends, one sync per journal.
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

        // 4. Removals: the message file goes first; its journal only after
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
        dir_dirty |= self.remove_from_segments(seg_removes, &mut reclaimed, &mut pending);

        // 5. One directory sync for the whole batch.
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
            if let Some(s) = &segment {
                if s.created {
                    let mut index = self.index();
                    for (id, _) in &s.placed {
                        index.forget(id);
                    }
                    drop(index);
                    self.cut_active(s.start);
                }
            }
        }
        if dir_result.is_ok() {
            for (no, ids) in &reclaimed {
                let _ = std::fs::remove_file(del_path(&self.queue, *no));
                for id in ids {
                    let _ = std::fs::remove_file(state_path(&self.queue, id));
                }
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

    /// Appends the in-memory messages of a batch, and a removal record for
    /// each message of the active segment the batch removes, to the active
    /// segment with one write and, for new messages, one `fdatasync`, after reserving the new
    /// messages' removal log entries. The replies go to `pending`; the new
    /// messages enter the index at once (taken out again if the directory
    /// sync fails). Returns what was written and the removals of messages
    /// in other segments, for their removal logs.
    fn append_to_active(
        &mut self,
        images: Vec<(Arc<Vec<u8>>, MessageId, Done)>,
        removals: Vec<Removal>,
        pending: &mut Vec<(Done, Result<(), SpoolError>, bool)>,
        reclaimed: &mut Vec<(u64, Vec<MessageId>)>,
    ) -> (Option<SegmentWrite>, Vec<Removal>) {
        let active_no = |c: &Committer| c.active.as_ref().map(|a| a.no);
        if images.is_empty() && !removals.iter().any(|r| Some(r.1) == active_no(self)) {
            return (None, removals);
        }
        let mut created = false;
        let ready = if images.is_empty() {
            Ok(())
        } else {
            self.ready_segment(&mut created, reclaimed).map(|_| ())
        };
        let no = active_no(self);
        let (gone, others): (Vec<Removal>, Vec<Removal>) =
            removals.into_iter().partition(|r| Some(r.1) == no);
        let written = ready.and_then(|()| self.write_active(&images, &gone));
        match written {
            Ok((start, placed)) => {
                let mut index = self.index();
                for (id, loc) in &placed {
                    index.insert(id.clone(), *loc);
                }
                for (id, _, _) in &gone {
                    index.remove(id);
                }
                drop(index);
                for (_, _, done) in images {
                    pending.push((done, Ok(()), created));
                }
                for (_, _, done) in gone {
                    pending.push((done, Ok(()), false));
                }
                let write = SegmentWrite {
                    start,
                    created,
                    placed,
                };
                (Some(write), others)
            }
            Err(e) => {
                let dones = images.into_iter().map(|i| i.2);
                for done in dones.chain(gone.into_iter().map(|r| r.2)) {
                    pending.push((done, Err(e.duplicate()), false));
                }
                (None, others)
            }
        }
    }

    /// Writes the records of new messages and of removals into the active
    /// segment, and syncs it when there are new messages (removals alone
    /// wait, see [`Active::unsynced`]); returns where the records start and
    /// where each message is. On an error the records are cut off again, so that none
    /// is found at the next start.
    fn write_active(
        &mut self,
        images: &[(Arc<Vec<u8>>, MessageId, Done)],
        gone: &[Removal],
    ) -> Result<(u64, Vec<(MessageId, Location)>), SpoolError> {
        let queue = self.queue.clone();
        let index = Arc::clone(&self.index);
        let active = self.active.as_mut().ok_or(SpoolError::Closed)?;
        let start = active.len;
        let path = seg_path(&queue, active.no);
        let placed_before = super::lock(&index)
            .segments
            .get(&active.no)
            .map_or(0, |s| s.placed);
        let needed = placed_before + images.len();
        let reserved = if needed > active.reserved {
            // Reserve ahead, so that most batches need no call.
            let more = needed + RESERVE_AHEAD;
            segment::reserve_del(&active.del, more)
                .map(|()| active.reserved = more)
                .map_err(|e| SpoolError::io("reserve", del_path(&queue, active.no), e))
        } else {
            Ok(())
        };
        let end = start
            + segment::records_len(images.iter().map(|i| i.0.as_slice()))
            + segment::RECORD_HEAD * gone.len() as u64;
        let written = reserved
            .and_then(|()| {
                if end <= active.zeroed {
                    return Ok(());
                }
                let ahead = end + segment::ZERO_AHEAD;
                let to = match segment::zero_fill(&active.file, active.zeroed, ahead) {
                    Ok(()) => Ok(ahead),
                    Err(_) => {
                        // Not that much room (a nearly full disk): give it
                        // back and take what this batch needs.
                        let _ = active.file.set_len(active.zeroed);
                        segment::zero_fill(&active.file, active.zeroed, end).map(|()| end)
                    }
                };
                to.map(|to| active.zeroed = to)
                    .map_err(|e| SpoolError::io("extend", &path, e))
            })
            .and_then(|()| {
                let records = images.iter().map(|(image, id, _)| (id, image.as_slice()));
                let removed = gone.iter().map(|r| &r.0);
                segment::write_records(&active.file, active.no, start, records, removed)
                    .map_err(|e| SpoolError::io("append", &path, e))
            })
            .and_then(|written| {
                if images.is_empty() {
                    active.unsynced.get_or_insert_with(Instant::now);
                    return Ok(written);
                }
                active.unsynced = None;
                active
                    .file
                    .sync_data()
                    .map(|()| written)
                    .map_err(|e| SpoolError::io("sync", &path, e))
            });
        match written {
            Ok((placed, bytes)) => {
                active.len += bytes;
                Ok((start, placed))
            }
            Err(e) => {
                if active.file.set_len(start).is_err() {
                    // A segment that cannot be cut takes no more records.
                    self.active = None;
                } else {
                    active.zeroed = start;
                }
                Err(e)
            }
        }
    }

    /// The active segment, after starting a new one if there is none or it
    /// is full (`created` is then set: its directory entry needs a sync).
    fn ready_segment(
        &mut self,
        created: &mut bool,
        reclaimed: &mut Vec<(u64, Vec<MessageId>)>,
    ) -> Result<&mut Active, SpoolError> {
        if self.active.as_ref().is_some_and(|a| a.len >= SEGMENT_SIZE) {
            if let Some(mut full) = self.active.take() {
                full.sync_removals(&self.queue);
                let done = self
                    .index()
                    .segments
                    .get(&full.no)
                    .is_some_and(|s| s.live == 0);
                if done {
                    if let Some(ids) = self.reclaim(full.no) {
                        reclaimed.push((full.no, ids));
                    }
                }
            }
        }
        if self.active.is_none() {
            let no = self.next_segment;
            self.next_segment += 1;
            let path = seg_path(&self.queue, no);
            let file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)
                .map_err(|e| SpoolError::io("create", &path, e))?;
            let head = segment::file_header();
            if let Err(e) = std::os::unix::fs::FileExt::write_all_at(&file, &head, 0) {
                let _ = std::fs::remove_file(&path);
                return Err(SpoolError::io("write", &path, e));
            }
            let del = del_path(&self.queue, no);
            let del = match segment::create_del(&del) {
                Ok(f) => f,
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    let _ = std::fs::remove_file(&del);
                    return Err(SpoolError::io("create", &del, e));
                }
            };
            self.index().segments.entry(no).or_default();
            *created = true;
            self.active = Some(Active {
                no,
                file,
                del,
                reserved: 0,
                len: head.len() as u64,
                zeroed: head.len() as u64,
                unsynced: None,
            });
        }
        self.active.as_mut().ok_or(SpoolError::Closed)
    }

    /// Cuts the active segment back to `len` (a batch whose directory sync
    /// failed); a segment that cannot be cut takes no more records.
    fn cut_active(&mut self, len: u64) {
        if let Some(active) = &mut self.active {
            if active.file.set_len(len).is_ok() {
                active.len = len;
                active.zeroed = len;
            } else {
                self.active = None;
            }
        }
    }

    /// The segment of each message a batch removes from a segment; an ID
    /// not queued (or named twice) is answered `NotFound` in `pending`.
    fn locate(
        &self,
        removes: Vec<(MessageId, Done)>,
        pending: &mut Vec<(Done, Result<(), SpoolError>, bool)>,
    ) -> Vec<Removal> {
        let index = self.index();
        let mut seen = std::collections::BTreeSet::new();
        let mut located = Vec::new();
        for (id, done) in removes {
            match index.messages.get(&id) {
                Some(loc) if seen.insert(id.clone()) => located.push((id, loc.segment, done)),
                _ => pending.push((done, Err(SpoolError::NotFound(id)), false)),
            }
        }
        located
    }

    /// Removes messages held in segments other than the active one. For
    /// each segment, their entries go into its removal log in one write and
    /// one sync; a segment left without messages is deleted instead. The
    /// replies go to `pending`; returns whether a directory entry changed.
    fn remove_from_segments(
        &mut self,
        removals: Vec<Removal>,
        reclaimed: &mut Vec<(u64, Vec<MessageId>)>,
        pending: &mut Vec<(Done, Result<(), SpoolError>, bool)>,
    ) -> bool {
        let mut by_segment: BTreeMap<u64, Vec<(MessageId, Done)>> = BTreeMap::new();
        for (id, no, done) in removals {
            by_segment.entry(no).or_default().push((id, done));
        }
        let mut dir_dirty = false;
        for (no, removals) in by_segment {
            let active = self.active.as_ref().is_some_and(|a| a.no == no);
            let live = self.index().segments.get(&no).map_or(0, |s| s.live);
            let result = if !active && live <= removals.len() {
                {
                    let mut index = self.index();
                    for (id, _) in &removals {
                        index.remove(id);
                    }
                }
                match self.reclaim(no) {
                    Some(ids) => {
                        reclaimed.push((no, ids));
                        dir_dirty = true;
                        Ok(true)
                    }
                    None => Err(SpoolError::io(
                        "remove",
                        seg_path(&self.queue, no),
                        io::Error::other("cannot delete the segment"),
                    )),
                }
            } else {
                let del = del_path(&self.queue, no);
                match segment::append_dels(&del, removals.iter().map(|(id, _)| id)) {
                    Ok(()) => {
                        let mut index = self.index();
                        for (id, _) in &removals {
                            index.remove(id);
                        }
                        Ok(false)
                    }
                    Err(e) => Err(SpoolError::io("append", del, e)),
                }
            };
            for (_, done) in removals {
                pending.push(match &result {
                    Ok(needs_dir) => (done, Ok(()), *needs_dir),
                    Err(e) => (done, Err(e.duplicate()), false),
                });
            }
        }
        dir_dirty
    }

    /// Deletes a segment none of whose messages is queued; returns the IDs
    /// whose journals go once the deletion is durable.
    fn reclaim(&mut self, no: u64) -> Option<Vec<MessageId>> {
        let path = seg_path(&self.queue, no);
        match std::fs::remove_file(&path) {
            Ok(()) => self.index().segments.remove(&no).map(|s| s.removed),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "spool: cannot delete a finished segment");
                None
            }
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
        let envelope = super::read_envelope(&self.queue, &self.index, id)?;
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

/// A message a batch removes from a segment: its ID, its segment and the
/// waiter.
type Removal = (MessageId, u64, Done);

/// What a batch appended to the active segment.
struct SegmentWrite {
    /// The segment's length before the batch.
    start: u64,
    /// Whether the batch created the segment (its entry needs a sync).
    created: bool,
    /// The messages and where they are.
    placed: Vec<(MessageId, Location)>,
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
