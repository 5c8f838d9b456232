//! Delivery status notifications: RFC 3464 reports (RFC 3461 parameters,
//! RFC 6533 for internationalized mail), from the postmaster, marked
//! auto-replied (RFC 3834).

use std::time::SystemTime;

use super::mime::{self, field};

/// What happened to a recipient (RFC 3464 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Could not be delivered.
    Failed,
    /// Not delivered yet; still being tried.
    Delayed,
    /// Delivered to the recipient's mailbox.
    Delivered,
    /// Handed to a next hop that does not report on it.
    Relayed,
    /// Delivered to a list's members.
    Expanded,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }
}

/// One recipient of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The address as delivered (`Final-Recipient: rfc822; ...`).
    pub final_recipient: String,
    /// `ORCPT` as `addr-type;address`, decoded (`Original-Recipient`).
    pub original_recipient: Option<String>,
    /// What happened.
    pub action: Action,
    /// The enhanced status code, `5.1.1`.
    pub status: String,
    /// What the peer said (`Diagnostic-Code: smtp; ...`), or why the
    /// gateway decided.
    pub diagnostic: Option<String>,
    /// The host that answered, `dns; mx.example.net`.
    pub remote_mta: Option<String>,
    /// When it was last tried.
    pub last_attempt: Option<SystemTime>,
    /// Until when it will be tried (delayed only).
    pub will_retry_until: Option<SystemTime>,
}

/// What of the original goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// The whole message.
    Full,
    /// Its header only.
    Headers,
}

/// A report to build.
#[derive(Debug, Clone)]
pub struct Dsn<'a> {
    /// The gateway's host name (`Reporting-MTA`).
    pub reporting_mta: &'a str,
    /// The postmaster address (`From`).
    pub from: &'a str,
    /// The original sender (`To`).
    pub to: &'a str,
    /// `ENVID` (`Original-Envelope-Id`).
    pub envid: Option<&'a str>,
    /// The original's queue id (`X-Mailgw-Queue-ID`).
    pub queue_id: &'a str,
    /// When the original arrived (`Arrival-Date`).
    pub arrival: SystemTime,
    /// The client it came from (`Received-From-MTA`), `dns; name ([ip])`.
    pub received_from: Option<&'a str>,
    /// The recipients reported on.
    pub recipients: &'a [DsnRecipient],
    /// The original message.
    pub original: &'a [u8],
    /// What of it goes back.
    pub returned: Returned,
    /// The original needs SMTPUTF8: `message/global-delivery-status`.
    pub smtputf8: bool,
}

