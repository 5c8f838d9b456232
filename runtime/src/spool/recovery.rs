//! Recovery at start: what a crash may have left behind is cleaned up
//! before the spool takes new messages.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use super::committer::sync_dir;
use super::error::SpoolError;
use super::files::{msg_path, read_journal, read_message, replay, state_path, ReadError};
use super::id::MessageId;
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
}

/// The files of `queue/` grouped by message.
#[derive(Default)]
struct Entry {
    msg: bool,
    st: bool,
}

pub fn recover(incoming: &Path, queue: &Path, corrupt: &Path) -> Result<Recovered, SpoolError> {
    let mut out = Recovered::default();

    // Temporary files belong to messages that never got a 250.
    for entry in std::fs::read_dir(incoming).map_err(|e| SpoolError::io("list", incoming, e))? {
        let entry = entry.map_err(|e| SpoolError::io("list", incoming, e))?;
        let path = entry.path();
        std::fs::remove_file(&path).map_err(|e| SpoolError::io("remove", &path, e))?;
        out.removed_incomplete += 1;
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
    for name in names {
        let text = name.to_string_lossy();
        let parsed = text
            .split_once('.')
            .and_then(|(id, ext)| Some((MessageId::parse(id)?, ext)));
        match parsed {
            Some((id, "msg")) => ids.entry(id).or_default().msg = true,
            Some((id, "st")) => ids.entry(id).or_default().st = true,
            _ => {
                let why = "not a spool file name".to_owned();
                set_aside(queue, corrupt, &text, &why, &mut out)?;
                moved = true;
            }
        }
    }

    for (id, entry) in ids {
        let msg = msg_path(queue, &id);
        let st = state_path(queue, &id);
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
    if moved || queue_changed || out.repaired_journals > 0 {
        sync_dir(queue).map_err(|e| SpoolError::io("sync", queue, e))?;
    }
    if moved {
        sync_dir(corrupt).map_err(|e| SpoolError::io("sync", corrupt, e))?;
    }
    Ok(out)
}

/// Validates a message fully and applies its journal, cutting a torn tail.
fn load_checked(
    id: &MessageId,
    msg: &Path,
    st: &Path,
    out: &mut Recovered,
) -> Result<QueuedMessage, ReadError> {
    let (mut envelope, _) = read_message(msg, true)?;
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
