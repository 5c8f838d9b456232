//! Recovery at start: what a crash may have left behind is cleaned up
//! before the spool takes new messages.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use super::codec::HEADER_LEN;
use super::committer::sync_dir;
use super::envelope::Envelope;
use super::error::SpoolError;
use super::files::{
    msg_path, read_image, read_journal, read_message, replay, state_path, ReadError,
};
use super::id::MessageId;
use super::segment::{self, del_path, seg_path, Index, Location};
use super::QueuedMessage;

/// What recovery did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The queued messages, oldest first, with their recipient states.
    pub messages: Vec<QueuedMessage>,
    /// Temporary files of messages never acknowledged, deleted.
    pub removed_incomplete: usize,
    /// Files moved to `corrupt/`, with the reason, in name order.
    pub corrupt: Vec<(String, String)>,
    /// State journals whose torn last record was cut off.
    pub repaired_journals: usize,
    /// Segments with bytes after their last sound record (a batch being
    /// written at the crash), which were ignored.
    pub torn_segments: usize,
}

/// The files of `queue/` grouped by message.
#[derive(Default)]
struct Entry {
    msg: bool,
    st: bool,
    /// Where the message is in a segment, if it is in one.
    seg: Option<Location>,
}

/// Recovers the spool; returns what it found and the index of the segment
/// messages.
pub fn recover(
    incoming: &Path,
    queue: &Path,
    corrupt: &Path,
) -> Result<(Recovered, Index), SpoolError> {
    let mut out = Recovered::default();
    let mut index = Index::default();

    // Temporary files belong to messages that never got a 250.
    for entry in std::fs::read_dir(incoming).map_err(|e| SpoolError::io("list", incoming, e))? {
        let entry = entry.map_err(|e| SpoolError::io("list", incoming, e))?;
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => out.removed_incomplete += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io("remove", &path, e)),
        }
    }
    if out.removed_incomplete > 0 {
        tracing::info!(
            count = out.removed_incomplete,
            "spool: removed incomplete messages"
        );
    }

    let mut ids: std::collections::BTreeMap<MessageId, Entry> = Default::default();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(queue).map_err(|e| SpoolError::io("list", queue, e))? {
        let entry = entry.map_err(|e| SpoolError::io("list", queue, e))?;
        names.push(entry.file_name());
    }
    names.sort();
    let mut moved = false;
    let mut queue_changed = false;
    // Segments that have a removal log.
    let mut dels = BTreeSet::new();
    for name in names {
        let text = name.to_string_lossy();
        let parsed = text
            .split_once('.')
            .and_then(|(id, ext)| Some((MessageId::parse(id)?, ext)));
        match parsed {
            Some((id, "msg")) => ids.entry(id).or_default().msg = true,
            Some((id, "st")) => ids.entry(id).or_default().st = true,
            _ if segment::parse_name(&text).is_some() => {
                let no = segment::parse_name(&text).unwrap_or_default();
                index.segments.entry(no).or_default();
            }
            _ if segment::parse_del_name(&text).is_some() => {
                dels.insert(segment::parse_del_name(&text).unwrap_or_default());
            }
            _ => {
                let why = "not a spool file name".to_owned();
                set_aside(queue, corrupt, &text, &why, &mut out)?;
                moved = true;
            }
        }
    }

    let numbers: Vec<u64> = index.segments.keys().copied().collect();
    for no in numbers {
        let path = seg_path(queue, no);
        let del = del_path(queue, no);
        let (removed, valid) = match segment::read_del(&del) {
            Ok(read) => read,
            Err(ReadError::Io(e)) => return Err(SpoolError::io("read", &del, e)),
            Err(ReadError::Corrupt(why)) => {
                // Which of its messages were removed is unknown: keep them
                // all (their journals still say who has the message).
                set_aside(queue, corrupt, &format!("{no:016x}.del"), &why, &mut out)?;
                moved = true;
                dels.remove(&no);
                (Vec::new(), 0)
            }
        };
        if dels.remove(&no) && valid >= HEADER_LEN {
            // Cut a torn entry, so that the next one is readable.
            let f = OpenOptions::new()
                .write(true)
                .open(&del)
                .map_err(|e| SpoolError::io("open", &del, e))?;
            let len = f
                .metadata()
                .map_err(|e| SpoolError::io("stat", &del, e))?
                .len();
            if valid < len {
                f.set_len(valid)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| SpoolError::io("truncate", &del, e))?;
            }
        } else {
            // Created with its segment; a crash can lose it, or tear its
            // header, only in the segment's first batch, when nothing was
            // removed yet.
            segment::create_del(&del)
                .and_then(|f| f.sync_all())
                .map_err(|e| SpoolError::io("create", &del, e))?;
            queue_changed = true;
        }
        let mut removed: BTreeSet<MessageId> = removed.into_iter().collect();
        let scan = match segment::scan(&path, no) {
            Ok(scan) => scan,
            Err(ReadError::Io(e)) => return Err(SpoolError::io("read", &path, e)),
            Err(ReadError::Corrupt(why)) => {
                let name = format!("{no:016x}.seg");
                set_aside(queue, corrupt, &name, &why, &mut out)?;
                index.segments.remove(&no);
                moved = true;
                continue;
            }
        };
        if scan.dropped > 0 {
            out.torn_segments += 1;
            tracing::warn!(
                segment = %path.display(),
                dropped_bytes = scan.dropped,
                "spool: ignoring a torn or damaged segment tail"
            );
        }
        removed.extend(scan.removed);
        for (id, loc) in scan.messages {
            if removed.contains(&id) {
                let seg = index.segments.entry(no).or_default();
                seg.placed += 1;
                seg.removed.push(id);
            } else {
                ids.entry(id).or_default().seg = Some(loc);
            }
        }
        for (id, bytes, why) in scan.corrupt {
            let name = format!("{id}.msg");
            tracing::warn!(file = %name, segment = %path.display(), reason = %why, "spool: copying corrupt message to corrupt/");
            let dest = corrupt.join(&name);
            std::fs::write(&dest, bytes).map_err(|e| SpoolError::io("write", &dest, e))?;
            out.corrupt.push((name, why));
            moved = true;
        }
    }

    for (id, entry) in ids {
        let msg = msg_path(queue, &id);
        let st = state_path(queue, &id);
        if let (false, Some(loc)) = (entry.msg, entry.seg) {
            let seg = seg_path(queue, loc.segment);
            match load_segment_message(&id, loc, &seg, &st, &mut out) {
                Ok(m) => {
                    index.insert(id, loc);
                    out.messages.push(m);
                }
                Err(ReadError::Io(e)) => return Err(SpoolError::io("read", &seg, e)),
                Err(ReadError::Corrupt(why)) => {
                    // The journal does not fit the message: set both aside
                    // and record the message as removed, so that it is never
                    // delivered again from its segment.
                    let name = format!("{id}.msg");
                    let dest = corrupt.join(&name);
                    let bytes =
                        read_range(&seg, loc).map_err(|e| SpoolError::io("read", &seg, e))?;
                    std::fs::write(&dest, bytes).map_err(|e| SpoolError::io("write", &dest, e))?;
                    out.corrupt.push((name, why.clone()));
                    set_aside(queue, corrupt, &format!("{id}.st"), &why, &mut out)?;
                    let del = del_path(queue, loc.segment);
                    segment::append_dels(&del, std::iter::once(&id))
                        .map_err(|e| SpoolError::io("append", &del, e))?;
                    let seg = index.segments.entry(loc.segment).or_default();
                    seg.placed += 1;
                    seg.removed.push(id);
                    moved = true;
                }
            }
            continue;
        }
        if !entry.msg {
            // The message was removed and the crash came before its journal
            // went too.
            std::fs::remove_file(&st).map_err(|e| SpoolError::io("remove", &st, e))?;
            queue_changed = true;
            continue;
        }
        match load_checked(&id, &msg, &st, &mut out) {
            Ok(m) => out.messages.push(m),
            Err(ReadError::Io(e)) => return Err(SpoolError::io("read", &msg, e)),
            Err(ReadError::Corrupt(why)) => {
                set_aside(queue, corrupt, &format!("{id}.msg"), &why, &mut out)?;
                if entry.st {
                    set_aside(queue, corrupt, &format!("{id}.st"), &why, &mut out)?;
                }
                moved = true;
            }
        }
    }

    // Segments none of whose messages is queued any more: the segment goes
    // first, the journals of its messages once that is durable.
    let done: Vec<u64> = index
        .segments
        .iter()
        .filter(|(_, s)| s.live == 0)
        .map(|(no, _)| *no)
        .collect();
    let mut later = Vec::new();
    for no in done {
        let path = seg_path(queue, no);
        std::fs::remove_file(&path).map_err(|e| SpoolError::io("remove", &path, e))?;
        later.push(del_path(queue, no));
        if let Some(s) = index.segments.remove(&no) {
            later.extend(s.removed.iter().map(|id| state_path(queue, id)));
        }
        queue_changed = true;
    }
    // Removal logs whose segment is gone: a crash while reclaiming.
    for no in dels {
        later.push(del_path(queue, no));
    }
    // Room for a removal entry per message, in case the reservation was
    // lost with the crash.
    for (no, seg) in &index.segments {
        let del = del_path(queue, *no);
        let reserved = OpenOptions::new()
            .write(true)
            .open(&del)
            .and_then(|f| segment::reserve_del(&f, seg.placed));
        if let Err(e) = reserved {
            tracing::warn!(path = %del.display(), error = %e, "spool: cannot reserve room for removals");
        }
    }

    if moved || queue_changed || out.repaired_journals > 0 {
        sync_dir(queue).map_err(|e| SpoolError::io("sync", queue, e))?;
    }
    if moved {
        sync_dir(corrupt).map_err(|e| SpoolError::io("sync", corrupt, e))?;
    }
    if !later.is_empty() {
        for path in &later {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SpoolError::io("remove", path, e)),
            }
        }
        sync_dir(queue).map_err(|e| SpoolError::io("sync", queue, e))?;
    }
    Ok((out, index))
}

