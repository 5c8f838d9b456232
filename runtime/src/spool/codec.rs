//! The byte formats of the spool, written by hand so that every field is
//! documented in `docs/spool.md` and nothing else is serialized by accident.
//!
//! All integers are little-endian. Decoding never panics: every length is
//! checked against the bytes that remain.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::envelope::{BodyType, Envelope, Notify, Origin, Recipient, RecipientState, Ret};

/// The first 8 bytes of a message file.
pub const MSG_MAGIC: &[u8; 8] = b"MGWSPOOL";
/// The last 8 bytes of a message file.
pub const MSG_END_MAGIC: &[u8; 8] = b"MGWEND01";
/// The first 8 bytes of a state journal.
pub const STATE_MAGIC: &[u8; 8] = b"MGWSTATE";
/// The format version of message files and state journals.
pub const VERSION: u32 = 1;
/// Length of the message file header and of the journal header.
pub const HEADER_LEN: u64 = 16;
/// Length of the message file trailer.
pub const TRAILER_LEN: u64 = 32;
/// Upper bound on an encoded envelope (and a journal record), so that a
/// corrupt length never makes us allocate gigabytes.
pub const MAX_ENVELOPE: u32 = 16 << 20;

/// A 16-byte header: magic, version, reserved zero.
pub fn header(magic: &[u8; 8]) -> [u8; 16] {
    versioned_header(magic, VERSION)
}

/// A 16-byte header with a version of the file kind's own.
pub fn versioned_header(magic: &[u8; 8], version: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(magic);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h
}

/// Checks a 16-byte header.
pub fn check_header(bytes: &[u8], magic: &[u8; 8]) -> Result<(), String> {
    check_versioned_header(bytes, magic, VERSION..=VERSION).map(|_| ())
}

/// Checks a 16-byte header whose version may be any in `known`; returns
/// the version.
pub fn check_versioned_header(
    bytes: &[u8],
    magic: &[u8; 8],
    known: std::ops::RangeInclusive<u32>,
) -> Result<u32, String> {
    if bytes.len() < 16 || &bytes[..8] != magic {
        return Err("bad magic".into());
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if !known.contains(&version) {
        return Err(format!("unknown format version {version}"));
    }
    Ok(version)
}

/// The fixed-size end of a message file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Length of the message bytes.
    pub body_len: u64,
    /// Length of the encoded envelope.
    pub env_len: u32,
    /// CRC-32 of the message bytes.
    pub body_crc: u32,
    /// CRC-32 of the encoded envelope.
    pub env_crc: u32,
}

impl Trailer {
    /// The 32 bytes: body_len u64, env_len u32, body_crc u32, env_crc u32,
    /// CRC-32 of the preceding 20 bytes, end magic.
    pub fn encode(&self) -> [u8; 32] {
        let mut t = [0u8; 32];
        t[0..8].copy_from_slice(&self.body_len.to_le_bytes());
        t[8..12].copy_from_slice(&self.env_len.to_le_bytes());
        t[12..16].copy_from_slice(&self.body_crc.to_le_bytes());
        t[16..20].copy_from_slice(&self.env_crc.to_le_bytes());
        let crc = crc32fast::hash(&t[0..20]);
        t[20..24].copy_from_slice(&crc.to_le_bytes());
        t[24..32].copy_from_slice(MSG_END_MAGIC);
        t
    }

    /// Decodes and checks a trailer.
    pub fn decode(t: &[u8]) -> Result<Trailer, String> {
        if t.len() != 32 || &t[24..32] != MSG_END_MAGIC {
            return Err("missing end marker (incomplete file)".into());
        }
        let mut r = Reader::new(t);
        let body_len = r.u64()?;
        let env_len = r.u32()?;
        let body_crc = r.u32()?;
        let env_crc = r.u32()?;
        let crc = r.u32()?;
        if crc != crc32fast::hash(&t[0..20]) {
            return Err("trailer checksum mismatch".into());
        }
        if env_len > MAX_ENVELOPE {
            return Err("envelope length out of range".into());
        }
        Ok(Trailer {
            body_len,
            env_len,
            body_crc,
            env_crc,
        })
    }
}

/// Appends little-endian fields to a buffer.
pub struct Writer(pub Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        // Strings come from a session that bounds line lengths; saturate
        // rather than wrap if one is absurdly long (decoding then fails and
        // the file is set aside, which is the safe outcome).
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
}

/// Reads little-endian fields, failing on truncation.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| "truncated".to_owned())?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<String, String> {
        let len = usize::try_from(self.u32()?).map_err(|_| "length out of range")?;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| "string is not UTF-8".to_owned())
    }
    fn opt_str(&mut self) -> Result<Option<String>, String> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            t => Err(format!("bad option tag {t}")),
        }
    }
    /// Whether every byte was read.
    pub fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

/// Microseconds since the epoch; times before it count as the epoch.
pub fn to_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The inverse of [`to_micros`].
pub fn from_micros(m: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(m)
}

