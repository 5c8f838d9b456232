//! Message content: the `DATA` decoder and the checks every message gets.
//!
//! [`DataDecoder`] recognises only `CRLF . CRLF` as the end of the message,
//! and only when the preceding line ended in a real CRLF: `LF . LF`,
//! `CR . CR`, `LF . CRLF` and friends are content, never the end. It removes
//! the stuffed dot of lines that start with one.
//!
//! [`Content`] receives the unstuffed octets (from `DATA` or `BDAT`) and
//! stores at most the size limit; beyond it octets are counted and dropped,
//! so memory is bounded whatever the client sends. It also records the first
//! fault: a bare CR, a bare LF or a NUL anywhere in the message, or a line
//! over the limit. **A message with a fault is refused as a whole at its end
//! (`550 5.6.0`, Postfix-style), never normalised and passed on**, so that a
//! downstream server that reads a bare LF as a line end cannot be smuggled a
//! second message. It counts `Received:` header fields for the hop limit.

use super::reply::{Enhanced, Reply};

/// The header field counted for the hop limit, lower case.
const RECEIVED: &[u8] = b"received:";

/// Something wrong in a message, found while it streamed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A CR not followed by LF.
    BareCr,
    /// An LF not preceded by CR.
    BareLf,
    /// A NUL octet.
    Nul,
    /// A line longer than the limit.
    LongLine,
}

/// Where the content is in the header section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Headers,
    Body,
}

/// Where the content is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinePos {
    /// In a line (possibly at its start).
    Text,
    /// Just after a CR.
    Cr,
}

/// The message content and what was learned while it streamed in.
#[derive(Debug)]
pub struct Content {
    /// What is delivered: the `Received:` header given at creation, then
    /// the client's octets up to the limit.
    message: Vec<u8>,
    /// Octets the client sent (after unstuffing).
    received: u64,
    /// Most octets the client may send.
    limit: u64,
    /// Longest line, CRLF not counted.
    max_line: usize,
    line_len: usize,
    pos: LinePos,
    section: Section,
    /// The first octets of the current line, for `Received:`.
    prefix: [u8; 9],
    hops: u32,
    fault: Option<Fault>,
}

/// Why a finished message is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A [`Fault`].
    Fault(Fault),
    /// Over the size limit.
    TooBig,
    /// More `Received:` fields than the hop limit.
    Loop,
}

impl Refused {
    /// The reply after the end of the message.
    pub fn reply(self) -> Reply {
        match self {
            Refused::Fault(Fault::BareCr | Fault::BareLf) => Reply::new(
                550,
                Enhanced(5, 6, 0),
                "Message refused: bare CR or LF; lines must end with CRLF",
            ),
            Refused::Fault(Fault::Nul) => {
                Reply::new(550, Enhanced(5, 6, 0), "Message refused: NUL octet")
            }
            Refused::Fault(Fault::LongLine) => {
                Reply::new(550, Enhanced(5, 6, 0), "Message refused: line too long")
            }
            Refused::TooBig => Reply::new(
                552,
                Enhanced(5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ),
            Refused::Loop => Reply::new(
                554,
                Enhanced(5, 4, 6),
                "Too many hops: routing loop detected",
            ),
        }
    }
}

impl Content {
    /// Empty content that will start with `header` (the `Received:` line).
    pub fn new(header: Vec<u8>, limit: u64, max_line: usize) -> Content {
        Content {
            message: header,
            received: 0,
            limit,
            max_line,
            line_len: 0,
            pos: LinePos::Text,
            section: Section::Headers,
            prefix: [0; 9],
            hops: 0,
            fault: None,
        }
    }

    /// Octets received from the client so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    fn fault(&mut self, fault: Fault) {
        self.fault.get_or_insert(fault);
    }

