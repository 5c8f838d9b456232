//! Disclaimers, MIME-aware: the text goes into the message's body text —
//! a single text part, both parts of a `multipart/alternative`, the first
//! body of a `multipart/mixed` or `related` — never into attachments, in
//! the part's own transfer encoding. Everything else stays byte-identical.
//! Signed and encrypted messages are left alone: changing them would break
//! the signature or could not be read.

use mail_parser::{ContentType, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use mailgw_plan::Position;

use super::mime;

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The message with the disclaimer.
    Changed(Vec<u8>),
    /// The message is left as it is, for this reason.
    Unchanged(Skip),
}

/// Why a message gets no disclaimer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// It is signed (S/MIME, PGP): a change would break the signature.
    Signed,
    /// It is encrypted: there is no text to add to.
    Encrypted,
    /// It has no text body (only attachments).
    NoTextPart,
    /// It cannot be parsed as a message.
    Malformed,
}

/// Adds `text` at `position` to the body text of `message`.
pub fn apply(message: &[u8], text: &str, position: Position) -> Applied {
    let Some(parsed) = MessageParser::default().parse(message) else {
        return Applied::Unchanged(Skip::Malformed);
    };
    let targets = match targets(&parsed) {
        Ok(t) if t.is_empty() => return Applied::Unchanged(Skip::NoTextPart),
        Ok(t) => t,
        Err(skip) => return Applied::Unchanged(skip),
    };
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for index in targets {
        let Some(part) = parsed.parts.get(index) else {
            continue;
        };
        let (html, decoded) = match &part.body {
            PartType::Text(t) => (false, t.as_ref()),
            PartType::Html(t) => (true, t.as_ref()),
            _ => continue,
        };
        if decoded.contains("-----BEGIN PGP SIGNED MESSAGE-----") {
            return Applied::Unchanged(Skip::Signed);
        }
        if decoded.contains("-----BEGIN PGP MESSAGE-----") {
            return Applied::Unchanged(Skip::Encrypted);
        }
        let new_text = if html {
            add_html(decoded, text, position)
        } else {
            add_plain(decoded, text, position)
        };
        match edit(message, part, &new_text, index == 0) {
            Some(mut e) => edits.append(&mut e),
            None => return Applied::Unchanged(Skip::Malformed),
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = message.to_vec();
    for (start, end, bytes) in edits {
        if start > end || end > out.len() {
            return Applied::Unchanged(Skip::Malformed);
        }
        out.splice(start..end, bytes);
    }
    Applied::Changed(out)
}

/// The parts that get the text, or why none does.
fn targets(message: &Message<'_>) -> Result<Vec<usize>, Skip> {
    let mut index = 0;
    // Into the first body of mixed/related containers.
    for _ in 0..32 {
        let part = message.parts.get(index).ok_or(Skip::Malformed)?;
        let (ctype, subtype) = kind(part.content_type());
        match (ctype.as_str(), subtype.as_str()) {
            ("multipart", "signed") => return Err(Skip::Signed),
            ("multipart", "encrypted") => return Err(Skip::Encrypted),
            ("application", "pkcs7-mime" | "x-pkcs7-mime") => {
                let signed = part
                    .content_type()
                    .and_then(|c| c.attribute("smime-type"))
                    .is_some_and(|t| t.eq_ignore_ascii_case("signed-data"));
                return Err(if signed {
                    Skip::Signed
                } else {
                    Skip::Encrypted
                });
            }
            _ => {}
        }
        match &part.body {
            PartType::Text(_) | PartType::Html(_) if !is_attachment(part) => {
                return Ok(vec![index])
            }
            PartType::Multipart(children) if subtype == "alternative" => {
                let mut out = Vec::new();
                for want in [false, true] {
                    let found = children.iter().map(|&c| c as usize).find(|&c| {
                        message.parts.get(c).is_some_and(|p| {
                            !is_attachment(p)
                                && match &p.body {
                                    PartType::Text(_) => !want,
                                    PartType::Html(_) => want,
                                    _ => false,
                                }
                        })
                    });
                    out.extend(found);
                }
                return Ok(out);
            }
            PartType::Multipart(children) => match children.first() {
                Some(&first) => index = first as usize,
                None => return Ok(Vec::new()),
            },
            _ => return Ok(Vec::new()),
        }
    }
    Ok(Vec::new())
}

fn kind(ct: Option<&ContentType<'_>>) -> (String, String) {
    match ct {
        Some(c) => (
            c.ctype().to_ascii_lowercase(),
            c.subtype().unwrap_or_default().to_ascii_lowercase(),
        ),
        None => ("text".into(), "plain".into()),
    }
}

fn is_attachment(part: &MessagePart<'_>) -> bool {
    part.content_disposition()
        .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
        || part.attachment_name().is_some()
}

fn add_plain(body: &str, text: &str, position: Position) -> String {
    let body = body.replace("\r\n", "\n").replace('\n', "\r\n");
    let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
    match position {
        Position::Append => format!("{}\r\n\r\n{text}\r\n", body.trim_end_matches(['\r', '\n'])),
        Position::Prepend => format!("{text}\r\n\r\n{body}"),
    }
}

fn add_html(body: &str, text: &str, position: Position) -> String {
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\n' => escaped.push_str("<br>"),
            '\r' => {}
            c => escaped.push(c),
        }
    }
    let block = format!("<p>{escaped}</p>");
    let lower = body.to_ascii_lowercase();
    match position {
        Position::Append => match lower.rfind("</body") {
            Some(at) => format!("{}{block}\r\n{}", &body[..at], &body[at..]),
            None => format!("{body}\r\n{block}\r\n"),
        },
        Position::Prepend => {
            let after_tag = lower
                .find("<body")
                .and_then(|at| lower[at..].find('>').map(|end| at + end + 1));
            match after_tag {
                Some(at) => format!("{}\r\n{block}{}", &body[..at], &body[at..]),
                None => format!("{block}\r\n{body}"),
            }
        }
    }
}

