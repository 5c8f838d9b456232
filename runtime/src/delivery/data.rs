//! The message as it goes after `DATA`: dot-stuffed, ended by `CRLF.CRLF`.
//!
//! A `.` is doubled at the start of the message and after every CR and
//! every LF, not only after CRLF: a peer that takes a bare LF or a bare CR
//! for a line end (many do) still removes exactly the dots added here, and
//! no byte sequence in the message can end the data early on any peer
//! (SMTP smuggling). The bytes are otherwise sent as they are; a message
//! that does not end with CRLF gets one before the final dot.

/// The dot-stuffed message followed by the end-of-data line.
pub(crate) fn stuff(message: &[u8]) -> Vec<u8> {
    let dots = message
        .iter()
        .zip(std::iter::once(&b'\n').chain(message))
        .filter(|(&b, &prev)| b == b'.' && (prev == b'\n' || prev == b'\r'))
        .count();
    let mut out = Vec::with_capacity(message.len() + dots + 5);
    let mut prev = b'\n';
    for &b in message {
        if b == b'.' && (prev == b'\n' || prev == b'\r') {
            out.push(b'.');
        }
        out.push(b);
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
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

    /// Undoes the stuffing as a lenient peer would: a line ends at CR, LF
    /// or CRLF, a leading dot is removed, the data ends at a line `.`.
    fn unstuff_lenient(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at_line_start = true;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            if at_line_start && b == b'.' {
                if data[i + 1..].starts_with(b"\r\n") {
                    return out;
                }
                i += 1;
                at_line_start = false;
                continue;
            }
            out.push(b);
            at_line_start = b == b'\n' || b == b'\r';
            i += 1;
        }
        panic!("no end of data in {data:?}");
    }

    #[test]
    fn dots_after_any_line_end_are_doubled() {
        assert_eq!(stuff(b".a\r\n"), b"..a\r\n.\r\n");
        assert_eq!(stuff(b"a\r\n.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuff(b"a\n.\nb\r.c"), b"a\n..\nb\r..c\r\n.\r\n");
        assert_eq!(stuff(b"a.b"), b"a.b\r\n.\r\n");
        assert_eq!(stuff(b""), b"\r\n.\r\n");
    }

    #[test]
    fn the_end_sequence_only_ends_and_lenient_unstuffing_restores() {
        for message in [
            &b"Subject: x\r\n\r\n.\r\n..\r\n.x\r\n"[..],
            b"a\n.\r\nb\r.\r\n",
            b"\r\n.\n.\r.",
            b"x\r\n.",
        ] {
            let sent = stuff(message);
            let end = sent.windows(5).position(|w| w == b"\r\n.\r\n");
            assert_eq!(end, Some(sent.len() - 5), "{message:?}");
            let mut expected = message.to_vec();
            if !expected.ends_with(b"\r\n") {
                expected.extend_from_slice(b"\r\n");
            }
            assert_eq!(unstuff_lenient(&sent), expected, "{message:?}");
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