    /// Adds octets (already unstuffed).
    pub fn push(&mut self, bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.received);
        let keep = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        self.message.extend_from_slice(&bytes[..keep]);
        self.received = self
            .received
            .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            // Most octets are ordinary text inside a line: take a run of
            // them at once rather than one by one.
            if self.pos == LinePos::Text {
                let run = memchr::memchr3(b'\r', b'\n', 0, &bytes[i..]).unwrap_or(bytes.len() - i);
                if run > 0 {
                    self.text(&bytes[i..i + run]);
                    i += run;
                    continue;
                }
            }
            self.scan(b);
            i += 1;
        }
    }

    /// A run of octets inside a line, none of them CR, LF or NUL.
    fn text(&mut self, run: &[u8]) {
        if let Some(slots) = self.prefix.get_mut(self.line_len..) {
            for (slot, b) in slots.iter_mut().zip(run) {
                *slot = b.to_ascii_lowercase();
            }
        }
        self.line_len += run.len();
        if self.line_len > self.max_line {
            self.fault(Fault::LongLine);
        }
    }

    fn scan(&mut self, b: u8) {
        if self.pos == LinePos::Cr {
            self.pos = LinePos::Text;
            if b == b'\n' {
                self.end_line();
                return;
            }
            self.fault(Fault::BareCr);
        }
        match b {
            b'\r' => self.pos = LinePos::Cr,
            b'\n' => {
                self.fault(Fault::BareLf);
                self.end_line();
            }
            _ => {
                if b == 0 {
                    self.fault(Fault::Nul);
                }
                if let Some(slot) = self.prefix.get_mut(self.line_len) {
                    *slot = b.to_ascii_lowercase();
                }
                self.line_len += 1;
                if self.line_len > self.max_line {
                    self.fault(Fault::LongLine);
                }
            }
        }
    }

    fn end_line(&mut self) {
        if self.section == Section::Headers {
            if self.line_len == 0 {
                self.section = Section::Body;
            } else if self.line_len >= RECEIVED.len() && self.prefix == RECEIVED {
                self.hops = self.hops.saturating_add(1);
            }
        }
        self.line_len = 0;
    }

    /// Ends the message: the delivered octets, or why it is refused. A
    /// message may hold at most `max_hops` `Received:` fields.
    pub fn finish(mut self, max_hops: u32) -> Result<Vec<u8>, Refused> {
        if self.pos == LinePos::Cr {
            self.fault(Fault::BareCr);
        }
        if let Some(fault) = self.fault {
            return Err(Refused::Fault(fault));
        }
        if self.received > self.limit {
            return Err(Refused::TooBig);
        }
        if self.hops > max_hops {
            return Err(Refused::Loop);
        }
        Ok(self.message)
    }
}

/// The `DATA` decoder's position relative to dots and line ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// At the start of a line that followed a real CRLF.
    LineStart,
    /// `.` at a line start.
    Dot,
    /// `.` CR at a line start.
    DotCr,
    /// Inside a line.
    Text,
    /// CR inside a line.
    Cr,
}

/// Whether the decoder saw the end of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More data is needed.
    More,
    /// `CRLF . CRLF` was seen; the input after it is commands again.
    End,
}

/// Decodes `DATA` input: finds the end and removes dot-stuffing.
#[derive(Debug)]
pub struct DataDecoder {
    state: Scan,
}

impl Default for DataDecoder {
    fn default() -> Self {
        // The CRLF of the DATA command line precedes the first line.
        DataDecoder {
            state: Scan::LineStart,
        }
    }
}