/// The byte edits that replace `part`'s body with `text` in the part's
/// transfer encoding, and its header's `Content-Type` charset and
/// `Content-Transfer-Encoding` when they must change. `root`: the part is
/// the whole message.
fn edit(
    message: &[u8],
    part: &MessagePart<'_>,
    text: &str,
    root: bool,
) -> Option<Vec<(usize, usize, Vec<u8>)>> {
    let header = (part.offset_header as usize, part.offset_body as usize);
    let body = (part.offset_body as usize, part.offset_end as usize);
    let old_body = message.get(body.0..body.1)?;
    let charset = part
        .content_type()
        .and_then(|c| c.attribute("charset"))
        .map(str::to_ascii_lowercase);
    let utf8_label = matches!(charset.as_deref(), Some("utf-8" | "utf8"));
    let new_charset = !utf8_label && !text.is_ascii();
    let cte = part
        .content_transfer_encoding()
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let (encoded, new_cte) = match cte.as_str() {
        "base64" => (base64(text.as_bytes()), None),
        "quoted-printable" => (quoted_printable(text), None),
        "8bit" | "binary" => (text.as_bytes().to_vec(), None),
        _ if text.is_ascii() => (text.as_bytes().to_vec(), None),
        _ => (quoted_printable(text), Some("quoted-printable")),
    };
    let mut encoded = encoded;
    // A part inside a multipart ends before the CRLF of the delimiter; the
    // whole message's body ends with its own line end.
    if root && old_body.ends_with(b"\n") && !encoded.ends_with(b"\r\n") {
        encoded.extend_from_slice(b"\r\n");
    }
    if !root {
        while encoded.ends_with(b"\r\n") {
            encoded.truncate(encoded.len() - 2);
        }
    }
    let mut edits = vec![(body.0, body.1, encoded)];
    if new_charset || new_cte.is_some() {
        let old_header = message.get(header.0..header.1)?;
        let content_type = new_charset.then(|| content_type_utf8(part.content_type()));
        let rewritten = rewrite_header(old_header, content_type.as_deref(), new_cte);
        edits.push((header.0, header.1, rewritten));
    }
    Some(edits)
}

/// `Content-Type:` of the part, with `charset="utf-8"` and its other
/// parameters kept.
fn content_type_utf8(ct: Option<&ContentType<'_>>) -> String {
    let (ctype, subtype) = kind(ct);
    let mut line = format!("Content-Type: {ctype}/{subtype}; charset=\"utf-8\"");
    if let Some(attributes) = ct.and_then(|c| c.attributes()) {
        for a in attributes {
            if !a.name.eq_ignore_ascii_case("charset") {
                line.push_str(&format!(
                    ";\r\n\t{}=\"{}\"",
                    a.name,
                    a.value.replace(['\\', '"'], "")
                ));
            }
        }
    }
    line.push_str("\r\n");
    line
}

