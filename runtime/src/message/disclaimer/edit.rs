//! Adding the text to one text part: decode its transfer encoding and
//! charset, insert, encode again, and fix its header where the encoding or
//! the charset had to change.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{MessagePart, MimeHeaders};
use mailgw_plan::Position;

use super::Skip;
use crate::message::encoding::{base64_encode, longest_line, qp_encode};
use crate::message::header::{field_value, fields, trim_eol};

/// A part's declared transfer encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cte {
    SevenBit,
    EightBit,
    Binary,
    QuotedPrintable,
    Base64,
}

/// How the added text is written into the part's charset.
enum Charset {
    /// UTF-8 (or ASCII, relabelled `utf-8` when `relabel`).
    Utf8 { relabel: bool },
    /// ISO-8859-1 or windows-1252: every character of the text fits.
    Latin1,
}

/// The new bytes of `message[part.offset_header..part.offset_end]`: the
/// part's header and body with the text added. `root`: the part is the
/// message itself, whose header is the message header.
pub(super) fn edit(
    message: &[u8],
    part: &MessagePart<'_>,
    root: bool,
    html: bool,
    text: &str,
    position: Position,
) -> Result<Vec<u8>, Skip> {
    let range = |a: u32, b: u32| message.get(a as usize..b as usize).ok_or(Skip::Malformed);
    let header = range(part.offset_header, part.offset_body)?;
    let raw = range(part.offset_body, part.offset_end)?;

    let cte = match field_value(header, "Content-Transfer-Encoding") {
        None => Cte::SevenBit,
        Some(v) => match v.to_ascii_lowercase().as_slice() {
            b"7bit" | b"" => Cte::SevenBit,
            b"8bit" => Cte::EightBit,
            b"binary" => Cte::Binary,
            b"quoted-printable" => Cte::QuotedPrintable,
            b"base64" => Cte::Base64,
            _ => return Err(Skip::Malformed),
        },
    };
    let decoded = match cte {
        Cte::QuotedPrintable => quoted_printable_decode(raw).ok_or(Skip::Malformed)?,
        Cte::Base64 => base64_decode(raw).ok_or(Skip::Malformed)?,
        _ => raw.to_vec(),
    };
    if contains(&decoded, b"-----BEGIN PGP MESSAGE-----") {
        return Err(Skip::Encrypted);
    }
    if contains(&decoded, b"-----BEGIN PGP SIGNED MESSAGE-----") {
        return Err(Skip::Signed);
    }

    let label = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(str::to_ascii_lowercase);
    let eol: &[u8] = if contains(&decoded, b"\r\n") || !decoded.contains(&b'\n') {
        b"\r\n"
    } else {
        b"\n"
    };
    let snippet = snippet(text, html, eol);
    let (body, charset) = match label.as_deref() {
        None | Some("us-ascii" | "ascii") => (
            decoded,
            Charset::Utf8 {
                relabel: !snippet.is_ascii(),
            },
        ),
        Some("utf-8" | "utf8") => (decoded, Charset::Utf8 { relabel: false }),
        Some("iso-8859-1" | "iso8859-1" | "latin1" | "windows-1252" | "cp1252")
            if snippet.chars().all(fits_latin1) =>
        {
            (decoded, Charset::Latin1)
        }
        Some(other) => {
            let decode = charset_decoder(other.as_bytes()).ok_or(Skip::Charset)?;
            (
                decode(&decoded).into_bytes(),
                Charset::Utf8 { relabel: true },
            )
        }
    };
    let snippet: Vec<u8> = match charset {
        Charset::Utf8 { .. } => snippet.into_bytes(),
        // `fits_latin1` held for every character.
        Charset::Latin1 => snippet.chars().map(|c| c as u32 as u8).collect(),
    };
    let body = if html {
        insert_html(&body, &snippet, position)
    } else {
        insert_plain(&body, &snippet, position, eol)
    };

    let (encoded, new_cte) = match cte {
        Cte::Base64 => {
            let mut out = base64_encode(&body);
            out.extend_from_slice(&raw[trim_newlines(raw).len()..]);
            (out, None)
        }
        Cte::QuotedPrintable => (qp_encode(&body), None),
        Cte::SevenBit if body.is_ascii() && longest_line(&body) <= 998 => (body, None),
        Cte::EightBit | Cte::Binary if longest_line(&body) <= 998 || cte == Cte::Binary => {
            (body, None)
        }
        Cte::SevenBit | Cte::EightBit | Cte::Binary => (qp_encode(&body), Some("quoted-printable")),
    };
    let relabel = matches!(charset, Charset::Utf8 { relabel: true });
    let mut out = rewrite_header(header, new_cte, relabel, root);
    out.extend_from_slice(&encoded);
    Ok(out)
}

fn fits_latin1(c: char) -> bool {
    (c as u32) < 0x80 || (0xA0..=0xFF).contains(&(c as u32))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `bytes` without its trailing CR and LF.
fn trim_newlines(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The text as it goes in: for HTML escaped, in a `<div>`, line ends as
/// `<br>`; for plain text with the body's line ends.
fn snippet(text: &str, html: bool, eol: &[u8]) -> String {
    let eol = if eol == b"\r\n" { "\r\n" } else { "\n" };
    let lines: Vec<&str> = text
        .trim_end_matches(['\r', '\n'])
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if !html {
        return lines.join(eol);
    }
    let mut out = String::from("<div class=\"mailgw-disclaimer\"><p>");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str("<br>");
            out.push_str(eol);
        }
        for c in line.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
    }
    out.push_str("</p></div>");
    out
}

