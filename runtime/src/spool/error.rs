//! Spool errors.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::id::MessageId;

/// What went wrong in the spool.
///
/// Every error of [`SpoolWriter`](super::SpoolWriter) and of
/// [`Spool::create`](super::Spool::create) means the message is not
/// accepted: the SMTP layer answers [`SpoolError::REPLY_CODE`]
/// `4.3.1 Insufficient system storage`, never 250.
#[derive(Debug)]
pub enum SpoolError {
    /// A file system call failed (disk full, I/O error, permissions).
    Io {
        /// What the spool was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another process holds the spool lock.
    Locked(PathBuf),
    /// No queued message has this ID.
    NotFound(MessageId),
    /// The recipient index is out of range for the message.
    NoSuchRecipient(MessageId, u32),
    /// The recipient's state is final and cannot change.
    Final(MessageId, u32),
    /// A message file failed validation (it is moved to `corrupt/` at the
    /// next start).
    Corrupt(MessageId, String),
    /// The committer thread is gone (the spool is shutting down).
    Closed,
}

impl SpoolError {
    /// The SMTP reply code for a message the spool could not take.
    pub const REPLY_CODE: u16 = 452;
    /// The enhanced status code for a message the spool could not take.
    pub const REPLY_ENHANCED: (u8, u16, u16) = (4, 3, 1);
    /// The reply text for a message the spool could not take.
    pub const REPLY_TEXT: &'static str = "Insufficient system storage";

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> SpoolError {
        SpoolError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A copy of the error, for every waiter of a failed batch. The copy of
    /// an I/O error keeps its OS error code, so that
    /// [`is_storage_full`](SpoolError::is_storage_full) still answers.
    pub(crate) fn duplicate(&self) -> SpoolError {
        match self {
            SpoolError::Io { op, path, source } => SpoolError::Io {
                op,
                path: path.clone(),
                source: match source.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
            SpoolError::Locked(p) => SpoolError::Locked(p.clone()),
            SpoolError::NotFound(id) => SpoolError::NotFound(id.clone()),
            SpoolError::NoSuchRecipient(id, i) => SpoolError::NoSuchRecipient(id.clone(), *i),
            SpoolError::Final(id, i) => SpoolError::Final(id.clone(), *i),
            SpoolError::Corrupt(id, why) => SpoolError::Corrupt(id.clone(), why.clone()),
            SpoolError::Closed => SpoolError::Closed,
        }
    }

    /// Whether the error is the file system being full (`ENOSPC`, or
    /// `EDQUOT` for a quota).
    pub fn is_storage_full(&self) -> bool {
        match self {
            SpoolError::Io { source, .. } => {
                let code = source.raw_os_error();
                code == Some(rustix::io::Errno::NOSPC.raw_os_error())
                    || code == Some(rustix::io::Errno::DQUOT.raw_os_error())
            }
            _ => false,
        }
    }
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Io { op, path, source } => {
                write!(f, "spool: {op} {}: {source}", path.display())
            }
            SpoolError::Locked(p) => {
                write!(f, "spool {} is in use by another process", p.display())
            }
            SpoolError::NotFound(id) => write!(f, "no queued message {id}"),
            SpoolError::NoSuchRecipient(id, i) => write!(f, "message {id} has no recipient {i}"),
            SpoolError::Final(id, i) => {
                write!(f, "recipient {i} of message {id} is already final")
            }
            SpoolError::Corrupt(id, why) => write!(f, "message {id} is corrupt: {why}"),
            SpoolError::Closed => f.write_str("spool is shut down"),
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpoolError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