/// The header with the `Content-Type` (when `content_type` is given) and
/// `Content-Transfer-Encoding` (when `cte` is given) fields replaced; the
/// other fields stay as they are, in order.
fn rewrite_header(header: &[u8], content_type: Option<&str>, cte: Option<&str>) -> Vec<u8> {
    let text = String::from_utf8_lossy(header);
    let mut out = String::with_capacity(text.len() + 64);
    let mut dropping = false;
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    // The empty line that ends the header.
    let end = match lines.last() {
        Some(l) if l.trim().is_empty() => lines.pop(),
        _ => None,
    };
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if !dropping {
                out.push_str(line);
            }
            continue;
        }
        let name = line.split(':').next().unwrap_or("").trim();
        dropping = (content_type.is_some() && name.eq_ignore_ascii_case("content-type"))
            || (cte.is_some() && name.eq_ignore_ascii_case("content-transfer-encoding"));
        if !dropping {
            out.push_str(line);
        }
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str("\r\n");
    }
    if let Some(ct) = content_type {
        out.push_str(ct);
    }
    if let Some(cte) = cte {
        out.push_str(&format!("Content-Transfer-Encoding: {cte}\r\n"));
    }
    out.push_str(end.unwrap_or("\r\n"));
    mime::crlf(out.as_bytes())
}