/// Encodes an envelope (recipient states are not stored here).
pub fn encode_envelope(e: &Envelope) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(256));
    w.u64(to_micros(e.received_at));
    w.u64(e.size);
    w.opt_str(e.sender.as_deref());
    match e.client_ip {
        IpAddr::V4(a) => {
            w.u8(4);
            w.0.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            w.u8(6);
            w.0.extend_from_slice(&a.octets());
        }
    }
    w.str(&e.helo);
    w.opt_str(e.auth_user.as_deref());
    w.opt_str(e.envid.as_deref());
    w.u8(match e.ret {
        None => 0,
        Some(Ret::Full) => 1,
        Some(Ret::Hdrs) => 2,
    });
    w.u8(match e.body {
        BodyType::SevenBit => 0,
        BodyType::EightBitMime => 1,
    });
    w.u8(u8::from(e.smtputf8) | u8::from(e.origin.inside) << 1 | u8::from(e.origin.filtered) << 2);
    w.u32(u32::try_from(e.recipients.len()).unwrap_or(u32::MAX));
    for r in &e.recipients {
        w.str(&r.address);
        w.opt_str(r.orcpt.as_deref());
        w.u8(encode_notify(r.notify) | if r.journal { JOURNAL } else { 0 });
    }
    w.0
}

/// The recipient flag (beside the `NOTIFY` bits) of a journal recipient.
const JOURNAL: u8 = 0x08;

fn encode_notify(n: Option<Notify>) -> u8 {
    match n {
        None => 0,
        Some(n) => 0x80 | u8::from(n.success) | u8::from(n.failure) << 1 | u8::from(n.delay) << 2,
    }
}

/// Decodes an envelope; every recipient comes back
/// [`RecipientState::Pending`].
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, String> {
    let mut r = Reader::new(bytes);
    let received_at = from_micros(r.u64()?);
    let size = r.u64()?;
    let sender = r.opt_str()?;
    let client_ip = match r.u8()? {
        4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
        6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
        t => return Err(format!("bad address family {t}")),
    };
    let helo = r.str()?;
    let auth_user = r.opt_str()?;
    let envid = r.opt_str()?;
    let ret = match r.u8()? {
        0 => None,
        1 => Some(Ret::Full),
        2 => Some(Ret::Hdrs),
        t => return Err(format!("bad RET {t}")),
    };
    let body = match r.u8()? {
        0 => BodyType::SevenBit,
        1 => BodyType::EightBitMime,
        t => return Err(format!("bad BODY {t}")),
    };
    let flags = r.u8()?;
    if flags & !0b111 != 0 {
        return Err(format!("bad envelope flags {flags:#x}"));
    }
    let smtputf8 = flags & 1 != 0;
    let origin = Origin {
        inside: flags & 2 != 0,
        filtered: flags & 4 != 0,
    };
    let count = r.u32()?;
    let mut recipients = Vec::new();
    for _ in 0..count {
        let address = r.str()?;
        let orcpt = r.opt_str()?;
        let flags = r.u8()?;
        let journal = flags & JOURNAL != 0;
        let notify = match flags & !JOURNAL {
            0 => None,
            n if n & 0x70 == 0 && n & 0x80 != 0 => Some(Notify {
                success: n & 1 != 0,
                failure: n & 2 != 0,
                delay: n & 4 != 0,
            }),
            n => return Err(format!("bad NOTIFY flags {n:#x}")),
        };
        recipients.push(Recipient {
            address,
            orcpt,
            notify,
            state: RecipientState::Pending,
            journal,
        });
    }
    if !r.at_end() {
        return Err("trailing bytes after envelope".into());
    }
    Ok(Envelope {
        sender,
        recipients,
        ret,
        envid,
        body,
        smtputf8,
        client_ip,
        helo,
        auth_user,
        received_at,
        size,
        origin,
    })
}

/// One change recorded in a message's state journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A recipient's new state.
    State {
        /// Index into the envelope's recipients.
        index: u32,
        /// The new state.
        state: RecipientState,
    },
    /// Hold (`true`) or release (`false`).
    Hold(bool),
    /// Retry bookkeeping of the queue manager.
    Schedule {
        /// Delivery attempts so far.
        attempts: u32,
        /// Microseconds since the epoch of the next attempt.
        next_attempt: u64,
    },
    /// The sender was told the message is delayed (sent once).
    Warned,
}

