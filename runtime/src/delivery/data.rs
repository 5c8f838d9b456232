//! The message as it goes after `DATA`: lines ended by CRLF, dot-stuffed,
//! ended by `CRLF.CRLF`.
//!
//! A bare LF or a bare CR is sent as CRLF: RFC 5321 2.3.8 allows CR and LF
//! only together, as the line end, and peers disagree about the bare ones —
//! one takes `LF.LF` for the end of the data, another a dot after a bare LF
//! for text (SMTP smuggling). Normalized, every peer sees the same lines,
//! a `.` at the start of each is doubled, and nothing in the message can
//! end the data early. A last line without a line end gets one.

/// The message with CRLF line ends, dot-stuffed, followed by the
/// end-of-data line.
pub(crate) fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut rest = message;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            out.push(b'.');
        }
        let Some(end) = memchr::memchr2(b'\r', b'\n', rest) else {
            out.extend_from_slice(rest);
            out.extend_from_slice(b"\r\n");
            break;
        };
        out.extend_from_slice(&rest[..end]);
        out.extend_from_slice(b"\r\n");
        let crlf = rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n');
        rest = &rest[end + 1 + usize::from(crlf)..];
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Whether any byte has the high bit set (needs `8BITMIME`).
pub(crate) fn is_8bit(message: &[u8]) -> bool {
    !message.is_ascii()
}

/// Whether the header section (up to the first empty line) holds non-ASCII
/// bytes, which only an `SMTPUTF8` peer may receive (RFC 6532).
pub(crate) fn header_is_8bit(message: &[u8]) -> bool {
    let end = [&b"\r\n\r\n"[..], b"\n\n"]
        .iter()
        .filter_map(|sep| message.windows(sep.len()).position(|w| w == *sep))
        .min()
        .unwrap_or(message.len());
    !message[..end].is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Undoes the stuffing as RFC 5321 4.5.2 says: lines end at CRLF, a
    /// leading dot is removed, the data ends at the line `.`.
    fn unstuff(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in data.split_inclusive(|&b| b == b'\n') {
            assert!(line.ends_with(b"\r\n"), "bare LF in {data:?}");
            if line == b".\r\n" {
                return out;
            }
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        panic!("no end of data in {data:?}");
    }

    #[test]
    fn dots_at_line_starts_are_doubled_and_line_ends_are_crlf() {
        assert_eq!(stuff(b".a\r\n"), b"..a\r\n.\r\n");
        assert_eq!(stuff(b"a\r\n.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff(b"a\n.\nb\r.c"), b"a\r\n..\r\nb\r\n..c\r\n.\r\n");
        assert_eq!(stuff(b"a\r\r\n\n"), b"a\r\n\r\n\r\n.\r\n");
        assert_eq!(stuff(b"a.b"), b"a.b\r\n.\r\n");
        assert_eq!(stuff(b""), b".\r\n");
    }

    #[test]
    fn the_end_sequence_only_ends() {
        for message in [
            &b"Subject: x\r\n\r\n.\r\n..\r\n.x\r\n"[..],
            b"a\n.\r\nb\r.\r\n",
            b"\r\n.\n.\r.",
            b"x\r\n.",
            b"\n.\n",
        ] {
            let sent = stuff(message);
            let end = sent.windows(5).position(|w| w == b"\r\n.\r\n");
            assert_eq!(end, Some(sent.len() - 5), "{message:?}");
            let text = String::from_utf8_lossy(message)
                .replace("\r\n", "\n")
                .replace('\r', "\n")
                .replace('\n', "\r\n");
            let mut expected = text.into_bytes();
            if !expected.is_empty() && !expected.ends_with(b"\r\n") {
                expected.extend_from_slice(b"\r\n");
            }
            assert_eq!(unstuff(&sent), expected, "{message:?}");
        }
    }

    /// The message as its lines, each ended by CRLF: what the peer must
    /// read back whatever the message holds.
    fn lines(message: &[u8]) -> Vec<u8> {
        let text = message
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .replace('\n', "\r\n");
        let mut expected: Vec<u8> = text.chars().map(|c| c as u8).collect();
        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        expected
    }

    proptest::proptest! {
        #[test]
        fn any_message_reads_back_as_its_lines(
            message in proptest::collection::vec(
                proptest::sample::select(vec![b'.', b'\r', b'\n', b'a', 0xe9]),
                0..64,
            )
        ) {
            let sent = stuff(&message);
            proptest::prop_assert!(sent.ends_with(b".\r\n"));
            let end = sent.windows(5).position(|w| w == b"\r\n.\r\n");
            proptest::prop_assert!(end.is_none_or(|e| e == sent.len() - 5));
            proptest::prop_assert_eq!(unstuff(&sent), lines(&message));
        }
    }

    #[test]
    fn eight_bit() {
        assert!(!is_8bit(b"plain"));
        assert!(is_8bit("Grüße".as_bytes()));
        assert!(!header_is_8bit("Subject: x\r\n\r\nGrüße".as_bytes()));
        assert!(header_is_8bit("Subject: Grüße\r\n\r\nx".as_bytes()));
        assert!(!header_is_8bit("Subject: x\n\nGrüße".as_bytes()));
    }
}
