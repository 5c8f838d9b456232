//! Reading the spool's files: message files and state journals.
//!
//! Used by recovery (full validation), by the committer (to check a state
//! change against the message) and by the admin views.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::codec::{
    self, check_header, decode_envelope, decode_records, from_micros, Record, Trailer, HEADER_LEN,
    STATE_MAGIC, TRAILER_LEN,
};
use super::envelope::{Envelope, RecipientState};
use super::id::MessageId;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The file system refused (including "not found").
    Io(io::Error),
    /// The bytes are not a valid file of the format.
    Corrupt(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// The paths of one message in `queue/`.
pub fn msg_path(queue: &Path, id: &MessageId) -> PathBuf {
    queue.join(format!("{id}.msg"))
}

/// The path of one message's state journal in `queue/`.
pub fn state_path(queue: &Path, id: &MessageId) -> PathBuf {
    queue.join(format!("{id}.st"))
}

/// Reads the envelope and trailer of a message file. With `verify_body`
/// the message bytes are read and their checksum compared too.
pub fn read_message(path: &Path, verify_body: bool) -> Result<(Envelope, Trailer), ReadError> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    read_image(&mut f, 0, len, verify_body)
}

/// Reads the envelope and trailer of a message image: the `len` bytes at
/// `base` of `f` (a whole message file, or one record of a segment). With
/// `verify_body` the message bytes are read and their checksum compared too.
pub fn read_image(
    f: &mut File,
    base: u64,
    len: u64,
    verify_body: bool,
) -> Result<(Envelope, Trailer), ReadError> {
    if len < HEADER_LEN + TRAILER_LEN {
        return Err(ReadError::Corrupt(format!("file too short ({len} bytes)")));
    }
    let mut head = [0u8; HEADER_LEN as usize];
    f.seek(SeekFrom::Start(base))?;
    f.read_exact(&mut head)?;
    check_header(&head, codec::MSG_MAGIC).map_err(ReadError::Corrupt)?;
    let mut t = [0u8; TRAILER_LEN as usize];
    f.seek(SeekFrom::Start(base + len - TRAILER_LEN))?;
    f.read_exact(&mut t)?;
    let trailer = Trailer::decode(&t).map_err(ReadError::Corrupt)?;
    let expect = HEADER_LEN
        .checked_add(trailer.body_len)
        .and_then(|n| n.checked_add(u64::from(trailer.env_len)))
        .and_then(|n| n.checked_add(TRAILER_LEN));
    if expect != Some(len) {
        return Err(ReadError::Corrupt(format!(
            "file is {len} bytes, trailer says {}",
            expect.map_or_else(|| "overflow".to_owned(), |n| n.to_string())
        )));
    }
    let mut env = vec![0u8; trailer.env_len as usize];
    f.seek(SeekFrom::Start(base + HEADER_LEN + trailer.body_len))?;
    f.read_exact(&mut env)?;
    if crc32fast::hash(&env) != trailer.env_crc {
        return Err(ReadError::Corrupt("envelope checksum mismatch".into()));
    }
    let envelope = decode_envelope(&env).map_err(ReadError::Corrupt)?;
    if envelope.size != trailer.body_len {
        return Err(ReadError::Corrupt(
            "envelope size disagrees with trailer".into(),
        ));
    }
    if verify_body {
        f.seek(SeekFrom::Start(base + HEADER_LEN))?;
        let mut crc = crc32fast::Hasher::new();
        let mut left = trailer.body_len;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            f.read_exact(&mut buf[..n])?;
            crc.update(&buf[..n]);
            left -= n as u64;
        }
        if crc.finalize() != trailer.body_crc {
            return Err(ReadError::Corrupt("message checksum mismatch".into()));
        }
    }
    Ok((envelope, trailer))
}

/// A state journal as read from disk.
#[derive(Debug, Default)]
pub struct Journal {
    /// The valid records, in order.
    pub records: Vec<Record>,
    /// File length of the valid prefix (header included); 0 if the file
    /// does not exist or holds less than a header.
    pub valid_len: u64,
    /// The file's actual length.
    pub file_len: u64,
}

/// Reads a message's state journal; a missing file is an empty journal.
pub fn read_journal(path: &Path) -> Result<Journal, ReadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Journal::default()),
        Err(e) => return Err(e.into()),
    };
    let file_len = bytes.len() as u64;
    if bytes.len() < HEADER_LEN as usize {
        // The first append writes the header and its record in one call;
        // a shorter file is that append, torn.
        return Ok(Journal {
            file_len,
            ..Journal::default()
        });
    }
    check_header(&bytes, STATE_MAGIC).map_err(ReadError::Corrupt)?;
    let (records, used) = decode_records(&bytes[HEADER_LEN as usize..]);
    Ok(Journal {
        records,
        valid_len: HEADER_LEN + used as u64,
        file_len,
    })
}

/// What the journal says beyond the recipient states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// Whether the message is on hold.
    pub hold: bool,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the next attempt is due; `None` means now.
    pub next_attempt: Option<SystemTime>,
    /// Whether the delay warning was sent.
    pub warned: bool,
}

/// Applies journal records to an envelope's recipients.
///
/// A record naming a recipient that does not exist means the journal does
/// not belong to the message; a change to a final state is ignored (the
/// committer never writes one).
pub fn replay(envelope: &mut Envelope, records: &[Record]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    for rec in records {
        match rec {
            Record::State { index, state } => {
                let r = usize::try_from(*index)
                    .ok()
                    .and_then(|i| envelope.recipients.get_mut(i))
                    .ok_or_else(|| {
                        format!("journal names recipient {index}, which does not exist")
                    })?;
                if !r.state.is_final() {
                    r.state = state.clone();
                }
            }
            Record::Hold(h) => flags.hold = *h,
            Record::Schedule {
                attempts,
                next_attempt,
            } => {
                flags.attempts = *attempts;
                flags.next_attempt = Some(from_micros(*next_attempt));
            }
            Record::Warned => flags.warned = true,
        }
    }
    Ok(flags)
}

/// Whether every recipient's state is final.
pub fn all_final(envelope: &Envelope) -> bool {
    envelope.recipients.iter().all(|r| {
        !matches!(
            r.state,
            RecipientState::Pending | RecipientState::Deferred(_)
        )
    })
}
