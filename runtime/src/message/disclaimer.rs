//! MIME-aware disclaimers: text added to the first text body of a message,
//! to both bodies of a `multipart/alternative`, never to an attachment, and
//! never to a signed or encrypted message.
//!
//! The message is rebuilt by splicing: only the changed parts' bodies (and,
//! where the transfer encoding or the charset had to change, their
//! `Content-Transfer-Encoding` and `Content-Type` fields) differ; every
//! other byte — the message header, other parts, boundaries, preamble and
//! epilogue — is kept.

mod edit;

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders};
pub use mailgw_plan::Position;

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The message with the text added.
    Changed(Vec<u8>),
    /// The message must go as it is, for this reason.
    Unchanged(Skip),
}

/// Why a message was left as it was. The caller logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Signed (`multipart/signed`, S/MIME signed-data, PGP armor): a change
    /// would break the signature.
    Signed,
    /// Encrypted (`multipart/encrypted`, S/MIME enveloped-data, PGP armor):
    /// the text cannot be read.
    Encrypted,
    /// No text/plain or text/html body outside the attachments.
    NoTextPart,
    /// The MIME structure or a body's transfer encoding could not be read.
    Malformed,
    /// A text body in a charset that cannot take the text and that the
    /// gateway cannot convert to UTF-8.
    Charset,
}

/// Adds `text` (UTF-8, lines separated by LF or CRLF) to `message` at
/// `position`.
pub fn apply(message: &[u8], text: &str, position: Position) -> Applied {
    match try_apply(message, text, position) {
        Ok(changed) => Applied::Changed(changed),
        Err(skip) => Applied::Unchanged(skip),
    }
}

fn try_apply(message: &[u8], text: &str, position: Position) -> Result<Vec<u8>, Skip> {
    let parsed = MessageParser::default()
        .parse(message)
        .ok_or(Skip::Malformed)?;
    let mut targets = Vec::new();
    find(&parsed, 0, &mut targets)?;
    if targets.is_empty() {
        return Err(Skip::NoTextPart);
    }
    let mut edits = Vec::with_capacity(targets.len());
    for id in targets {
        let part = parsed.parts.get(id).ok_or(Skip::Malformed)?;
        let html = kind(part) == Kind::Html;
        let bytes = edit::edit(message, part, id == 0, html, text, position)?;
        edits.push((part.offset_header as usize, part.offset_end as usize, bytes));
    }
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(message.len() + text.len() * 2 + 256);
    let mut copied = 0;
    for (start, end, bytes) in edits {
        if start < copied || end > message.len() {
            return Err(Skip::Malformed);
        }
        out.extend_from_slice(&message[copied..start]);
        out.extend_from_slice(&bytes);
        copied = end;
    }
    out.extend_from_slice(&message[copied..]);
    Ok(out)
}

/// What a part is, as far as disclaimers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Signed,
    Encrypted,
    Alternative,
    Multipart,
    Plain,
    Html,
    Other,
}

fn kind(part: &MessagePart<'_>) -> Kind {
    let Some(ct) = part.content_type() else {
        return Kind::Plain;
    };
    let is = |a: &str, b: &str| {
        ct.ctype().eq_ignore_ascii_case(a)
            && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case(b))
    };
    let smime = is("application", "pkcs7-mime") || is("application", "x-pkcs7-mime");
    if is("multipart", "signed") {
        Kind::Signed
    } else if is("multipart", "encrypted") {
        Kind::Encrypted
    } else if smime {
        let signed = ct
            .attribute("smime-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("signed-data"));
        if signed {
            Kind::Signed
        } else {
            Kind::Encrypted
        }
    } else if is("multipart", "alternative") {
        Kind::Alternative
    } else if ct.ctype().eq_ignore_ascii_case("multipart") {
        Kind::Multipart
    } else if is("text", "plain") {
        Kind::Plain
    } else if is("text", "html") {
        Kind::Html
    } else {
        Kind::Other
    }
}

/// Marked as an attachment, or carrying a file name.
fn is_attachment(part: &MessagePart<'_>) -> bool {
    let disposition = part.content_disposition();
    disposition.is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
        || disposition.is_some_and(|d| d.attribute("filename").is_some())
        || part
            .content_type()
            .is_some_and(|c| c.attribute("name").is_some())
}

