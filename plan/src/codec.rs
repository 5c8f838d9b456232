//! The plan file format.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "MAILGWPL"
//!      8     2  format version, u16 little-endian
//!     10     8  body length in bytes, u64 little-endian
//!     18     4  CRC-32 (IEEE) of the body, u32 little-endian
//!     22     …  body: the plan, postcard-encoded
//! ```
//!
//! The plan holds no hash map, so the same plan always gives the same bytes.
//! [`Plan::write`] encodes the body straight into the file and then puts
//! the header, with the body's length and checksum, in front of it.

use std::fmt;
use std::io::{self, Cursor, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::chunked::write_body;
use crate::connector::SenderMatch;
use crate::plan::Plan;
use crate::recipient::Member;

/// The first eight bytes of every plan file.
pub const MAGIC: [u8; 8] = *b"MAILGWPL";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 3;
/// Length of the header before the body.
pub const HEADER_LEN: usize = 8 + 2 + 8 + 4;

/// What [`Plan::write`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The length of the whole file.
    pub len: u64,
    /// CRC-32 of the body, as stored in the header.
    pub checksum: u32,
}

impl Written {
    /// The checksum as eight lowercase hex digits, as `mailgwc build` prints it.
    pub fn checksum_hex(&self) -> String {
        format!("{:08x}", self.checksum)
    }
}

