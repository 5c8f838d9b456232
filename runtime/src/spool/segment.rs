//! Segments: shared append-only files that hold many small messages.
//!
//! A message file of its own costs an inode, two directory entries and a
//! sync of its data for every message; under load that, not the disk, is
//! what limits the accept rate (see `docs/spool.md`). A message that fits
//! in memory is instead appended by the committer, as one record, to the
//! active segment `queue/NNNNNNNNNNNNNNNN.seg`, and one `fdatasync` of the
//! segment makes every message of the batch durable at once.
//!
//! A record is a header (image length, message ID, CRC of both) followed by
//! the message's image: exactly the bytes of a message file, with its own
//! trailer and checksums. A header alone whose length is [`REMOVED`] is a
//! removal record: the message with that ID, earlier in the same segment,
//! is removed. A crash can only tear the records of the batch
//! being written, none of which was acknowledged; reading a segment stops
//! at the first record whose header is incomplete or fails its CRC.
//!
//! A message of the active segment is removed by a removal record, written
//! and synced with the batch's new messages. A message of an older segment
//! is removed by appending its ID to the segment's
//! removal log `NNNNNNNNNNNNNNNN.del` (created with the segment; room for
//! one entry per message is reserved with `fallocate` as messages are
//! added, so that a removal needs no new space on a full disk). The last
//! message of a segment is removed by deleting the segment (the active
//! segment only once it is full); the removal log and the journals of its
//! messages go once that is durable.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::codec::{check_header, check_versioned_header, header, versioned_header, HEADER_LEN};
use super::files::{read_image, ReadError};
use super::id::{self, MessageId};

/// Magic of a segment file's header.
pub const SEG_MAGIC: &[u8; 8] = b"MGWSEGMT";
/// Format version of new segments: 2 added removal records. Version 1
/// segments (no removal records) are read as well.
pub const SEG_VERSION: u32 = 2;
/// The image length in a record header that makes it a removal record.
pub const REMOVED: u32 = u32::MAX;
/// Length of a record header: image length, ID, CRC.
pub const RECORD_HEAD: u64 = 4 + id::LEN as u64 + 4;
/// A segment takes no more records once it is this long.
pub const SEGMENT_SIZE: u64 = 16 << 20;
/// Magic of a removal log's header.
pub const DEL_MAGIC: &[u8; 8] = b"MGWSEGDL";
/// Length of one removal log entry: ID, CRC-32 of the ID.
pub const DEL_ENTRY: u64 = id::LEN as u64 + 4;

/// The path of the removal log of segment `no` in `queue/`.
pub fn del_path(queue: &Path, no: u64) -> PathBuf {
    queue.join(format!("{no:016x}.del"))
}

/// The number of a removal log's file name (`NNNNNNNNNNNNNNNN.del`).
pub fn parse_del_name(name: &str) -> Option<u64> {
    parse_name(&format!("{}.seg", name.strip_suffix(".del")?))
}

/// One removal log entry.
pub fn del_entry(id: &MessageId) -> Vec<u8> {
    let mut out = Vec::with_capacity(DEL_ENTRY as usize);
    out.extend_from_slice(id.as_str().as_bytes());
    out.extend_from_slice(&crc32fast::hash(id.as_str().as_bytes()).to_le_bytes());
    out
}

/// Creates a removal log with its header (not synced).
pub fn create_del(path: &Path) -> io::Result<File> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    f.write_all(&header(DEL_MAGIC))?;
    Ok(f)
}

/// Reserves room in a removal log for `messages` entries without changing
/// its length. Where the file system cannot reserve (no `fallocate`), the
/// room is taken at removal time instead.
pub fn reserve_del(f: &File, messages: usize) -> io::Result<()> {
    let len = HEADER_LEN + DEL_ENTRY * messages as u64;
    match rustix::fs::fallocate(f, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Appends the entries of `ids` to a segment's removal log in one write
/// and syncs it.
pub fn append_dels<'a>(path: &Path, ids: impl Iterator<Item = &'a MessageId>) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    let len = f.metadata()?.len();
    let entries: Vec<u8> = ids.flat_map(del_entry).collect();
    if let Err(e) = f.write_all(&entries).and_then(|()| f.sync_data()) {
        // A torn entry would hide the ones after it; cut it off.
        let _ = f.set_len(len);
        return Err(e);
    }
    Ok(())
}