/// Collects the parts under `id` that get the text: the part itself if it
/// is a text body; both bodies of an alternative; the first text body found
/// in any other multipart. A signed or encrypted part met on the way stops
/// the walk.
fn find(message: &Message<'_>, id: usize, out: &mut Vec<usize>) -> Result<(), Skip> {
    let part = message.parts.get(id).ok_or(Skip::Malformed)?;
    let children = || part.sub_parts().ok_or(Skip::Malformed);
    match kind(part) {
        Kind::Signed => Err(Skip::Signed),
        Kind::Encrypted => Err(Skip::Encrypted),
        Kind::Plain | Kind::Html => {
            if !is_attachment(part) && !part.is_multipart() {
                out.push(id);
            }
            Ok(())
        }
        Kind::Alternative => {
            let mut seen = Vec::new();
            for &child in children()? {
                let mut found = Vec::new();
                find(message, child as usize, &mut found)?;
                for f in found {
                    let k = message.parts.get(f).map(kind);
                    if !seen.contains(&k) {
                        seen.push(k);
                        out.push(f);
                    }
                }
            }
            Ok(())
        }
        Kind::Multipart => {
            for &child in children()? {
                let before = out.len();
                find(message, child as usize, out)?;
                if out.len() > before {
                    break;
                }
            }
            Ok(())
        }
        Kind::Other => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Confidential: for the addressee only.";

    fn changed(message: &[u8], text: &str, position: Position) -> Vec<u8> {
        match apply(message, text, position) {
            Applied::Changed(out) => out,
            Applied::Unchanged(skip) => panic!("unchanged: {skip:?}"),
        }
    }

    /// The decoded text of part `n`, as mail-parser sees it.
    fn text_of(message: &[u8], n: usize) -> String {
        let parsed = MessageParser::default().parse(message).expect("parses");
        let part = &parsed.parts[n];
        part.text_contents().expect("text part").to_string()
    }

    #[test]
    fn plain_7bit_append_and_prepend() {
        let m = b"From: a@example.com\r\nSubject: hi\r\n\r\nHello Bob.\r\n";
        let out = changed(m, TEXT, Position::Append);
        assert_eq!(
            out,
            b"From: a@example.com\r\nSubject: hi\r\n\r\nHello Bob.\r\n\r\nConfidential: for the addressee only.\r\n"
        );
        let out = changed(m, "Line one\nLine two", Position::Prepend);
        assert!(out.ends_with(b"\r\n\r\nLine one\r\nLine two\r\n\r\nHello Bob.\r\n"));
    }

    #[test]
    fn non_ascii_into_7bit_switches_to_quoted_printable() {
        let m = b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nHello.\r\n";
        let out = changed(
            m,
            "Vertraulich \u{2013} nur f\u{fc}r Sie.",
            Position::Append,
        );
        let parsed = MessageParser::default().parse(&out).expect("parses");
        assert_eq!(
            parsed.parts[0].content_transfer_encoding(),
            Some("quoted-printable")
        );
        let ct = parsed.content_type().expect("content type");
        assert_eq!(ct.attribute("charset"), Some("utf-8"));
        assert!(out.starts_with(b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"));
        assert_eq!(
            text_of(&out, 0),
            "Hello.\r\n\r\nVertraulich \u{2013} nur f\u{fc}r Sie.\r\n"
        );
        assert!(out.is_ascii());
    }

    #[test]
    fn a_message_without_mime_gets_the_fields_it_needs() {
        let m = b"Subject: x\r\n\r\nHi\r\n";
        let out = changed(m, "\u{e9}", Position::Append);
        assert_eq!(
            out,
            b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHi\r\n\r\n=C3=A9\r\n"
        );
    }

    #[test]
    fn quoted_printable_stays_quoted_printable() {
        let m = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 au lait, a long line that goes on and on and on and on and on an=\r\nd on.\r\n";
        let out = changed(m, "Gr\u{fc}\u{df}e", Position::Append);
        assert!(out.starts_with(b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"));
        assert!(out.is_ascii());
        assert_eq!(
            text_of(&out, 0),
            "Caf\u{e9} au lait, a long line that goes on and on and on and on and on and on.\r\n\r\nGr\u{fc}\u{df}e\r\n"
        );
    }

    #[test]
    fn base64_stays_base64_in_short_lines() {
        let body = "Line one\r\nLine two\r\n".repeat(20);
        let mut encoded = crate::message::encoding::base64_encode(body.as_bytes());
        encoded.extend_from_slice(b"\r\n");
        let mut m =
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                .to_vec();
        m.extend_from_slice(&encoded);
        let out = changed(&m, TEXT, Position::Append);
        assert!(out.ends_with(b"\r\n"));
        let body_start = crate::message::headers_of(&out).len();
        assert!(out[body_start..]
            .split(|&b| b == b'\n')
            .all(|l| l.len() <= 77));
        assert_eq!(text_of(&out, 0), format!("{}\r\n{TEXT}\r\n", body));
    }

    const ALTERNATIVE: &[u8] = b"From: a@example.com\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
        \r\n\
        preamble\r\n\
        --alt\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        \r\n\
        Hello.\r\n\
        --alt\r\n\
        Content-Type: text/html; charset=utf-8\r\n\
        \r\n\
        <html><BODY class=\"x\"><p>Hello.</p></Body></html>\r\n\
        --alt--\r\n\
        epilogue\r\n";

    #[test]
    fn alternative_gets_it_in_both_bodies() {
        let out = changed(ALTERNATIVE, "Terms & <conditions>", Position::Append);
        assert_eq!(text_of(&out, 1), "Hello.\r\n\r\nTerms & <conditions>\r\n");
        assert_eq!(
            text_of(&out, 2),
            "<html><BODY class=\"x\"><p>Hello.</p><div class=\"mailgw-disclaimer\"><p>Terms &amp; &lt;conditions&gt;</p></div></Body></html>"
        );
        assert!(out.starts_with(&ALTERNATIVE[..ALTERNATIVE.len() - 200]));
        assert!(out.ends_with(b"--alt--\r\nepilogue\r\n"));

        let out = changed(ALTERNATIVE, "Terms", Position::Prepend);
        assert_eq!(
            text_of(&out, 2),
            "<html><BODY class=\"x\"><div class=\"mailgw-disclaimer\"><p>Terms</p></div><p>Hello.</p></Body></html>"
        );
    }

    #[test]
    fn html_without_body_tag() {
        let m = b"Content-Type: text/html\r\n\r\n<p>Hi</p>\r\n";
        let out = changed(m, "X", Position::Append);
        assert!(
            out.ends_with(b"\r\n\r\n<p>Hi</p><div class=\"mailgw-disclaimer\"><p>X</p></div>\r\n")
        );
        let out = changed(m, "X", Position::Prepend);
        assert!(
            out.ends_with(b"\r\n\r\n<div class=\"mailgw-disclaimer\"><p>X</p></div><p>Hi</p>\r\n")
        );
    }

    #[test]
    fn mixed_changes_the_first_text_only_and_keeps_attachments() {
        let attachment = "--mix\r\n\
            Content-Type: text/plain; name=\"notes.txt\"\r\n\
            Content-Disposition: attachment; filename=\"notes.txt\"\r\n\
            \r\n\
            attached notes\r\n\
            --mix\r\n\
            Content-Type: application/pdf\r\n\
            Content-Transfer-Encoding: base64\r\n\
            \r\n\
            JVBERi0xLjQK\r\n\
            --mix--\r\n";
        let m = format!(
            "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=mix\r\n\r\n\
             --mix\r\n{}--mix\r\nContent-Type: text/plain\r\n\r\nBody.\r\n{attachment}",
            String::from_utf8_lossy(&ALTERNATIVE[21..])
                .replace("--alt--\r\nepilogue\r\n", "--alt--\r\n")
        );
        let out = changed(m.as_bytes(), TEXT, Position::Append);
        assert!(
            out.ends_with(attachment.as_bytes()),
            "attachments byte for byte"
        );
        assert_eq!(text_of(&out, 2), format!("Hello.\r\n\r\n{TEXT}\r\n"));
        assert_eq!(text_of(&out, 4), "Body.");
        let added = out.len() - m.len();
        assert_eq!(
            out.windows(TEXT.len())
                .filter(|w| *w == TEXT.as_bytes())
                .count(),
            2,
            "{added}"
        );
    }

    #[test]
    fn text_attachment_alone_is_no_text_part() {
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(
            apply(m, TEXT, Position::Append),
            Applied::Unchanged(Skip::NoTextPart)
        );
        let m = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBO\r\n";
        assert_eq!(
            apply(m, TEXT, Position::Append),
            Applied::Unchanged(Skip::NoTextPart)
        );
    }

    #[test]
    fn latin1_part_stays_latin1() {
        let m = b"Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9\r\n";
        let out = changed(m, "Gr\u{fc}\u{df}e", Position::Append);
        assert_eq!(
            out,
            b"Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9\r\n\r\nGr\xfc\xdfe\r\n"
        );
    }

    #[test]
    fn other_charsets_are_converted_to_utf8() {
        // "Привет" in KOI8-R; the disclaimer is German.
        let m = b"Content-Type: text/plain; charset=\"koi8-r\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xf0\xd2\xc9\xd7\xc5\xd4\r\n";
        let out = changed(m, "Gr\u{fc}\u{df}e", Position::Append);
        assert!(out.starts_with(b"Content-Type: text/plain; charset=utf-8\r\n"));
        assert_eq!(
            text_of(&out, 0),
            "\u{41f}\u{440}\u{438}\u{432}\u{435}\u{442}\r\n\r\nGr\u{fc}\u{df}e\r\n"
        );
        let unknown = b"Content-Type: text/plain; charset=x-unheard-of\r\n\r\nhi\r\n";
        assert_eq!(
            apply(unknown, TEXT, Position::Append),
            Applied::Unchanged(Skip::Charset)
        );
    }

    #[test]
    fn signed_and_encrypted_are_left_alone() {
        let cases: [(&[u8], Skip); 5] = [
            (b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=s\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\nx\r\n--s--\r\n", Skip::Signed),
            (b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=e\r\n\r\n--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--e--\r\n", Skip::Encrypted),
            (b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAG\r\n", Skip::Encrypted),
            (b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\nMIAG\r\n", Skip::Signed),
            (b"Subject: x\r\n\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nhi\r\n", Skip::Signed),
        ];
        for (m, skip) in cases {
            assert_eq!(apply(m, TEXT, Position::Append), Applied::Unchanged(skip));
        }
        let armored = b"Subject: x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEM\r\n";
        assert_eq!(
            apply(armored, TEXT, Position::Append),
            Applied::Unchanged(Skip::Encrypted)
        );
    }

    #[test]
    fn bad_transfer_encoding_is_malformed() {
        let m =
            b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n";
        assert_eq!(
            apply(m, TEXT, Position::Append),
            Applied::Unchanged(Skip::Malformed)
        );
    }
}