/// Why a plan could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Fewer bytes than a header.
    TooShort {
        /// Bytes present.
        len: usize,
    },
    /// The magic bytes are wrong.
    NotAPlan,
    /// A format version this build cannot read.
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The body is shorter than the header says.
    Truncated {
        /// Body length in the header.
        expected: u64,
        /// Body bytes present.
        found: u64,
    },
    /// Bytes after the end of the body.
    TrailingBytes {
        /// Body length in the header.
        expected: u64,
        /// Body bytes present.
        found: u64,
    },
    /// The body does not match its checksum.
    ChecksumMismatch {
        /// Checksum in the header.
        expected: u32,
        /// Checksum of the body.
        found: u32,
    },
    /// The body passed the checksum but does not decode as a plan.
    Decode(String),
    /// The body decodes but refers to items that do not exist.
    Inconsistent(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, error } => {
                write!(f, "cannot read the plan {}: {error}", path.display())
            }
            LoadError::TooShort { len } => write!(
                f,
                "the file is {len} bytes long, too short to be a plan (the header alone is {HEADER_LEN})"
            ),
            LoadError::NotAPlan => {
                f.write_str("this is not a mailgw plan (the file does not start with MAILGWPL)")
            }
            LoadError::UnsupportedVersion { found, supported } => write!(
                f,
                "the plan has format version {found}, this build reads version {supported}; rebuild it with the matching mailgwc"
            ),
            LoadError::Truncated { expected, found } => write!(
                f,
                "the plan is truncated: the header says {expected} body bytes, the file has {found}"
            ),
            LoadError::TrailingBytes { expected, found } => write!(
                f,
                "the plan has extra bytes: the header says {expected} body bytes, the file has {found}"
            ),
            LoadError::ChecksumMismatch { expected, found } => write!(
                f,
                "the plan is corrupted: its checksum is {found:08x}, the header says {expected:08x}"
            ),
            LoadError::Decode(reason) => write!(f, "the plan body does not decode: {reason}"),
            LoadError::Inconsistent(reason) => write!(f, "the plan is inconsistent: {reason}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl Plan {
    /// Writes the plan file into `out` from where it stands: the body is
    /// encoded straight into it, then the header is written in front. `out`
    /// is left after the last byte.
    pub fn write<W: Write + Seek>(&self, out: W) -> io::Result<Written> {
        let mut out = out;
        out.write_all(&[0; HEADER_LEN])?;
        let mut body = write_body(self, out)?;
        let mut header = [0; HEADER_LEN];
        let (magic, rest) = header.split_at_mut(MAGIC.len());
        let (version, rest) = rest.split_at_mut(2);
        let (length, checksum) = rest.split_at_mut(8);
        magic.copy_from_slice(&MAGIC);
        version.copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        length.copy_from_slice(&body.len.to_le_bytes());
        checksum.copy_from_slice(&body.checksum.to_le_bytes());
        let end = body.out.stream_position()?;
        body.out
            .seek(SeekFrom::Current(-(HEADER_LEN as i64) - body.len as i64))?;
        body.out.write_all(&header)?;
        body.out.seek(SeekFrom::Start(end))?;
        Ok(Written {
            len: HEADER_LEN as u64 + body.len,
            checksum: body.checksum,
        })
    }

    /// The plan file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encoded().0
    }

    /// The body checksum as eight lowercase hex digits.
    pub fn checksum_hex(&self) -> String {
        self.encoded().1.checksum_hex()
    }

    /// The plan file in memory.
    fn encoded(&self) -> (Vec<u8>, Written) {
        let mut file = Cursor::new(Vec::new());
        // Every plan type is a plain struct or enum with known-length
        // sequences, which postcard always serializes, and a vector takes
        // every write.
        let written = self.write(&mut file).expect("plans encode into memory");
        (file.into_inner(), written)
    }

    /// Decodes and checks a plan file. Never panics, whatever the input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Plan, LoadError> {
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or(LoadError::TooShort { len: bytes.len() })?;
        let (magic, rest) = header.split_at(8);
        if magic != MAGIC {
            return Err(LoadError::NotAPlan);
        }
        let (version, rest) = rest.split_at(2);
        let (length, checksum) = rest.split_at(8);
        let version = u16::from_le_bytes([version[0], version[1]]);
        if version != FORMAT_VERSION {
            return Err(LoadError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let mut length_bytes = [0u8; 8];
        length_bytes.copy_from_slice(length);
        let expected = u64::from_le_bytes(length_bytes);
        let mut checksum_bytes = [0u8; 4];
        checksum_bytes.copy_from_slice(checksum);
        let expected_checksum = u32::from_le_bytes(checksum_bytes);
        let body = &bytes[HEADER_LEN..];
        let found = body.len() as u64;
        if found < expected {
            return Err(LoadError::Truncated { expected, found });
        }
        if found > expected {
            return Err(LoadError::TrailingBytes { expected, found });
        }
        let actual = crc32fast::hash(body);
        if actual != expected_checksum {
            return Err(LoadError::ChecksumMismatch {
                expected: expected_checksum,
                found: actual,
            });
        }
        let (plan, rest) = postcard::take_from_bytes::<Plan>(body)
            .map_err(|e| LoadError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(LoadError::Decode(format!(
                "{} bytes left after the plan",
                rest.len()
            )));
        }
        plan.check_references().map_err(LoadError::Inconsistent)?;
        Ok(plan)
    }

    /// Reads and decodes a plan file.
    pub fn load(path: impl AsRef<Path>) -> Result<Plan, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| LoadError::Io {
            path: path.to_owned(),
            error,
        })?;
        Plan::from_bytes(&bytes)
    }

    /// Checks that every index points at an existing item, so that a plan
    /// that loaded can be used without bounds surprises.
    fn check_references(&self) -> Result<(), String> {
        let mailboxes = self.mailboxes.len();
        let groups = self.groups.len();
        let in_range = |i: u32, len: usize| (i as usize) < len;
        let sender_ok = |s: &SenderMatch| match *s {
            SenderMatch::Mailbox(m) => in_range(m, mailboxes),
            SenderMatch::Group(g) => in_range(g, groups),
            SenderMatch::Pattern(_) => true,
        };
        for listener in &self.listeners {
            if let Some(p) = listener.tls.profile {
                if !in_range(p, self.tls.len()) {
                    return Err(format!("listener {} uses TLS profile #{p}", listener.name));
                }
            }
        }
        if !self.mailboxes.is_consistent(self.backends.len()) {
            let elsewhere =
                (self.mailboxes.iter()).find(|m| !in_range(m.backend, self.backends.len()));
            return Err(match elsewhere {
                Some(m) => format!("mailbox {} is on backend #{}", m.name, m.backend),
                None => "the mailbox list is damaged".to_owned(),
            });
        }
        for group in &self.groups {
            for member in &group.members {
                let ok = match member {
                    Member::Mailbox(m) => in_range(*m, mailboxes),
                    Member::Group(g) => in_range(*g, groups),
                    Member::External(_) => true,
                };
                if !ok {
                    return Err(format!(
                        "group {} has a member that does not exist",
                        group.name
                    ));
                }
            }
        }
        if !self.recipients.is_consistent(mailboxes, groups) {
            return Err("the recipient table is damaged".to_owned());
        }
        for connector in &self.connectors {
            if !connector
                .accept_from
                .iter()
                .chain(&connector.reject_from)
                .all(sender_ok)
            {
                return Err(format!(
                    "connector {} restricts a sender that does not exist",
                    connector.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_plan;
    use proptest::prelude::*;

    fn header_with(bytes: &[u8], body_len: u64, checksum: u32) -> Vec<u8> {
        let mut out = bytes.to_vec();
        out[10..18].copy_from_slice(&body_len.to_le_bytes());
        out[18..22].copy_from_slice(&checksum.to_le_bytes());
        out
    }

    #[test]
    fn round_trip_and_determinism() {
        let plan = sample_plan();
        let a = plan.to_bytes();
        assert_eq!(a, plan.clone().to_bytes());
        assert_eq!(&a[..8], b"MAILGWPL");
        assert_eq!(plan.checksum_hex().len(), 8);
        assert_eq!(Plan::from_bytes(&a).expect("loads"), plan);
    }

    #[test]
    fn writes_in_chunks_behind_its_header() {
        // Far more than one chunk of body.
        let mut plan = sample_plan();
        let mut mailboxes = plan.mailboxes.clone();
        let first = plan.mailboxes.get(0).expect("a mailbox");
        for i in 0..30_000 {
            let name = format!("user{i:07}");
            mailboxes.push(crate::Mailbox {
                name: &name,
                ..first
            });
        }
        plan.mailboxes = mailboxes;
        let mut file = Cursor::new(b"prefix".to_vec());
        file.seek(SeekFrom::End(0)).expect("seek");
        let written = plan.write(&mut file).expect("writes");
        assert_eq!(
            file.position(),
            file.get_ref().len() as u64,
            "left at the end"
        );
        let bytes = &file.get_ref()[6..];
        assert_eq!(written.len, bytes.len() as u64);
        assert!(written.len > 256 * 1024);
        assert_eq!(written.checksum, crc32fast::hash(&bytes[HEADER_LEN..]));
        assert_eq!(bytes, plan.to_bytes());
        assert_eq!(Plan::from_bytes(bytes).expect("loads"), plan);
    }

    #[test]
    fn write_errors_come_back() {
        /// Takes `room` bytes, then fails.
        struct Full {
            room: usize,
            at: u64,
        }
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if buf.len() > self.room {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
                }
                self.room -= buf.len();
                self.at += buf.len() as u64;
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Seek for Full {
            fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
                Ok(self.at)
            }
        }
        let error = sample_plan()
            .write(Full { room: 30, at: 0 })
            .expect_err("no room");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn load_reads_files_and_wraps_io_errors() {
        let dir = std::env::temp_dir().join(format!("mailgw-plan-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("a.plan");
        std::fs::write(&path, sample_plan().to_bytes()).expect("write");
        assert_eq!(Plan::load(&path).expect("loads"), sample_plan());
        let missing = Plan::load(dir.join("missing.plan")).expect_err("missing");
        assert!(matches!(missing, LoadError::Io { .. }));
        assert!(missing.to_string().starts_with("cannot read the plan "));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn each_corruption_has_its_error() {
        let good = sample_plan().to_bytes();
        let body_len = (good.len() - HEADER_LEN) as u64;

        assert!(matches!(
            Plan::from_bytes(&good[..5]),
            Err(LoadError::TooShort { len: 5 })
        ));
        assert!(matches!(
            Plan::from_bytes(&[]),
            Err(LoadError::TooShort { len: 0 })
        ));

        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(Plan::from_bytes(&bad), Err(LoadError::NotAPlan)));

        let mut bad = good.clone();
        bad[8..10].copy_from_slice(&7u16.to_le_bytes());
        let err = Plan::from_bytes(&bad).expect_err("version");
        assert!(matches!(
            err,
            LoadError::UnsupportedVersion {
                found: 7,
                supported: FORMAT_VERSION
            }
        ));
        assert!(err.to_string().contains(&format!(
            "format version 7, this build reads version {FORMAT_VERSION}"
        )));

        let err = Plan::from_bytes(&good[..good.len() - 3]).expect_err("truncated");
        assert!(
            matches!(err, LoadError::Truncated { expected, found } if expected == body_len && found == body_len - 3)
        );

        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            Plan::from_bytes(&long),
            Err(LoadError::TrailingBytes { .. })
        ));

        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        let err = Plan::from_bytes(&bad).expect_err("checksum");
        assert!(matches!(err, LoadError::ChecksumMismatch { .. }));
        assert!(err.to_string().starts_with("the plan is corrupted"));

        // A body that passes its checksum but is not a plan.
        let mut bad = good[..HEADER_LEN].to_vec();
        bad.extend_from_slice(&[0xff; 3]);
        let bad = header_with(&bad, 3, crc32fast::hash(&[0xff; 3]));
        assert!(matches!(Plan::from_bytes(&bad), Err(LoadError::Decode(_))));
    }

    #[test]
    fn dangling_index_is_inconsistent() {
        let mut plan = sample_plan();
        let mut mailboxes = plan.mailboxes.clone();
        let first = plan.mailboxes.get(0).expect("a mailbox");
        mailboxes.push(crate::Mailbox {
            backend: 99,
            ..first
        });
        plan.mailboxes = mailboxes;
        let err = Plan::from_bytes(&plan.to_bytes()).expect_err("dangling");
        assert!(
            matches!(&err, LoadError::Inconsistent(why) if why == "mailbox alice is on backend #99"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Plan::from_bytes(&bytes);
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = Plan::from_bytes(&with_magic);
        }

        #[test]
        fn truncations_never_load(cut in 0usize..10_000) {
            let good = sample_plan().to_bytes();
            let cut = cut % good.len();
            prop_assert!(Plan::from_bytes(&good[..cut]).is_err());
        }

        #[test]
        fn flips_are_detected(at in 0usize..10_000, mask in 1u8..=255) {
            let mut bytes = sample_plan().to_bytes();
            let at = at % bytes.len();
            bytes[at] ^= mask;
            prop_assert!(Plan::from_bytes(&bytes).is_err());
        }

        #[test]
        fn flipped_bodies_with_fixed_checksum_never_panic(
            flips in proptest::collection::vec((0usize..10_000, any::<u8>()), 1..8)
        ) {
            // Recomputing the checksum gets the damage past it, into the
            // decoder and the reference check.
            let good = sample_plan().to_bytes();
            let mut body = good[HEADER_LEN..].to_vec();
            for (at, value) in flips {
                let at = at % body.len();
                body[at] = value;
            }
            let mut bytes = header_with(&good[..HEADER_LEN], body.len() as u64, crc32fast::hash(&body));
            bytes.extend_from_slice(&body);
            if let Ok(plan) = Plan::from_bytes(&bytes) {
                // Whatever loaded must be usable without panicking.
                let _ = crate::Summary(&plan).to_string();
                for (key, _) in plan.recipients.iter() {
                    if let Ok(address) = crate::parse_mailbox(key) {
                        let _ = plan.resolve(&address);
                    }
                }
            }
        }
    }
}
