//! Content transfer encodings (RFC 2045) and line ends.

use std::borrow::Cow;

/// Longest encoded line, without its CRLF (RFC 2045 6.7 and 6.8).
const ENCODED_LINE: usize = 76;

/// `bytes` in base64, lines of 76 characters joined by CRLF, no final CRLF.
pub(crate) fn base64_encode(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 38 + 4);
    let mut line = 0;
    for chunk in bytes.chunks(3) {
        if line == ENCODED_LINE {
            out.extend_from_slice(b"\r\n");
            line = 0;
        }
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
        line += 4;
    }
    out
}

/// `bytes` in quoted-printable. Line ends (CRLF or a bare LF) become CRLF
/// hard breaks; lines are cut with soft breaks so that none is longer than
/// 76 characters; white space before a line end is encoded.
pub(crate) fn qp_encode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut line = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.extend_from_slice(b"\r\n");
            line = 0;
            i += if b == b'\r' { 2 } else { 1 };
            continue;
        }
        let at_line_end = match bytes.get(i + 1) {
            None | Some(b'\n') => true,
            Some(b'\r') => bytes.get(i + 2) == Some(&b'\n'),
            _ => false,
        };
        let literal =
            matches!(b, b'!'..=b'<' | b'>'..=b'~') || (matches!(b, b' ' | b'\t') && !at_line_end);
        let width = if literal { 1 } else { 3 };
        // A soft break takes one column ("="); the last token of a line
        // may use the full width.
        let limit = if at_line_end {
            ENCODED_LINE
        } else {
            ENCODED_LINE - 1
        };
        if line + width > limit {
            out.extend_from_slice(b"=\r\n");
            line = 0;
        }
        if literal {
            out.push(b);
        } else {
            out.extend_from_slice(format!("={b:02X}").as_bytes());
        }
        line += width;
        i += 1;
    }
    out
}

/// `bytes` with every bare LF made CRLF; borrowed when nothing changes.
pub(crate) fn to_crlf(bytes: &[u8]) -> Cow<'_, [u8]> {
    let bare = bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'));
    if !bare {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    Cow::Owned(out)
}

/// The length of the longest line of `bytes`, line end excluded.
pub(crate) fn longest_line(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).len())
        .max()
        .unwrap_or(0)
}

/// The transfer encoding under which `bytes` may travel unchanged inside a
/// MIME entity: `7bit`, `8bit` or, with lines over 998 octets, `binary`.
pub(crate) fn identity_encoding(bytes: &[u8]) -> &'static str {
    if longest_line(bytes) > 998 || bytes.contains(&0) {
        "binary"
    } else if bytes.is_ascii() {
        "7bit"
    } else {
        "8bit"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode};

    #[test]
    fn base64_round_trips_with_short_lines() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let enc = base64_encode(&data);
        assert!(enc.split(|&b| b == b'\n').all(|l| l.len() <= 77));
        assert_eq!(base64_decode(&enc).as_deref(), Some(&data[..]));
        assert_eq!(base64_encode(b"ab"), b"YWI=");
        assert_eq!(base64_encode(b"a"), b"YQ==");
    }

    #[test]
    fn quoted_printable_round_trips_with_short_lines() {
        let text = format!("caf\u{e9} = {} \r\ntab\t\r\nend", "long ".repeat(40));
        let enc = qp_encode(text.as_bytes());
        assert!(enc.is_ascii());
        assert!(
            longest_line(&enc) <= 76,
            "{}",
            String::from_utf8_lossy(&enc)
        );
        assert!(enc.starts_with(b"caf=C3=A9 =3D "));
        assert!(!enc.windows(3).any(|w| w == b" \r\n" || w == b"\t\r\n"));
        assert_eq!(
            quoted_printable_decode(&enc).as_deref(),
            Some(text.as_bytes())
        );
    }

    #[test]
    fn bare_line_feeds_become_crlf() {
        assert_eq!(&*to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert!(matches!(to_crlf(b"a\r\nb"), Cow::Borrowed(_)));
    }
}