/// Plain text: a blank line between the body and the text.
fn insert_plain(body: &[u8], snippet: &[u8], position: Position, eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + snippet.len() + 8);
    match position {
        Position::Append => {
            let kept = trim_newlines(body);
            out.extend_from_slice(kept);
            if !kept.is_empty() {
                out.extend_from_slice(eol);
                out.extend_from_slice(eol);
            }
            out.extend_from_slice(snippet);
            out.extend_from_slice(eol);
        }
        Position::Prepend => {
            out.extend_from_slice(snippet);
            out.extend_from_slice(eol);
            out.extend_from_slice(eol);
            out.extend_from_slice(body);
        }
    }
    out
}

/// HTML: before `</body>` or after `<body ...>`; without them at the end or
/// the start.
fn insert_html(body: &[u8], snippet: &[u8], position: Position) -> Vec<u8> {
    let lower = body.to_ascii_lowercase();
    let at = match position {
        Position::Append => lower
            .windows(6)
            .rposition(|w| w == b"</body")
            .unwrap_or_else(|| trim_newlines(body).len()),
        Position::Prepend => body_tag_end(&lower).unwrap_or(0),
    };
    let mut out = Vec::with_capacity(body.len() + snippet.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(snippet);
    out.extend_from_slice(&body[at..]);
    out
}

/// Just past the `>` of the first `<body` tag, in lower-cased HTML.
fn body_tag_end(lower: &[u8]) -> Option<usize> {
    let start = lower.windows(6).enumerate().find_map(|(i, w)| {
        let next = *w.get(5)?;
        (&w[..5] == b"<body" && (next == b'>' || next == b'/' || next.is_ascii_whitespace()))
            .then_some(i)
    })?;
    let close = lower[start..].iter().position(|&b| b == b'>')?;
    Some(start + close + 1)
}

/// The part's header with a new transfer encoding and/or `charset=utf-8`;
/// every other field byte for byte as it was.
fn rewrite_header(header: &[u8], cte: Option<&str>, utf8: bool, root: bool) -> Vec<u8> {
    if cte.is_none() && !utf8 {
        return header.to_vec();
    }
    let list = fields(header);
    let has = |name: &str| {
        list.iter()
            .any(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
    };
    let mut out = Vec::with_capacity(header.len() + 64);
    let mut copied = 0;
    for f in &list {
        let replace_cte = cte.filter(|_| f.name.eq_ignore_ascii_case(b"Content-Transfer-Encoding"));
        let replace_ct = utf8 && f.name.eq_ignore_ascii_case(b"Content-Type");
        if !(replace_cte.is_some() || replace_ct) {
            continue;
        }
        out.extend_from_slice(&header[copied..f.start]);
        let field = &header[f.start..f.end];
        if let Some(cte) = replace_cte {
            out.extend_from_slice(format!("Content-Transfer-Encoding: {cte}\r\n").as_bytes());
        } else {
            out.extend_from_slice(&with_utf8_charset(field));
        }
        copied = f.end;
    }
    let blank = header.len() - blank_line_len(header);
    out.extend_from_slice(&header[copied.min(blank)..blank]);
    if root && !has("MIME-Version") {
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    if utf8 && !has("Content-Type") {
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    }
    if let Some(cte) = cte.filter(|_| !has("Content-Transfer-Encoding")) {
        out.extend_from_slice(format!("Content-Transfer-Encoding: {cte}\r\n").as_bytes());
    }
    out.extend_from_slice(&header[blank..]);
    out
}

/// The length of the empty line that ends `header` (0 when it has none).
fn blank_line_len(header: &[u8]) -> usize {
    if header == b"\r\n" || header.ends_with(b"\r\n\r\n") || header.ends_with(b"\n\r\n") {
        2
    } else if header == b"\n" || header.ends_with(b"\n\n") {
        1
    } else {
        0
    }
}

/// A `Content-Type` field with its charset parameter set to `utf-8`.
fn with_utf8_charset(field: &[u8]) -> Vec<u8> {
    let lower = field.to_ascii_lowercase();
    let found = lower.windows(7).enumerate().find_map(|(i, w)| {
        if w != b"charset" {
            return None;
        }
        let before = lower[..i].iter().rev().find(|b| !b.is_ascii_whitespace());
        if before != Some(&b';') {
            return None;
        }
        let mut j = i + 7;
        while lower.get(j).is_some_and(|b| b.is_ascii_whitespace()) {
            j += 1;
        }
        (lower.get(j) == Some(&b'=')).then_some(j + 1)
    });
    let mut out = Vec::with_capacity(field.len() + 16);
    match found {
        Some(mut start) => {
            while field.get(start).is_some_and(|b| *b == b' ' || *b == b'\t') {
                start += 1;
            }
            let end = if field.get(start) == Some(&b'"') {
                field[start + 1..]
                    .iter()
                    .position(|&b| b == b'"')
                    .map_or(field.len(), |p| start + p + 2)
            } else {
                field[start..]
                    .iter()
                    .position(|&b| b == b';' || b.is_ascii_whitespace())
                    .map_or(field.len(), |p| start + p)
            };
            out.extend_from_slice(&field[..start]);
            out.extend_from_slice(b"utf-8");
            out.extend_from_slice(&field[end..]);
        }
        None => {
            let body = trim_eol(field);
            out.extend_from_slice(body);
            out.extend_from_slice(b"; charset=utf-8");
            out.extend_from_slice(&field[body.len()..]);
        }
    }
    out
}
