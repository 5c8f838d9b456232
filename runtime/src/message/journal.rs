//! Envelope journal reports: who a message was really for — the envelope
//! sender and every envelope recipient, Bcc and group members included —
//! with the message attached unchanged.

use std::time::SystemTime;

use super::mime::{self, field};

/// A report to build.
#[derive(Debug, Clone)]
pub struct JournalReport<'a> {
    /// The postmaster address (`From`).
    pub from: &'a str,
    /// The journal address (`To`).
    pub to: &'a str,
    /// The envelope sender; `None` for the null sender.
    pub sender: Option<&'a str>,
    /// Every envelope recipient.
    pub recipients: &'a [String],
    /// The original's queue id.
    pub queue_id: &'a str,
    /// When the original arrived.
    pub received_at: SystemTime,
    /// The client it came from, `192.0.2.1 (client.example)`.
    pub client: &'a str,
    /// The original message.
    pub original: &'a [u8],
}

/// The report as a complete message with CRLF line ends.
pub fn build(report: &JournalReport<'_>, now: SystemTime, message_id_host: &str) -> Vec<u8> {
    let original = mime::crlf(report.original);
    let boundary = mime::boundary(now, &original);
    let subject = mime::header_value(&original, "subject").unwrap_or_else(|| "(no subject)".into());
    let message_id = mime::header_value(&original, "message-id").unwrap_or_default();
    let sender = report
        .sender
        .map_or_else(|| "<>".to_owned(), |s| format!("<{s}>"));
    let mut out = String::new();
    field(&mut out, "From", &format!("Journal <{}>", report.from));
    field(&mut out, "To", &format!("<{}>", report.to));
    field(&mut out, "Subject", &format!("Journal: {subject}"));
    field(&mut out, "Date", &mime::date(now));
    field(
        &mut out,
        "Message-ID",
        &mime::message_id(now, message_id_host),
    );
    field(&mut out, "Auto-Submitted", "auto-generated");
    field(&mut out, "X-Mailgw-Journal-Report", "1");
    field(&mut out, "MIME-Version", "1.0");
    out.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    out.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    field(&mut out, "Sender", &sender);
    field(&mut out, "Subject", &subject);
    field(&mut out, "Message-Id", &message_id);
    field(&mut out, "Queue-Id", report.queue_id);
    field(&mut out, "Received", &mime::date(report.received_at));
    field(&mut out, "Client", report.client);
    for r in report.recipients {
        field(&mut out, "Recipient", &format!("<{r}>"));
    }
    out.push_str(&format!("\r\n--{boundary}\r\n"));
    out.push_str("Content-Type: message/rfc822\r\n");
    out.push_str("Content-Disposition: attachment\r\n");
    let mut bytes = out.into_bytes();
    if original.iter().any(|b| !b.is_ascii()) {
        bytes.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(&original);
    if !original.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use mail_parser::{MessageParser, MimeHeaders};

    use super::*;

    #[test]
    fn the_report_lists_every_envelope_recipient_and_attaches_the_original() {
        let original: &[u8] = b"From: alice@example.test\r\nTo: bob@example.test\r\n\
            Subject: quarterly figures\r\nMessage-ID: <q1@client.test>\r\n\r\nnumbers\r\n";
        let recipients = vec![
            "bob@example.test".to_owned(),
            "hidden-bcc@example.test".to_owned(),
        ];
        let report = JournalReport {
            from: "postmaster@example.test",
            to: "journal@example.test",
            sender: Some("alice@example.test"),
            recipients: &recipients,
            queue_id: "0001-abc",
            received_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            client: "192.0.2.1 (client.test)",
            original,
        };
        let bytes = build(
            &report,
            UNIX_EPOCH + Duration::from_secs(1_700_000_001),
            "gw.test",
        );
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        for line in [
            "Subject: Journal: quarterly figures\r\n",
            "X-Mailgw-Journal-Report: 1\r\n",
            "Sender: <alice@example.test>\r\n",
            "Message-Id: <q1@client.test>\r\n",
            "Recipient: <bob@example.test>\r\n",
            "Recipient: <hidden-bcc@example.test>\r\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let message = MessageParser::default().parse(&bytes).expect("parses");
        let attached = message
            .parts
            .iter()
            .find(|p| p.content_type().is_some_and(|c| c.ctype() == "message"))
            .expect("the original is attached");
        let inner = &bytes[attached.offset_body as usize..attached.offset_end as usize];
        assert!(inner.starts_with(original), "byte-exact original");
    }

    #[test]
    fn null_sender_and_no_subject() {
        let report = JournalReport {
            from: "postmaster@example.test",
            to: "journal@example.test",
            sender: None,
            recipients: &[],
            queue_id: "q",
            received_at: UNIX_EPOCH,
            client: "127.0.0.1 (gw)",
            original: b"From: x@y.test\n\nbare lf\n",
        };
        let text = String::from_utf8(build(&report, UNIX_EPOCH, "gw.test")).expect("utf-8");
        assert!(text.contains("Subject: Journal: (no subject)\r\n"));
        assert!(text.contains("Sender: <>\r\n"));
        assert!(text.contains("bare lf\r\n"));
    }
}