/// Base64 in lines of 76 characters (RFC 2045 6.8).
fn base64(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 38 + 4);
    for (n, chunk) in bytes.chunks(3).enumerate() {
        if n > 0 && n % 19 == 0 {
            out.extend_from_slice(b"\r\n");
        }
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let sym = |shift: u32| ALPHABET[((v >> shift) & 63) as usize];
        out.push(sym(18));
        out.push(sym(12));
        out.push(if chunk.len() > 1 { sym(6) } else { b'=' });
        out.push(if chunk.len() > 2 { sym(0) } else { b'=' });
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Quoted-printable (RFC 2045 6.7): line ends kept, lines soft-broken
/// before 76 characters, trailing blanks encoded.
fn quoted_printable(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8);
    let normalized = text.replace("\r\n", "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let bytes = line.as_bytes();
        let mut width = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let plain = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let len = if plain { 1 } else { 3 };
            if width + len > 75 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            if plain {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            width += len;
        }
        if i + 1 < count {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use mail_parser::MessageParser;

    use super::*;

    const TEXT: &str = "This message is confidential.";

    fn changed(message: &[u8], text: &str, position: Position) -> Vec<u8> {
        match apply(message, text, position) {
            Applied::Changed(m) => m,
            Applied::Unchanged(why) => panic!("unchanged: {why:?}"),
        }
    }

    fn body_texts(message: &[u8]) -> Vec<String> {
        let parsed = MessageParser::default().parse(message).expect("parses");
        parsed
            .parts
            .iter()
            .filter_map(|p| p.text_contents().map(str::to_owned))
            .collect()
    }

    #[test]
    fn a_plain_message_gets_the_text_after_its_body_and_keeps_its_header() {
        let m = b"From: a@example.test\r\nSubject: hi\r\n\r\nHello Bob,\r\nsee you.\r\n";
        let out = changed(m, TEXT, Position::Append);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "From: a@example.test\r\nSubject: hi\r\n\r\nHello Bob,\r\nsee you.\r\n\r\nThis message is confidential.\r\n"
        );
        let out = changed(m, "[External]", Position::Prepend);
        assert!(out.ends_with(b"\r\n\r\n[External]\r\n\r\nHello Bob,\r\nsee you.\r\n"));
    }

    #[test]
    fn a_non_ascii_text_in_a_7bit_part_switches_it_to_quoted_printable_utf8() {
        let m = b"Subject: hi\r\nContent-Type: text/plain; format=flowed\r\n\r\nHello\r\n";
        let out = changed(
            m,
            "Vertraulich \u{2013} n\u{fc}r f\u{fc}r Sie.",
            Position::Append,
        );
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable\r\n"),
            "{text}"
        );
        assert!(text.contains("charset=\"utf-8\""), "{text}");
        assert!(text.contains("format=\"flowed\""), "{text}");
        assert!(text.contains("n=C3=BCr"), "{text}");
        assert_eq!(text.matches("Content-Type:").count(), 1);
        assert!(body_texts(&out)[0].contains("Vertraulich \u{2013} n\u{fc}r f\u{fc}r Sie."));
    }

    #[test]
    fn quoted_printable_and_base64_parts_stay_in_their_encoding() {
        let qp = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n";
        let out = changed(qp, TEXT, Position::Append);
        assert!(String::from_utf8_lossy(&out).contains("Gr=C3=BC=C3=9Fe"));
        assert_eq!(body_texts(&out)[0], format!("Grüße\r\n\r\n{TEXT}\r\n"));

        let b64 = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29ybGQ=\r\n";
        let out = changed(b64, TEXT, Position::Append);
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains(TEXT), "still base64: {text}");
        assert_eq!(
            body_texts(&out)[0],
            format!("Hello world\r\n\r\n{TEXT}\r\n")
        );
        assert!(text.lines().all(|l| l.len() <= 76));
    }

    #[test]
    fn alternative_gets_it_in_both_and_attachments_stay_byte_identical() {
        let attachment = "--m\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n";
        let m = format!(
            "Subject: s\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\n\
             Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\n\
             Content-Type: text/plain\r\n\r\nplain body\r\n--a\r\nContent-Type: text/html\r\n\r\n\
             <html><BODY class=\"x\">html body</Body></html>\r\n--a--\r\n\r\n{attachment}--m--\r\n"
        );
        let out = changed(m.as_bytes(), "A & B <legal>", Position::Append);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("plain body\r\n\r\nA & B <legal>"), "{text}");
        assert!(
            text.contains("html body<p>A &amp; B &lt;legal&gt;</p>\r\n</Body>"),
            "{text}"
        );
        assert!(text.contains(attachment), "attachment untouched");
        assert!(text.starts_with("Subject: s\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n"));
        let prepended = changed(m.as_bytes(), "[External]", Position::Prepend);
        let text = String::from_utf8_lossy(&prepended);
        assert!(
            text.contains("<BODY class=\"x\">\r\n<p>[External]</p>html body"),
            "{text}"
        );
        assert!(text.contains("[External]\r\n\r\nplain body"), "{text}");
    }

    #[test]
    fn html_without_a_body_tag_and_latin1_parts() {
        let m = b"Content-Type: text/html\r\n\r\n<b>hi</b>\r\n";
        let out = changed(m, TEXT, Position::Append);
        assert!(
            String::from_utf8_lossy(&out).ends_with(&format!("<b>hi</b>\r\n\r\n<p>{TEXT}</p>\r\n"))
        );

        let latin1 = b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nh\xe9llo\r\n";
        let out = changed(latin1, TEXT, Position::Append);
        let text = String::from_utf8(out.clone()).expect("now utf-8");
        assert!(text.contains("charset=\"utf-8\""), "{text}");
        assert!(text.contains("h\u{e9}llo\r\n\r\nThis message"), "{text}");
        assert_eq!(body_texts(&out)[0], format!("h\u{e9}llo\r\n\r\n{TEXT}\r\n"));
    }

    #[test]
    fn signed_encrypted_and_attachment_only_messages_are_left_alone() {
        let signed = b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=\"s\"\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\nhi\r\n--s--\r\n";
        assert_eq!(
            apply(signed, TEXT, Position::Append),
            Applied::Unchanged(Skip::Signed)
        );
        let smime = b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\r\nMIAGCSqG\r\n";
        assert_eq!(
            apply(smime, TEXT, Position::Append),
            Applied::Unchanged(Skip::Encrypted)
        );
        let pgp = b"Subject: x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n";
        assert_eq!(
            apply(pgp, TEXT, Position::Append),
            Applied::Unchanged(Skip::Encrypted)
        );
        let clear =
            b"Subject: x\r\n\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nhi\r\n";
        assert_eq!(
            apply(clear, TEXT, Position::Append),
            Applied::Unchanged(Skip::Signed)
        );
        let only = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n";
        assert_eq!(
            apply(only, TEXT, Position::Append),
            Applied::Unchanged(Skip::NoTextPart)
        );
    }

    #[test]
    fn encoders_round_trip() {
        let text = "a line with trailing space \r\n=equals= and \u{fc}mlauts ".repeat(5);
        let qp = quoted_printable(&text);
        assert!(String::from_utf8_lossy(&qp).lines().all(|l| l.len() <= 76));
        let m = [b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".as_slice(), &qp].concat();
        assert_eq!(body_texts(&m)[0], text);
        assert_eq!(base64(b"Man"), b"TWFu\r\n");
        assert_eq!(base64(b"Ma"), b"TWE=\r\n");
        assert_eq!(base64(b"M"), b"TQ==\r\n");
    }
}