/// The report as a complete message with CRLF line ends.
pub fn build(dsn: &Dsn<'_>, now: SystemTime, message_id_host: &str) -> Vec<u8> {
    let original = match dsn.returned {
        Returned::Full => mime::crlf(dsn.original),
        Returned::Headers => mime::crlf(mime::headers_of(dsn.original)),
    };
    let boundary = mime::boundary(now, &original);
    let failed = dsn.recipients.iter().any(|r| r.action == Action::Failed);
    let delayed = dsn.recipients.iter().any(|r| r.action == Action::Delayed);
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else if delayed {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };
    let mut out = String::new();
    field(
        &mut out,
        "From",
        &format!("Mail Delivery System <{}>", dsn.from),
    );
    field(&mut out, "To", &format!("<{}>", dsn.to));
    field(&mut out, "Subject", subject);
    field(&mut out, "Date", &mime::date(now));
    field(
        &mut out,
        "Message-ID",
        &mime::message_id(now, message_id_host),
    );
    field(&mut out, "Auto-Submitted", "auto-replied");
    field(&mut out, "MIME-Version", "1.0");
    out.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
    ));
    out.push_str("\r\nThis is a MIME-encapsulated delivery status notification.\r\n");

    out.push_str(&format!("\r\n--{boundary}\r\n"));
    out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    out.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    human(&mut out, dsn, failed, delayed);

    out.push_str(&format!("\r\n--{boundary}\r\n"));
    let status_type = if dsn.smtputf8 {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    out.push_str(&format!("Content-Type: {status_type}\r\n\r\n"));
    machine(&mut out, dsn);

    out.push_str(&format!("\r\n--{boundary}\r\n"));
    let original_type = match (dsn.returned, dsn.smtputf8) {
        (Returned::Full, false) => "message/rfc822",
        (Returned::Full, true) => "message/global",
        (Returned::Headers, false) => "text/rfc822-headers",
        (Returned::Headers, true) => "message/global-headers",
    };
    out.push_str(&format!("Content-Type: {original_type}\r\n"));
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

/// The part people read: what happened to each recipient and why.
fn human(out: &mut String, dsn: &Dsn<'_>, failed: bool, delayed: bool) {
    out.push_str(&format!(
        "This is the mail system at host {}.\r\n\r\n",
        mime::one_line(dsn.reporting_mta)
    ));
    if failed {
        out.push_str(
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below.\r\n",
        );
    } else if delayed {
        out.push_str(
            "Your message could not be delivered yet to one or more\r\n\
             recipients. It will be tried again; you do not need to send it\r\n\
             again. This is only a warning.\r\n",
        );
    } else {
        out.push_str("Your message was delivered to the recipients below.\r\n");
    }
    out.push_str(&format!(
        "\r\nFor further assistance, please send mail to <{}>, quoting\r\nthe queue id {}.\r\n\r\n",
        mime::one_line(dsn.from),
        mime::one_line(dsn.queue_id)
    ));
    for r in dsn.recipients {
        let why = r.diagnostic.as_deref().map(mime::one_line);
        let line = match (r.action, why) {
            (Action::Delayed, Some(why)) => format!(
                "<{}>: delayed ({}): {why}",
                mime::one_line(&r.final_recipient),
                r.status
            ),
            (Action::Failed, Some(why)) => format!(
                "<{}>: failed ({}): {why}",
                mime::one_line(&r.final_recipient),
                r.status
            ),
            (action, _) => format!(
                "<{}>: {} ({})",
                mime::one_line(&r.final_recipient),
                action.as_str(),
                r.status
            ),
        };
        out.push_str(&line);
        out.push_str("\r\n");
    }
    if delayed {
        if let Some(until) = dsn.recipients.iter().find_map(|r| r.will_retry_until) {
            out.push_str(&format!(
                "\r\nThe mail system will keep trying until {}.\r\n",
                mime::date(until)
            ));
        }
    }
}

/// The `message/delivery-status` body (RFC 3464 2.1).
fn machine(out: &mut String, dsn: &Dsn<'_>) {
    field(out, "Reporting-MTA", &format!("dns; {}", dsn.reporting_mta));
    field(out, "X-Mailgw-Queue-ID", dsn.queue_id);
    if let Some(envid) = dsn.envid {
        field(out, "Original-Envelope-Id", envid);
    }
    if let Some(from) = dsn.received_from {
        field(out, "Received-From-MTA", from);
    }
    field(out, "Arrival-Date", &mime::date(dsn.arrival));
    for r in dsn.recipients {
        out.push_str("\r\n");
        if let Some(orcpt) = &r.original_recipient {
            let value = match orcpt.split_once(';') {
                Some((kind, address)) => format!("{}; {}", kind.trim(), address.trim()),
                None => format!("rfc822; {orcpt}"),
            };
            field(out, "Original-Recipient", &value);
        }
        let kind = if dsn.smtputf8 { "utf-8" } else { "rfc822" };
        field(
            out,
            "Final-Recipient",
            &format!("{kind}; {}", r.final_recipient),
        );
        field(out, "Action", r.action.as_str());
        field(out, "Status", &r.status);
        if let Some(remote) = &r.remote_mta {
            field(out, "Remote-MTA", remote);
        }
        if let Some(diagnostic) = &r.diagnostic {
            let kind = if r.remote_mta.is_some() {
                "smtp"
            } else {
                "x-mailgw"
            };
            field(out, "Diagnostic-Code", &format!("{kind}; {diagnostic}"));
        }
        if let Some(t) = r.last_attempt {
            field(out, "Last-Attempt-Date", &mime::date(t));
        }
        if let Some(t) = r.will_retry_until {
            field(out, "Will-Retry-Until", &mime::date(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use mail_parser::{MessageParser, MimeHeaders};

    use super::*;

    const ORIGINAL: &[u8] =
        b"From: alice@example.test\r\nTo: carol@remote.test\r\nSubject: hello\r\n\r\nthe body\r\n";

    fn failed(address: &str) -> DsnRecipient {
        DsnRecipient {
            final_recipient: address.into(),
            original_recipient: Some("rfc822;list@example.test".into()),
            action: Action::Failed,
            status: "5.1.1".into(),
            diagnostic: Some("550 5.1.1 <carol@remote.test>: no such user".into()),
            remote_mta: Some("dns; mx.remote.test".into()),
            last_attempt: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_100)),
            will_retry_until: None,
        }
    }

    fn dsn<'a>(recipients: &'a [DsnRecipient], returned: Returned) -> Dsn<'a> {
        Dsn {
            reporting_mta: "gw.example.test",
            from: "postmaster@example.test",
            to: "alice@example.test",
            envid: Some("QQ314159"),
            queue_id: "0001-abc",
            arrival: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            received_from: Some("dns; client.test ([192.0.2.1])"),
            recipients,
            original: ORIGINAL,
            returned,
            smtputf8: false,
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_200)
    }

    #[test]
    fn a_failure_report_has_the_three_parts_and_every_field() {
        let recipients = [failed("carol@remote.test")];
        let bytes = build(&dsn(&recipients, Returned::Full), now(), "gw.example.test");
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        let message = MessageParser::default().parse(&bytes).expect("parses");
        assert_eq!(
            message.subject(),
            Some("Undelivered Mail Returned to Sender")
        );
        let ct = message.content_type().expect("content type");
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert_eq!(message.parts.len(), 4, "the multipart and its three parts");
        for field in [
            "Reporting-MTA: dns; gw.example.test\r\n",
            "Original-Envelope-Id: QQ314159\r\n",
            "Received-From-MTA: dns; client.test ([192.0.2.1])\r\n",
            "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n",
            "\r\n\r\nOriginal-Recipient: rfc822; list@example.test\r\n",
            "Final-Recipient: rfc822; carol@remote.test\r\n",
            "Action: failed\r\n",
            "Status: 5.1.1\r\n",
            "Remote-MTA: dns; mx.remote.test\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <carol@remote.test>: no such user\r\n",
            "Auto-Submitted: auto-replied\r\n",
            "Content-Type: message/rfc822\r\n\r\nFrom: alice@example.test\r\n",
            "the body\r\n",
        ] {
            assert!(text.contains(field), "missing {field:?} in\n{text}");
        }
        assert!(text.lines().all(|l| l.len() <= 998));
    }

    #[test]
    fn headers_only_when_asked_and_utf8_reports_for_smtputf8() {
        let recipients = [failed("carol@remote.test")];
        let text = String::from_utf8(build(
            &dsn(&recipients, Returned::Headers),
            now(),
            "gw.example.test",
        ))
        .expect("utf-8");
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n"));
        assert!(text.contains("Subject: hello\r\n"));
        assert!(!text.contains("the body"));

        let mut global = dsn(&recipients, Returned::Full);
        global.smtputf8 = true;
        let text = String::from_utf8(build(&global, now(), "h")).expect("utf-8");
        assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
        assert!(text.contains("Final-Recipient: utf-8; carol@remote.test\r\n"));
        assert!(text.contains("Content-Type: message/global\r\n"));
    }

    #[test]
    fn a_peer_cannot_inject_fields_and_the_boundary_avoids_the_original() {
        let mut r = failed("carol@remote.test");
        r.diagnostic = Some("550 no\r\nAction: delivered\r\n\r\n--x".into());
        let recipients = [r];
        let mut d = dsn(&recipients, Returned::Full);
        let original = b"Subject: x\r\n\r\n--=_mailgw_ lines that look like boundaries\r\n";
        d.original = original;
        let bytes = build(&d, now(), "h");
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert_eq!(text.matches("\r\nAction: ").count(), 1, "{text}");
        assert!(text.contains("Diagnostic-Code: smtp; 550 no Action: delivered --x\r\n"));
        let message = MessageParser::default().parse(&bytes).expect("parses");
        assert_eq!(message.parts.len(), 4);
    }

    #[test]
    fn delays_and_successes_say_so() {
        let mut r = failed("carol@remote.test");
        r.action = Action::Delayed;
        r.status = "4.4.1".into();
        r.will_retry_until = Some(UNIX_EPOCH + Duration::from_secs(1_700_400_000));
        let recipients = [r];
        let text = String::from_utf8(build(&dsn(&recipients, Returned::Headers), now(), "h"))
            .expect("utf-8");
        assert!(text.contains("Subject: Delayed Mail (still being retried)\r\n"));
        assert!(text.contains("Action: delayed\r\n"));
        assert!(text.contains("Will-Retry-Until: Sun, 19 Nov 2023 13:20:00 +0000\r\n"));

        let mut r = failed("bob@example.test");
        r.action = Action::Delivered;
        r.status = "2.0.0".into();
        r.diagnostic = None;
        r.remote_mta = None;
        let recipients = [r];
        let text = String::from_utf8(build(&dsn(&recipients, Returned::Headers), now(), "h"))
            .expect("utf-8");
        assert!(text.contains("Subject: Successful Mail Delivery Report\r\n"));
        assert!(text.contains("<bob@example.test>: delivered (2.0.0)"));
    }

    #[test]
    fn a_bare_lf_original_comes_back_with_crlf() {
        let recipients = [failed("carol@remote.test")];
        let mut d = dsn(&recipients, Returned::Full);
        d.original = b"Subject: lf\n\nline one\nline two\n";
        let bytes = build(&d, now(), "h");
        assert!(!bytes.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
        assert!(String::from_utf8_lossy(&bytes).contains("line one\r\nline two\r\n"));
    }
}