impl DataDecoder {
    /// Feeds `input` into `content`; returns how many octets were used and
    /// whether the end was reached (octets after the end are not used).
    pub fn feed(&mut self, input: &[u8], content: &mut Content) -> (usize, Progress) {
        // Runs of text are passed on in one piece; `from` marks the start of
        // the run not yet passed on.
        let mut from = 0;
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                Scan::LineStart => {
                    if b == b'.' {
                        content.push(&input[from..i]);
                        self.state = Scan::Dot;
                        i += 1;
                        from = i;
                    } else {
                        self.state = Scan::Text;
                    }
                    continue;
                }
                Scan::Dot => {
                    if b == b'\r' {
                        self.state = Scan::DotCr;
                        i += 1;
                        from = i;
                    } else {
                        // A stuffed dot: dropped; `b` is text.
                        self.state = Scan::Text;
                    }
                    continue;
                }
                Scan::DotCr => {
                    if b == b'\n' {
                        return (i + 1, Progress::End);
                    }
                    // `.` CR x: the dot was stuffing, the CR is content
                    // (a bare one, which `Content` records).
                    content.push(b"\r");
                    self.state = Scan::Text;
                    continue;
                }
                Scan::Text => {
                    // Only a CR changes anything: skip to the next one.
                    match memchr::memchr(b'\r', &input[i..]) {
                        Some(k) => {
                            self.state = Scan::Cr;
                            i += k + 1;
                        }
                        None => i = input.len(),
                    }
                    continue;
                }
                Scan::Cr => {
                    self.state = match b {
                        b'\n' => Scan::LineStart,
                        b'\r' => Scan::Cr,
                        _ => Scan::Text,
                    };
                }
            }
            i += 1;
        }
        content.push(&input[from..]);
        (input.len(), Progress::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` and returns (the delivered content or refusal, the
    /// octets left after the end) — or `None` if no end was found.
    type Decoded = (Result<Vec<u8>, Refused>, Vec<u8>);

    fn decode(chunks: &[&[u8]]) -> Option<Decoded> {
        let mut decoder = DataDecoder::default();
        let mut content = Content::new(Vec::new(), 100, 20);
        for (n, chunk) in chunks.iter().enumerate() {
            let (used, progress) = decoder.feed(chunk, &mut content);
            if progress == Progress::End {
                let mut rest = chunk[used..].to_vec();
                for later in &chunks[n + 1..] {
                    rest.extend_from_slice(later);
                }
                return Some((content.finish(2), rest));
            }
        }
        None
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_unstuffs() {
        let (msg, rest) = decode(&[b"a\r\n..b\r\n.c\r\n", b".\r\nQUIT\r\n"]).expect("end");
        assert_eq!(msg, Ok(b"a\r\n.b\r\nc\r\n".to_vec()));
        assert_eq!(rest, b"QUIT\r\n");
        // The end split over every possible chunk boundary.
        let whole: &[u8] = b"x\r\n.\r\n";
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            let (msg, _) = decode(&[a, b]).expect("end");
            assert_eq!(msg, Ok(b"x\r\n".to_vec()), "cut at {cut}");
        }
        let (msg, _) = decode(&[b".\r\n"]).expect("empty message");
        assert_eq!(msg, Ok(Vec::new()));
    }

    #[test]
    fn smuggling_sequences_do_not_end_the_message() {
        for seq in [
            &b"a\n.\nb"[..],
            b"a\r.\rb",
            b"a\n.\r\nb",
            b"a\r\n.\nb",
            b"a\r\n.\rb",
            b"a\r.\r\nb",
        ] {
            assert_eq!(decode(&[seq]), None, "{seq:?}");
            let mut input = seq.to_vec();
            input.extend_from_slice(b"\r\n.\r\n");
            let (msg, rest) = decode(&[&input]).expect("real end");
            assert!(
                matches!(msg, Err(Refused::Fault(Fault::BareCr | Fault::BareLf))),
                "{seq:?}: {msg:?}"
            );
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn limits() {
        let (msg, _) = decode(&[&[b'x'; 150], b"\r\n.\r\n"]).expect("end");
        assert_eq!(msg, Err(Refused::Fault(Fault::LongLine)));
        let long: Vec<u8> = b"0123456789\r\n".repeat(20);
        let (msg, _) = decode(&[&long, b".\r\n"]).expect("end");
        assert_eq!(msg, Err(Refused::TooBig));
        let (msg, _) = decode(&[b"a\0b\r\n.\r\n"]).expect("end");
        assert_eq!(msg, Err(Refused::Fault(Fault::Nul)));
        let hops =
            b"Received: a\r\nreceived: b\r\n x\r\nRECEIVED: c\r\n\r\nReceived: body\r\n.\r\n";
        let (msg, _) = decode(&[hops]).expect("end");
        assert_eq!(msg, Err(Refused::Loop));
        let (msg, _) = decode(&[&hops[26..]]).expect("end");
        assert!(msg.is_ok());
    }

    proptest::proptest! {
        /// However the input is cut into reads, the outcome is the same as
        /// feeding it in one piece (the fast paths skip runs of text).
        #[test]
        fn chunking_never_changes_the_outcome(
            input in proptest::collection::vec(
                proptest::sample::select(b"ab.\r\n\0Rr:eivdc ".to_vec()), 0..200),
            cut in 1usize..16,
        ) {
            let mut tail = input.clone();
            tail.extend_from_slice(b"\r\n.\r\n");
            let whole = decode(&[&tail]);
            let chunks: Vec<&[u8]> = tail.chunks(cut).collect();
            proptest::prop_assert_eq!(decode(&chunks), whole);
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let mut decoder = DataDecoder::default();
        let mut content = Content::new(b"H\r\n".to_vec(), 1000, 100);
        for _ in 0..10_000 {
            decoder.feed(&b"0123456789\r\n".repeat(10), &mut content);
        }
        assert!(content.message.len() <= 1003);
        assert_eq!(content.received(), 1_200_000);
    }
}