/// The IDs in a removal log; a missing log is empty. Reading stops at the
/// first entry that is incomplete or fails its CRC: the torn tail of an
/// append that never returned (reserved room reads as zeros and stops it
/// too). Returns the IDs and the length of the valid prefix.
pub fn read_del(path: &Path) -> Result<(Vec<MessageId>, u64), ReadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e.into()),
    };
    if bytes.len() < HEADER_LEN as usize {
        return Ok((Vec::new(), 0));
    }
    check_header(&bytes, DEL_MAGIC).map_err(ReadError::Corrupt)?;
    let mut ids = Vec::new();
    let mut pos = HEADER_LEN as usize;
    while let Some(entry) = bytes.get(pos..pos + DEL_ENTRY as usize) {
        let (text, crc) = entry.split_at(id::LEN);
        if crc32fast::hash(text).to_le_bytes() != crc {
            break;
        }
        let Some(id) = std::str::from_utf8(text).ok().and_then(MessageId::parse) else {
            break;
        };
        ids.push(id);
        pos += DEL_ENTRY as usize;
    }
    Ok((ids, pos as u64))
}

/// The path of segment `no` in `queue/`.
pub fn seg_path(queue: &Path, no: u64) -> PathBuf {
    queue.join(format!("{no:016x}.seg"))
}

/// The number of a segment file name (`NNNNNNNNNNNNNNNN.seg`).
pub fn parse_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The header of a new segment file.
pub fn file_header() -> [u8; 16] {
    versioned_header(SEG_MAGIC, SEG_VERSION)
}

/// Bytes gathered into one `write` when appending records: a batch of small
/// messages is one call, and no more than this is copied besides the
/// messages themselves.
const WRITE_CHUNK: usize = 256 * 1024;

/// The header of one record: image length, ID, CRC of both.
fn record_head(id: &MessageId, image_len: usize) -> [u8; RECORD_HEAD as usize] {
    // Images are far smaller than `REMOVED` (the spool's `max_inline`).
    let len = u32::try_from(image_len).unwrap_or(REMOVED - 1);
    head_with_len(id, len.min(REMOVED - 1))
}

/// A removal record: the header alone, with the length [`REMOVED`].
fn removal_head(id: &MessageId) -> [u8; RECORD_HEAD as usize] {
    head_with_len(id, REMOVED)
}

fn head_with_len(id: &MessageId, len: u32) -> [u8; RECORD_HEAD as usize] {
    let mut head = [0u8; RECORD_HEAD as usize];
    let len = len.to_le_bytes();
    head[..4].copy_from_slice(&len);
    head[4..4 + id::LEN].copy_from_slice(id.as_str().as_bytes());
    let crc = crc32fast::hash(&head[..4 + id::LEN]);
    head[4 + id::LEN..].copy_from_slice(&crc.to_le_bytes());
    head
}

/// Bytes of zeros written ahead of the records (see [`zero_fill`]).
pub const ZERO_AHEAD: u64 = 1 << 20;

/// Writes zeros over `from..to` of a segment. Records are then written over
/// zeros that are already part of the file, so that the `fdatasync` of a
/// batch has only data to flush, no new block or file size to commit, which
/// halves its cost on ext4. Readers take zeros after the last record for a
/// clean end.
pub fn zero_fill(file: &File, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; WRITE_CHUNK];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(WRITE_CHUNK, |n| n.min(WRITE_CHUNK));
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The bytes a batch of records takes.
pub fn records_len<'a>(images: impl Iterator<Item = &'a [u8]>) -> u64 {
    images.map(|image| RECORD_HEAD + image.len() as u64).sum()
}

