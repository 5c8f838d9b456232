//! Envelope journal reports, in the manner of Exchange's: a message to the
//! journal address that says who really sent and received a message (the
//! envelope, Bcc recipients included) and carries the message unchanged.

use std::borrow::Cow;
use std::time::SystemTime;

use super::encoding::identity_encoding;
use super::header::{field_value, headers_of, message_id, push_field, rfc5322_date};
use super::mime::{boundary, text_part, write_multipart, Part};

/// What a journal report says.
#[derive(Debug, Clone)]
pub struct JournalReport<'a> {
    /// The postmaster address: the report's `From:`.
    pub from: &'a str,
    /// The journal address: the report's `To:`.
    pub to: &'a str,
    /// The envelope sender; `None` for the null sender `<>`.
    pub sender: Option<&'a str>,
    /// Every envelope recipient, after group expansion.
    pub recipients: &'a [String],
    /// The gateway's queue ID of the message.
    pub queue_id: &'a str,
    /// When the gateway received the message.
    pub received_at: SystemTime,
    /// The client that sent it, like `192.0.2.1 (helo.example)`.
    pub client: &'a str,
    /// The message, attached byte for byte.
    pub original: &'a [u8],
}

/// The report as a complete `multipart/mixed` message with CRLF line ends:
/// a text part with the envelope, then the original as `message/rfc822`.
/// `now` dates it; `message_id_host` is the right side of its Message-ID.
pub fn build(report: &JournalReport<'_>, now: SystemTime, message_id_host: &str) -> Vec<u8> {
    let header = headers_of(report.original);
    let subject = field_value(header, "Subject").filter(|s| !s.is_empty());
    let subject = subject.as_deref().unwrap_or(b"(no subject)");
    let original_id = field_value(header, "Message-ID").unwrap_or_default();

    let mut text = Vec::new();
    let mut line = |name: &str, value: &[u8]| {
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value);
        text.extend_from_slice(b"\r\n");
    };
    line("Sender", report.sender.unwrap_or("<>").as_bytes());
    line("Subject", subject);
    line("Message-Id", &original_id);
    line("Queue-Id", report.queue_id.as_bytes());
    line("Received-At", rfc5322_date(report.received_at).as_bytes());
    line("Client", report.client.as_bytes());
    for recipient in report.recipients {
        line("Recipient", recipient.as_bytes());
    }
    // Header values were put on one line; the peer's bytes may still not be
    // UTF-8, and are shown as well as they go.
    let text = String::from_utf8_lossy(&text);

    let mut attached = b"Content-Type: message/rfc822\r\n".to_vec();
    attached.extend_from_slice(b"Content-Disposition: attachment\r\n");
    let encoding = identity_encoding(report.original);
    if encoding != "7bit" {
        push_field(
            &mut attached,
            "Content-Transfer-Encoding",
            encoding.as_bytes(),
        );
    }
    let parts = [
        text_part(&text, "Envelope"),
        Part {
            header: attached,
            body: Cow::Borrowed(report.original),
        },
    ];
    let boundary = boundary(now, &parts);

    let mut out = Vec::with_capacity(report.original.len() + text.len() + 1024);
    push_field(&mut out, "From", format!("<{}>", report.from).as_bytes());
    push_field(&mut out, "To", format!("<{}>", report.to).as_bytes());
    let mut journal_subject = b"Journal: ".to_vec();
    journal_subject.extend_from_slice(subject);
    push_field(&mut out, "Subject", &journal_subject);
    push_field(&mut out, "Date", rfc5322_date(now).as_bytes());
    push_field(
        &mut out,
        "Message-ID",
        message_id(now, message_id_host).as_bytes(),
    );
    out.extend_from_slice(b"Auto-Submitted: auto-generated\r\n");
    out.extend_from_slice(b"X-Mailgw-Journal-Report: 1\r\n");
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    push_field(
        &mut out,
        "Content-Type",
        format!("multipart/mixed; boundary=\"{boundary}\"").as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    write_multipart(&mut out, &boundary, &parts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders};
    use std::time::{Duration, UNIX_EPOCH};

    const ORIGINAL: &[u8] = b"From: alice@example.com\r\n\
        To: bob@example.net\r\n\
        Cc: carol@example.net\r\n\
        Subject: =?utf-8?q?Quarterly_r=C3=A9sults?=\r\n\
        Message-ID: <q3@example.com>\r\n\
        \r\n\
        Numbers attached.\r\n";

    fn report<'a>(recipients: &'a [String], original: &'a [u8]) -> JournalReport<'a> {
        JournalReport {
            from: "postmaster@gw.example.com",
            to: "journal@archive.example.com",
            sender: Some("alice@example.com"),
            recipients,
            queue_id: "Q77",
            received_at: UNIX_EPOCH + Duration::from_secs(1_751_360_000),
            client: "192.0.2.1 (mail.example.com)",
            original,
        }
    }

    #[test]
    fn lists_every_envelope_recipient_and_keeps_the_original() {
        let rcpts = vec![
            "bob@example.net".to_string(),
            "carol@example.net".to_string(),
            "hidden-bcc@example.org".to_string(),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(1_751_360_703);
        let out = build(&report(&rcpts, ORIGINAL), now, "gw.example.com");
        let msg = MessageParser::default().parse(&out).expect("parses");
        assert_eq!(
            msg.header_raw("Subject").map(str::trim),
            Some("Journal: =?utf-8?q?Quarterly_r=C3=A9sults?=")
        );
        assert_eq!(
            msg.header_raw("X-Mailgw-Journal-Report").map(str::trim),
            Some("1")
        );
        assert_eq!(
            msg.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-generated")
        );
        let ct = msg.content_type().expect("content type");
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("mixed")));

        let root = msg.parts[0].sub_parts().expect("multipart").to_vec();
        assert_eq!(root.len(), 2);
        let text = msg.parts[root[0] as usize].text_contents().expect("text");
        assert_eq!(
            text,
            "Sender: alice@example.com\r\n\
             Subject: =?utf-8?q?Quarterly_r=C3=A9sults?=\r\n\
             Message-Id: <q3@example.com>\r\n\
             Queue-Id: Q77\r\n\
             Received-At: Tue, 01 Jul 2025 08:53:20 +0000\r\n\
             Client: 192.0.2.1 (mail.example.com)\r\n\
             Recipient: bob@example.net\r\n\
             Recipient: carol@example.net\r\n\
             Recipient: hidden-bcc@example.org\r\n"
        );
        let attached = &msg.parts[root[1] as usize];
        assert_eq!(
            attached.content_type().map(|c| (c.ctype(), c.subtype())),
            Some(("message", Some("rfc822")))
        );
        let (start, end) = (attached.offset_body as usize, attached.offset_end as usize);
        assert_eq!(&out[start..end], ORIGINAL);
    }

    #[test]
    fn null_sender_and_no_subject() {
        let rcpts = vec!["bob@example.net".to_string()];
        let original = b"From: a@b\r\n\r\nx\r\n";
        let mut r = report(&rcpts, original);
        r.sender = None;
        let out = build(&r, UNIX_EPOCH, "h");
        let msg = MessageParser::default().parse(&out).expect("parses");
        assert_eq!(msg.subject(), Some("Journal: (no subject)"));
        let root = msg.parts[0].sub_parts().expect("multipart").to_vec();
        let text = msg.parts[root[0] as usize].text_contents().expect("text");
        assert!(text.starts_with("Sender: <>\r\nSubject: (no subject)\r\nMessage-Id: \r\n"));
    }

    #[test]
    fn eight_bit_originals_are_labelled() {
        let rcpts = vec!["bob@example.net".to_string()];
        let original = "Subject: \u{e9}t\u{e9}\r\n\r\ncaf\u{e9}\r\n".as_bytes();
        let out = build(&report(&rcpts, original), UNIX_EPOCH, "h");
        let msg = MessageParser::default().parse(&out).expect("parses");
        let root = msg.parts[0].sub_parts().expect("multipart").to_vec();
        let attached = &msg.parts[root[1] as usize];
        assert_eq!(attached.content_transfer_encoding(), Some("8bit"));
        assert_eq!(
            &out[attached.offset_body as usize..attached.offset_end as usize],
            original
        );
        let text = msg.parts[root[0] as usize].text_contents().expect("text");
        assert!(text.contains("Subject: \u{e9}t\u{e9}\r\n"));
    }
}
