//! Writing multipart bodies (RFC 2046 5.1) around parts we built.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use super::header::next_sequence;

/// One body part: its header lines (each ending in CRLF, without the empty
/// line) and its body.
pub(crate) struct Part<'a> {
    /// Header fields, CRLF-terminated.
    pub header: Vec<u8>,
    /// The body, already in its transfer encoding.
    pub body: Cow<'a, [u8]>,
}

/// A boundary that occurs in none of `parts`. It starts with `=_`, which no
/// quoted-printable or base64 text contains; the rest comes from the time
/// and a counter, and a collision (a hostile original quoting it) makes us
/// try the next one.
pub(crate) fn boundary(now: SystemTime, parts: &[Part<'_>]) -> String {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    loop {
        let candidate = format!("=_mailgw_{nanos:x}_{:x}", next_sequence());
        let needle = candidate.as_bytes();
        let taken = parts.iter().any(|p| {
            p.header.windows(needle.len()).any(|w| w == needle)
                || p.body.windows(needle.len()).any(|w| w == needle)
        });
        if !taken {
            return candidate;
        }
    }
}

/// Appends the multipart body: a preamble, each part after its delimiter,
/// the close delimiter.
pub(crate) fn write_multipart(out: &mut Vec<u8>, boundary: &str, parts: &[Part<'_>]) {
    out.extend_from_slice(b"This is a multi-part message in MIME format.\r\n");
    for part in parts {
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&part.header);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&part.body);
    }
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
}

/// A text/plain part holding `text`: `us-ascii` as it is when it can be,
/// else `utf-8` in quoted-printable. `text` lines end in CRLF.
pub(crate) fn text_part(text: &str, description: &str) -> Part<'static> {
    let mut header = Vec::new();
    if text.is_ascii() && super::encoding::longest_line(text.as_bytes()) <= 998 {
        header.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n");
        header.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n");
        super::header::push_field(&mut header, "Content-Description", description.as_bytes());
        return Part {
            header,
            body: Cow::Owned(text.as_bytes().to_vec()),
        };
    }
    header.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    header.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n");
    super::header::push_field(&mut header, "Content-Description", description.as_bytes());
    Part {
        header,
        body: Cow::Owned(super::encoding::qp_encode(text.as_bytes())),
    }
}