/// Writes a record for each message image, then a removal record for each
/// of `removed` (messages earlier in this segment), into segment `no` at
/// offset `start` (the end of its records). Returns where each message is
/// and the bytes written. Not synced; on an error the caller cuts the file
/// back to `start`.
pub fn write_records<'a>(
    file: &File,
    no: u64,
    start: u64,
    images: impl Iterator<Item = (&'a MessageId, &'a [u8])>,
    removed: impl Iterator<Item = &'a MessageId>,
) -> io::Result<(Vec<(MessageId, Location)>, u64)> {
    let mut buf = Vec::new();
    // File offset at which `buf` starts.
    let mut pos = start;
    let mut placed = Vec::new();
    for (id, image) in images {
        let head = record_head(id, image.len());
        if !buf.is_empty() && buf.len() + head.len() + image.len() > WRITE_CHUNK {
            file.write_all_at(&buf, pos)?;
            pos += buf.len() as u64;
            buf.clear();
        }
        buf.extend_from_slice(&head);
        let offset = pos + buf.len() as u64;
        if head.len() + image.len() > WRITE_CHUNK {
            file.write_all_at(&buf, pos)?;
            file.write_all_at(image, offset)?;
            pos += (buf.len() + image.len()) as u64;
            buf.clear();
        } else {
            buf.extend_from_slice(image);
        }
        placed.push((
            id.clone(),
            Location {
                segment: no,
                offset,
                len: image.len() as u64,
            },
        ));
    }
    for id in removed {
        buf.extend_from_slice(&removal_head(id));
    }
    file.write_all_at(&buf, pos)?;
    pos += buf.len() as u64;
    Ok((placed, pos - start))
}

/// Where a message lives in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The segment's number.
    pub segment: u64,
    /// Offset of the message image in the segment file.
    pub offset: u64,
    /// Length of the image.
    pub len: u64,
}

/// One segment in the index.
#[derive(Debug, Default)]
pub struct SegInfo {
    /// Messages in it not yet removed.
    pub live: usize,
    /// Messages ever placed in it (the removal log's reserved entries).
    pub placed: usize,
    /// Messages in it already removed, whose journals go with the segment.
    pub removed: Vec<MessageId>,
}

/// Every message held in a segment, and the segments: shared by the
/// committer (which changes it) and the readers.
#[derive(Debug, Default)]
pub struct Index {
    /// Queued segment messages.
    pub messages: BTreeMap<MessageId, Location>,
    /// Every segment file that exists.
    pub segments: BTreeMap<u64, SegInfo>,
}

impl Index {
    /// Records a message as queued.
    pub fn insert(&mut self, id: MessageId, loc: Location) {
        let seg = self.segments.entry(loc.segment).or_default();
        seg.live += 1;
        seg.placed += 1;
        self.messages.insert(id, loc);
    }

    /// Takes back a message whose commit failed.
    pub fn forget(&mut self, id: &MessageId) {
        if let Some(loc) = self.messages.remove(id) {
            let seg = self.segments.entry(loc.segment).or_default();
            seg.live = seg.live.saturating_sub(1);
            seg.placed = seg.placed.saturating_sub(1);
        }
    }

    /// Records a message as removed; returns its segment.
    pub fn remove(&mut self, id: &MessageId) -> Option<u64> {
        let loc = self.messages.remove(id)?;
        let seg = self.segments.entry(loc.segment).or_default();
        seg.live = seg.live.saturating_sub(1);
        seg.removed.push(id.clone());
        Some(loc.segment)
    }
}

/// What scanning a segment found (`dropped`: bytes after the last sound
/// record that are not all zeros).
#[derive(Debug, Default)]
pub struct Scan {
    /// Valid messages, in file order.
    pub messages: Vec<(MessageId, Location)>,
    /// Records whose header is sound but whose image is not, with a good
    /// record after them: ID, image bytes (for `corrupt/`) and the reason.
    pub corrupt: Vec<(MessageId, Vec<u8>, String)>,
    /// Bytes after the last sound record (a torn tail, or damage).
    pub dropped: u64,
    /// Messages removed by a removal record.
    pub removed: Vec<MessageId>,
}