/// Encodes a record framed for the journal: payload length u32, CRC-32 of
/// the payload u32, payload.
pub fn encode_record(rec: &Record) -> Vec<u8> {
    let mut p = Writer(Vec::with_capacity(32));
    match rec {
        Record::State { index, state } => {
            p.u8(1);
            p.u32(*index);
            match state {
                RecipientState::Pending => p.u8(0),
                RecipientState::Delivered => p.u8(1),
                RecipientState::Failed(why) => {
                    p.u8(2);
                    p.str(why);
                }
                RecipientState::Deferred(why) => {
                    p.u8(3);
                    p.str(why);
                }
            }
        }
        Record::Hold(h) => {
            p.u8(2);
            p.u8(u8::from(*h));
        }
        Record::Schedule {
            attempts,
            next_attempt,
        } => {
            p.u8(3);
            p.u32(*attempts);
            p.u64(*next_attempt);
        }
        Record::Warned => p.u8(4),
    }
    let mut out = Writer(Vec::with_capacity(p.0.len() + 8));
    out.u32(u32::try_from(p.0.len()).unwrap_or(u32::MAX));
    out.u32(crc32fast::hash(&p.0));
    out.0.extend_from_slice(&p.0);
    out.0
}

fn decode_payload(p: &[u8]) -> Result<Record, String> {
    let mut r = Reader::new(p);
    let rec = match r.u8()? {
        1 => {
            let index = r.u32()?;
            let state = match r.u8()? {
                0 => RecipientState::Pending,
                1 => RecipientState::Delivered,
                2 => RecipientState::Failed(r.str()?),
                3 => RecipientState::Deferred(r.str()?),
                t => return Err(format!("bad state {t}")),
            };
            Record::State { index, state }
        }
        2 => match r.u8()? {
            0 => Record::Hold(false),
            1 => Record::Hold(true),
            t => return Err(format!("bad hold flag {t}")),
        },
        3 => Record::Schedule {
            attempts: r.u32()?,
            next_attempt: r.u64()?,
        },
        4 => Record::Warned,
        t => return Err(format!("bad record kind {t}")),
    };
    if !r.at_end() {
        return Err("trailing bytes in record".into());
    }
    Ok(rec)
}

/// The records of a journal body (after the header), and the length of
/// the valid prefix. Decoding stops at the first record that is incomplete
/// or fails its checksum: that is the torn tail of an append that never
/// returned.
pub fn decode_records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(head) = bytes.get(pos..pos + 8) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_ENVELOPE {
            break;
        }
        let Some(payload) = usize::try_from(len)
            .ok()
            .and_then(|l| bytes.get(pos + 8..pos + 8 + l))
        else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(rec) = decode_payload(payload) else {
            break;
        };
        out.push(rec);
        pos += 8 + payload.len();
    }
    (out, pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Envelope {
        Envelope {
            sender: Some("a@example.org".into()),
            recipients: vec![
                Recipient::new("b@example.net"),
                Recipient {
                    address: "c@example.net".into(),
                    orcpt: Some("rfc822;C@example.net".into()),
                    notify: Some(Notify {
                        success: true,
                        failure: true,
                        delay: false,
                    }),
                    state: RecipientState::Pending,
                    journal: true,
                },
            ],
            ret: Some(Ret::Hdrs),
            envid: Some("QQ314159".into()),
            body: BodyType::EightBitMime,
            smtputf8: true,
            client_ip: "2001:db8::1".parse().expect("literal"),
            helo: "client.example.org".into(),
            auth_user: Some("alice".into()),
            received_at: from_micros(1_700_000_000_123_456),
            size: 1234,
            origin: Origin {
                inside: true,
                filtered: true,
            },
        }
    }

    #[test]
    fn envelope_round_trips() {
        let e = sample();
        assert_eq!(decode_envelope(&encode_envelope(&e)), Ok(e));
        let mut e = sample();
        e.sender = None;
        e.client_ip = "192.0.2.1".parse().expect("literal");
        e.recipients[1].notify = Some(Notify::default());
        e.origin.filtered = false;
        assert_eq!(decode_envelope(&encode_envelope(&e)), Ok(e.clone()));
        e.recipients[1].notify = None;
        e.origin = Origin::default();
        assert_eq!(decode_envelope(&encode_envelope(&e)), Ok(e));
    }

    #[test]
    fn records_round_trip_and_torn_tail_is_dropped() {
        let recs = vec![
            Record::State {
                index: 1,
                state: RecipientState::Failed("550 5.1.1 no such user".into()),
            },
            Record::Hold(true),
            Record::Schedule {
                attempts: 3,
                next_attempt: 99,
            },
            Record::Warned,
        ];
        let mut bytes: Vec<u8> = recs.iter().flat_map(encode_record).collect();
        let full = bytes.len();
        assert_eq!(decode_records(&bytes), (recs.clone(), full));
        bytes.extend_from_slice(&encode_record(&Record::Hold(false))[..5]);
        assert_eq!(decode_records(&bytes), (recs, full));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_envelope(&bytes);
            let _ = decode_records(&bytes);
            if bytes.len() >= 32 {
                let _ = Trailer::decode(&bytes[..32]);
            }
        }

        #[test]
        fn truncated_envelopes_fail(cut in 0usize..200) {
            let bytes = encode_envelope(&sample());
            prop_assume!(cut < bytes.len());
            prop_assert!(decode_envelope(&bytes[..cut]).is_err());
        }
    }
}