/// A segment message (validated by the scan) with its journal applied.
fn load_segment_message(
    id: &MessageId,
    loc: Location,
    seg: &Path,
    st: &Path,
    out: &mut Recovered,
) -> Result<QueuedMessage, ReadError> {
    let mut f = std::fs::File::open(seg)?;
    let (envelope, _) = read_image(&mut f, loc.offset, loc.len, false)?;
    apply_journal(id, envelope, st, out)
}

/// The bytes of a segment message's image.
fn read_range(seg: &Path, loc: Location) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(seg)?;
    f.seek(io::SeekFrom::Start(loc.offset))?;
    let mut bytes = vec![0u8; usize::try_from(loc.len).unwrap_or(0)];
    f.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Validates a message fully and applies its journal, cutting a torn tail.
fn load_checked(
    id: &MessageId,
    msg: &Path,
    st: &Path,
    out: &mut Recovered,
) -> Result<QueuedMessage, ReadError> {
    let (envelope, _) = read_message(msg, true)?;
    apply_journal(id, envelope, st, out)
}

/// Applies a message's journal, cutting a torn tail.
fn apply_journal(
    id: &MessageId,
    mut envelope: Envelope,
    st: &Path,
    out: &mut Recovered,
) -> Result<QueuedMessage, ReadError> {
    let journal = read_journal(st)?;
    if journal.valid_len < journal.file_len {
        tracing::warn!(
            id = %id,
            dropped_bytes = journal.file_len - journal.valid_len,
            "spool: cutting torn record off state journal"
        );
        let f = OpenOptions::new().write(true).open(st)?;
        f.set_len(journal.valid_len)?;
        f.sync_all()?;
        out.repaired_journals += 1;
    }
    let flags = replay(&mut envelope, &journal.records).map_err(ReadError::Corrupt)?;
    Ok(QueuedMessage {
        id: id.clone(),
        envelope,
        hold: flags.hold,
        attempts: flags.attempts,
        next_attempt: flags.next_attempt,
        warned: flags.warned,
    })
}

fn set_aside(
    queue: &Path,
    corrupt: &Path,
    name: &str,
    why: &str,
    out: &mut Recovered,
) -> Result<(), SpoolError> {
    tracing::warn!(
        file = name,
        reason = why,
        "spool: moving corrupt file to corrupt/"
    );
    let from = queue.join(name);
    match std::fs::rename(&from, corrupt.join(name)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SpoolError::io("move aside", from, e)),
    }
    out.corrupt.push((name.to_owned(), why.to_owned()));
    Ok(())
}