/// Reads a segment file and validates every record in full.
pub fn scan(path: &Path, no: u64) -> Result<Scan, ReadError> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut out = Scan::default();
    let mut head = [0u8; HEADER_LEN as usize];
    let torn = match f.read_exact(&mut head) {
        // A header cut short, with or without the zeros written ahead: a
        // creation torn before its first batch was synced, so the segment
        // never held an acknowledged message.
        Ok(()) => match check_versioned_header(&head, SEG_MAGIC, 1..=SEG_VERSION) {
            Ok(_) => false,
            Err(_) if torn_header(&head) => true,
            Err(why) => return Err(ReadError::Corrupt(why)),
        },
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => true,
        Err(e) => return Err(e.into()),
    };
    if torn {
        if !all_zeros(&f, 0, len)? {
            out.dropped = len;
        }
        return Ok(out);
    }
    let mut pos = HEADER_LEN;
    // Records with a sound header but a bad image since the last good
    // record, with where the first of them starts: damage if a good record
    // follows, else the torn tail of the batch being written at a crash
    // (its blocks need not reach the disk in order).
    let mut bad = Vec::new();
    let mut bad_from = pos;
    let mut rec = [0u8; RECORD_HEAD as usize];
    while pos + RECORD_HEAD <= len {
        std::io::Seek::seek(&mut f, io::SeekFrom::Start(pos))?;
        f.read_exact(&mut rec)?;
        let (body, crc) = rec.split_at(RECORD_HEAD as usize - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            break;
        }
        let image_len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let Some(id) = std::str::from_utf8(&body[4..])
            .ok()
            .and_then(MessageId::parse)
        else {
            break;
        };
        let offset = pos + RECORD_HEAD;
        if image_len == REMOVED {
            out.corrupt.append(&mut bad);
            out.removed.push(id);
            pos = offset;
            continue;
        }
        let image_len = u64::from(image_len);
        if offset + image_len > len {
            break;
        }
        match read_image(&mut f, offset, image_len, true) {
            Ok(_) => {
                out.corrupt.append(&mut bad);
                out.messages.push((
                    id,
                    Location {
                        segment: no,
                        offset,
                        len: image_len,
                    },
                ));
            }
            Err(ReadError::Corrupt(why)) => {
                if bad.is_empty() {
                    bad_from = pos;
                }
                let mut bytes = vec![0u8; usize::try_from(image_len).unwrap_or(0)];
                std::io::Seek::seek(&mut f, io::SeekFrom::Start(offset))?;
                f.read_exact(&mut bytes)?;
                bad.push((id, bytes, why));
            }
            Err(e) => return Err(e),
        }
        pos = offset + image_len;
    }
    if !bad.is_empty() {
        pos = bad_from;
    }
    // Zeros after the last record are the room written ahead: a clean end.
    if !all_zeros(&f, pos, len)? {
        out.dropped = len - pos;
    }
    Ok(out)
}

/// Whether a bad segment header is a prefix of a good one followed by zeros
/// (what a crash can leave of a header written but not yet synced).
fn torn_header(head: &[u8]) -> bool {
    let good = file_header();
    (0..good.len()).any(|k| head[..k] == good[..k] && head[k..].iter().all(|&b| b == 0))
}

/// Whether bytes `from..to` of `f` are all zeros.
fn all_zeros(f: &File, from: u64, to: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; WRITE_CHUNK];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(WRITE_CHUNK, |n| n.min(WRITE_CHUNK));
        f.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        let p = seg_path(Path::new("/q"), 0x2a);
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_eq!(name, "000000000000002a.seg");
        assert_eq!(parse_name(name), Some(0x2a));
        assert_eq!(parse_name("000000000000002A.seg"), None);
        assert_eq!(parse_name("2a.seg"), None);
        assert_eq!(parse_name("000000000000002a.msg"), None);
        assert_eq!(parse_del_name("000000000000002a.del"), Some(0x2a));
        assert_eq!(parse_del_name("000000000000002a.seg"), None);
    }
}
