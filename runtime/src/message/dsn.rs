//! Delivery status notifications: RFC 3464 reports in RFC 6522
//! `multipart/report` messages, for the DSN extension (RFC 3461), as
//! automatic replies (RFC 3834), in their internationalized form for
//! SMTPUTF8 mail (RFC 6533).
//!
//! [`build`] writes the whole message: a human-readable explanation, the
//! machine-readable `message/delivery-status` part and the original (all
//! of it, or its header). The envelope (`MAIL FROM:<>`) is the caller's.

use std::borrow::Cow;
use std::time::SystemTime;

use super::encoding::{identity_encoding, to_crlf};
use super::header::{field_value, message_id, push_field, rfc5322_date};
use super::mime::{boundary, text_part, write_multipart, Part};
use crate::smtp::Ret;

pub use super::header::headers_of;

/// What happened to a recipient (RFC 3464 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The message could not be delivered and will not be retried.
    Failed,
    /// Delivery failed for now; the gateway keeps trying.
    Delayed,
    /// Delivered to the recipient's mailbox.
    Delivered,
    /// Handed on to a system that sends no DSN itself.
    Relayed,
    /// Delivered to the recipient, which forwarded it to several addresses.
    Expanded,
}

impl Action {
    /// The `Action:` keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }
}

/// One recipient's group of fields in the report (RFC 3464 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The address delivered to; written as `Final-Recipient: rfc822; ...`
    /// (`utf-8; ...` for a non-ASCII address in an SMTPUTF8 report).
    pub final_recipient: String,
    /// The `ORCPT` parameter as `addr-type;address`, xtext already decoded;
    /// written as `Original-Recipient`.
    pub original_recipient: Option<String>,
    /// What happened.
    pub action: Action,
    /// The enhanced status code, like `5.1.1` (RFC 3463).
    pub status: String,
    /// The peer's reply, written as `Diagnostic-Code: smtp; ...`. Line ends
    /// in it (a multi-line reply) become spaces.
    pub diagnostic: Option<String>,
    /// The host that gave the reply, like `dns; mx.example.net`.
    pub remote_mta: Option<String>,
    /// When delivery was last tried.
    pub last_attempt: Option<SystemTime>,
    /// For a delay: until when the gateway keeps trying.
    pub will_retry_until: Option<SystemTime>,
}

/// What of the original message the report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// The whole message, as `message/rfc822` (`message/global`).
    Full,
    /// Its header only, as `text/rfc822-headers` (`message/global-headers`).
    Headers,
}

impl From<Option<Ret>> for Returned {
    /// The sender's `RET=` parameter: without one, the whole message goes
    /// back (RFC 3461 4.3 leaves it to the MTA).
    fn from(ret: Option<Ret>) -> Self {
        match ret {
            Some(Ret::Headers) => Returned::Headers,
            Some(Ret::Full) | None => Returned::Full,
        }
    }
}

/// Everything a report says.
#[derive(Debug, Clone)]
pub struct Dsn<'a> {
    /// The gateway's host name: `Reporting-MTA: dns; ...`.
    pub reporting_mta: &'a str,
    /// The postmaster address, for the `From:` field.
    pub from: &'a str,
    /// The original sender, for the `To:` field.
    pub to: &'a str,
    /// The sender's `ENVID`, xtext decoded: `Original-Envelope-Id`.
    pub envid: Option<&'a str>,
    /// The gateway's queue ID of the message: in the explanation and as
    /// `X-Mailgw-Queue-ID`.
    pub queue_id: &'a str,
    /// When the gateway received the message: `Arrival-Date`.
    pub arrival: SystemTime,
    /// Who sent it, like `dns; client.example (1.2.3.4)`:
    /// `Received-From-MTA`.
    pub received_from: Option<&'a str>,
    /// One group per recipient; the report is about these only.
    pub recipients: &'a [DsnRecipient],
    /// The original message, CRLF line ends.
    pub original: &'a [u8],
    /// What of it goes back.
    pub returned: Returned,
    /// The original was sent with SMTPUTF8: the report uses
    /// `message/global-delivery-status` and `message/global` (RFC 6533).
    pub smtputf8: bool,
}

/// The report as a complete message with CRLF line ends. `now` dates it;
/// `message_id_host` is the right side of its Message-ID.
pub fn build(dsn: &Dsn<'_>, now: SystemTime, message_id_host: &str) -> Vec<u8> {
    let original_header = headers_of(dsn.original);
    let returned: Cow<'_, [u8]> = match dsn.returned {
        Returned::Full => to_crlf(dsn.original),
        Returned::Headers => to_crlf(original_header),
    };
    let parts = [
        text_part(&explanation(dsn, now), "Notification"),
        status_part(dsn),
        returned_part(dsn, returned),
    ];
    let boundary = boundary(now, &parts);

    let mut out = Vec::with_capacity(parts.iter().map(|p| p.body.len() + 512).sum());
    push_field(
        &mut out,
        "From",
        format!("Mail Delivery System <{}>", dsn.from).as_bytes(),
    );
    push_field(&mut out, "To", angle(dsn.to).as_bytes());
    push_field(&mut out, "Subject", subject(dsn.recipients).as_bytes());
    push_field(&mut out, "Date", rfc5322_date(now).as_bytes());
    push_field(
        &mut out,
        "Message-ID",
        message_id(now, message_id_host).as_bytes(),
    );
    if let Some(id) = field_value(original_header, "Message-ID").filter(|id| is_msg_id(id)) {
        push_field(&mut out, "In-Reply-To", &id);
        push_field(&mut out, "References", &id);
    }
    out.extend_from_slice(b"Auto-Submitted: auto-replied\r\n");
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    let report_type = if dsn.smtputf8 {
        "global-delivery-status"
    } else {
        "delivery-status"
    };
    push_field(
        &mut out,
        "Content-Type",
        format!("multipart/report; report-type={report_type}; boundary=\"{boundary}\"").as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    write_multipart(&mut out, &boundary, &parts);
    out
}

/// The subject by the worst news in the report.
fn subject(recipients: &[DsnRecipient]) -> &'static str {
    let any = |action| recipients.iter().any(|r| r.action == action);
    if any(Action::Failed) {
        "Undelivered Mail Returned to Sender"
    } else if any(Action::Delayed) {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    }
}

/// `<addr>`, unless it is already in angle brackets.
fn angle(address: &str) -> String {
    if address.starts_with('<') {
        address.to_string()
    } else {
        format!("<{address}>")
    }
}

/// A single `<id@host>`, fit to be copied into `In-Reply-To`.
fn is_msg_id(id: &[u8]) -> bool {
    id.starts_with(b"<") && id.ends_with(b">") && !id.contains(&b' ') && id.len() < 900
}

/// The human-readable first part, in the manner of Postfix's bounces.
fn explanation(dsn: &Dsn<'_>, now: SystemTime) -> String {
    let mut text = String::new();
    let mut para = |s: &str| {
        wrap(&mut text, s, "");
        text.push_str("\r\n");
    };
    para(&format!(
        "This is the mail gateway at host {}.",
        dsn.reporting_mta
    ));
    let any = |action| {
        dsn.recipients
            .iter()
            .any(|r: &DsnRecipient| r.action == action)
    };
    if any(Action::Failed) {
        para(
            "I'm sorry to have to inform you that your message could not be delivered \
             to one or more recipients. The reasons are given below; the message is \
             attached.",
        );
    }
    if any(Action::Delayed) {
        let until = dsn
            .recipients
            .iter()
            .filter_map(|r| r.will_retry_until)
            .max();
        let keep = match until {
            Some(until) => format!(
                " The gateway will keep trying until {} ({} from now); you will be told \
                 if it gives up.",
                rfc5322_date(until),
                span(until.duration_since(now).unwrap_or_default())
            ),
            None => " The gateway will keep trying; you will be told if it gives up.".into(),
        };
        para(&format!(
            "Your message could not be delivered yet to one or more recipients.{keep} \
             You do not need to send it again."
        ));
    }
    if any(Action::Delivered) || any(Action::Relayed) || any(Action::Expanded) {
        para(
            "Your message was delivered to, or passed on towards, the recipients \
             marked below as delivered, relayed or expanded, as you asked.",
        );
    }
    para(&format!(
        "The message's queue ID at this gateway is {}. If you write to the \
         postmaster ({}) about it, please include this report.",
        dsn.queue_id, dsn.from
    ));
    text.push_str("                   The mail gateway\r\n\r\n");
    for r in dsn.recipients {
        let reason = match (&r.diagnostic, &r.remote_mta) {
            (Some(d), Some(mta)) => format!(
                "host {} said: {}",
                mta.rsplit(';').next().unwrap_or(mta).trim(),
                one_line(d)
            ),
            (Some(d), None) => one_line(d),
            (None, _) => format!("{} (status {})", r.action.as_str(), r.status),
        };
        wrap(
            &mut text,
            &format!("<{}>: {}", r.final_recipient, reason),
            "    ",
        );
        text.push_str("\r\n");
    }
    text
}

/// A peer's reply on one line, without control characters.
fn one_line(s: &str) -> String {
    String::from_utf8_lossy(&super::header::one_line(s.as_bytes())).into_owned()
}

/// A rough duration for people: days, hours or minutes.
fn span(d: std::time::Duration) -> String {
    let mins = d.as_secs().div_ceil(60);
    let (n, unit) = if mins >= 2 * 24 * 60 {
        (mins.div_ceil(24 * 60), "day")
    } else if mins >= 120 {
        (mins.div_ceil(60), "hour")
    } else {
        (mins, "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Appends `s` wrapped at 72 columns, continuation lines indented, CRLF.
fn wrap(out: &mut String, s: &str, indent: &str) {
    let mut len = 0;
    for word in s.split_whitespace() {
        for piece in chunks(word, 900) {
            if len > 0 && len + 1 + piece.chars().count() > 72 {
                out.push_str("\r\n");
                out.push_str(indent);
                len = indent.len();
            } else if len > 0 {
                out.push(' ');
                len += 1;
            }
            out.push_str(piece);
            len += piece.chars().count();
        }
    }
    out.push_str("\r\n");
}

/// `word` cut into pieces of at most `max` bytes, at character boundaries.
fn chunks(word: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = word;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

/// The `message/delivery-status` part (RFC 3464 2.1).
fn status_part(dsn: &Dsn<'_>) -> Part<'static> {
    let utf8 = dsn.smtputf8;
    let v = |s: &str| -> Vec<u8> {
        if utf8 {
            s.as_bytes().to_vec()
        } else {
            s.chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect::<String>()
                .into_bytes()
        }
    };
    let mut body = Vec::new();
    if let Some(envid) = dsn.envid {
        push_field(&mut body, "Original-Envelope-Id", &v(envid));
    }
    push_field(
        &mut body,
        "Reporting-MTA",
        &v(&format!("dns; {}", dsn.reporting_mta)),
    );
    if let Some(from) = dsn.received_from {
        push_field(&mut body, "Received-From-MTA", &v(&typed("dns", from)));
    }
    push_field(
        &mut body,
        "Arrival-Date",
        rfc5322_date(dsn.arrival).as_bytes(),
    );
    push_field(&mut body, "X-Mailgw-Queue-ID", &v(dsn.queue_id));
    for r in dsn.recipients {
        body.extend_from_slice(b"\r\n");
        if let Some(orcpt) = &r.original_recipient {
            push_field(&mut body, "Original-Recipient", &v(orcpt));
        }
        let kind = if utf8 && !r.final_recipient.is_ascii() {
            "utf-8"
        } else {
            "rfc822"
        };
        push_field(
            &mut body,
            "Final-Recipient",
            &v(&format!("{kind}; {}", r.final_recipient)),
        );
        push_field(&mut body, "Action", r.action.as_str().as_bytes());
        push_field(&mut body, "Status", &v(&r.status));
        if let Some(mta) = &r.remote_mta {
            push_field(&mut body, "Remote-MTA", &v(&typed("dns", mta)));
        }
        if let Some(diagnostic) = &r.diagnostic {
            push_field(
                &mut body,
                "Diagnostic-Code",
                &v(&format!("smtp; {diagnostic}")),
            );
        }
        if let Some(at) = r.last_attempt {
            push_field(&mut body, "Last-Attempt-Date", rfc5322_date(at).as_bytes());
        }
        if let Some(until) = r.will_retry_until {
            push_field(
                &mut body,
                "Will-Retry-Until",
                rfc5322_date(until).as_bytes(),
            );
        }
    }
    let mut header = Vec::new();
    if utf8 {
        header.extend_from_slice(b"Content-Type: message/global-delivery-status\r\n");
        if !body.is_ascii() {
            header.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
        }
    } else {
        header.extend_from_slice(b"Content-Type: message/delivery-status\r\n");
    }
    header.extend_from_slice(b"Content-Description: Delivery report\r\n");
    Part {
        header,
        body: Cow::Owned(body),
    }
}

/// `value` with a type (`dns; host`), unless it has one.
fn typed(kind: &str, value: &str) -> String {
    if value.contains(';') {
        value.to_string()
    } else {
        format!("{kind}; {value}")
    }
}

/// The original, or its header, as the third part.
fn returned_part<'a>(dsn: &Dsn<'_>, returned: Cow<'a, [u8]>) -> Part<'a> {
    let content_type = match (dsn.returned, dsn.smtputf8) {
        (Returned::Full, false) => "message/rfc822",
        (Returned::Full, true) => "message/global",
        (Returned::Headers, false) => "text/rfc822-headers",
        (Returned::Headers, true) => "message/global-headers",
    };
    let mut header = format!("Content-Type: {content_type}\r\n").into_bytes();
    let description = match dsn.returned {
        Returned::Full => "Undelivered Message",
        Returned::Headers => "Undelivered Message Headers",
    };
    let description = if subject(dsn.recipients) == "Undelivered Mail Returned to Sender" {
        description.to_string()
    } else {
        description.replace("Undelivered ", "")
    };
    push_field(&mut header, "Content-Description", description.as_bytes());
    let encoding = identity_encoding(&returned);
    if encoding != "7bit" {
        push_field(
            &mut header,
            "Content-Transfer-Encoding",
            encoding.as_bytes(),
        );
    }
    Part {
        header,
        body: returned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{Message, MessageParser, MimeHeaders};
    use std::time::{Duration, UNIX_EPOCH};

    const ORIGINAL: &[u8] = b"From: Alice <alice@example.com>\r\n\
        To: bob@example.net\r\n\
        Subject: Lunch\r\n\
        Message-ID: <lunch.1@example.com>\r\n\
        \r\n\
        BODY-MARKER see you at noon\r\n";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn failed(addr: &str, diagnostic: &str) -> DsnRecipient {
        DsnRecipient {
            final_recipient: addr.into(),
            original_recipient: Some(format!("rfc822;{addr}")),
            action: Action::Failed,
            status: "5.1.1".into(),
            diagnostic: Some(diagnostic.into()),
            remote_mta: Some("dns; mx.example.net".into()),
            last_attempt: Some(at(1_751_360_000)),
            will_retry_until: None,
        }
    }

    fn dsn<'a>(recipients: &'a [DsnRecipient], original: &'a [u8], returned: Returned) -> Dsn<'a> {
        Dsn {
            reporting_mta: "gw.example.com",
            from: "postmaster@gw.example.com",
            to: "alice@example.com",
            envid: Some("env-42"),
            queue_id: "Q1234",
            arrival: at(1_751_350_000),
            received_from: Some("dns; client.example (192.0.2.1)"),
            recipients,
            original,
            returned,
            smtputf8: false,
        }
    }

    /// The part's raw body as text.
    fn body<'a>(raw: &'a [u8], msg: &Message<'_>, part: u32) -> &'a str {
        let p = &msg.parts[part as usize];
        std::str::from_utf8(&raw[p.offset_body as usize..p.offset_end as usize]).unwrap_or("")
    }

    fn check_lines(out: &[u8]) {
        assert!(out.split(|&b| b == b'\n').all(|l| l.len() <= 999));
        let lf = out.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(
            out.windows(2).filter(|w| w == b"\r\n").count(),
            lf,
            "bare LF"
        );
    }

    #[test]
    fn failure_report_has_every_field() {
        let rcpts = [failed(
            "bob@example.net",
            "550 5.1.1 <bob@example.net>: no such user",
        )];
        let out = build(
            &dsn(&rcpts, ORIGINAL, Returned::Full),
            at(1_751_360_703),
            "gw.example.com",
        );
        check_lines(&out);
        let msg = MessageParser::default().parse(&out).expect("parses");
        assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
        let ct = msg.content_type().expect("content type");
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert_eq!(
            msg.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-replied")
        );
        assert_eq!(
            msg.header_raw("Date").map(str::trim),
            Some("Tue, 01 Jul 2025 09:05:03 +0000")
        );
        assert_eq!(msg.in_reply_to().as_text(), Some("lunch.1@example.com"));
        let from = msg.from().and_then(|f| f.first()).and_then(|a| a.address());
        assert_eq!(from, Some("postmaster@gw.example.com"));

        let root = msg.parts[0].sub_parts().expect("multipart").to_vec();
        assert_eq!(root.len(), 3);
        let text = body(&out, &msg, root[0]);
        assert!(text.contains("host gw.example.com"));
        assert!(text.contains("<bob@example.net>: host mx.example.net said: 550 5.1.1"));
        assert!(text.contains("Q1234"));

        let status = &msg.parts[root[1] as usize];
        assert_eq!(
            status.content_type().map(|c| (c.ctype(), c.subtype())),
            Some(("message", Some("delivery-status")))
        );
        let fields = body(&out, &msg, root[1]);
        let groups: Vec<&str> = fields.split("\r\n\r\n").collect();
        assert_eq!(groups.len(), 2, "{fields}");
        assert_eq!(
            groups[0],
            "Original-Envelope-Id: env-42\r\nReporting-MTA: dns; gw.example.com\r\n\
             Received-From-MTA: dns; client.example (192.0.2.1)\r\n\
             Arrival-Date: Tue, 01 Jul 2025 06:06:40 +0000\r\nX-Mailgw-Queue-ID: Q1234"
        );
        assert_eq!(
            groups[1],
            "Original-Recipient: rfc822;bob@example.net\r\n\
             Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\
             Remote-MTA: dns; mx.example.net\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: no such user\r\n\
             Last-Attempt-Date: Tue, 01 Jul 2025 08:53:20 +0000\r\n"
        );

        let returned = &msg.parts[root[2] as usize];
        assert_eq!(
            returned.content_type().map(|c| (c.ctype(), c.subtype())),
            Some(("message", Some("rfc822")))
        );
        assert_eq!(body(&out, &msg, root[2]).as_bytes(), ORIGINAL);
    }

    #[test]
    fn no_ret_returns_the_full_message() {
        assert_eq!(Returned::from(None), Returned::Full);
        assert_eq!(Returned::from(Some(Ret::Headers)), Returned::Headers);
    }

    #[test]
    fn headers_only_leaves_the_body_out() {
        let rcpts = [failed("bob@example.net", "550 no")];
        let out = build(
            &dsn(&rcpts, ORIGINAL, Returned::Headers),
            at(1_751_360_703),
            "h",
        );
        let msg = MessageParser::default().parse(&out).expect("parses");
        let root = msg.parts[0].sub_parts().expect("multipart").to_vec();
        let part = &msg.parts[root[2] as usize];
        assert_eq!(
            part.content_type().map(|c| (c.ctype(), c.subtype())),
            Some(("text", Some("rfc822-headers")))
        );
        assert_eq!(body(&out, &msg, root[2]).as_bytes(), headers_of(ORIGINAL));
        assert!(!out.windows(11).any(|w| w == b"BODY-MARKER"));
    }

    #[test]
    fn boundary_in_the_original_is_avoided() {
        let now = at(1_751_360_703);
        let rcpts = [failed("bob@example.net", "550 no")];
        // The original quotes every boundary the next few builds could pick.
        let mut original = ORIGINAL.to_vec();
        let probe = build(&dsn(&rcpts, ORIGINAL, Returned::Full), now, "h");
        let probe = MessageParser::default().parse(&probe).expect("parses");
        let used = probe
            .content_type()
            .and_then(|c| c.attribute("boundary"))
            .expect("boundary")
            .to_string();
        let (stem, seq) = used.rsplit_once('_').expect("counter");
        let seq = u64::from_str_radix(seq, 16).expect("hex");
        for n in seq + 1..seq + 200 {
            original.extend_from_slice(format!("--{stem}_{n:x}\r\n").as_bytes());
        }
        let out = build(&dsn(&rcpts, &original, Returned::Full), now, "h");
        let msg = MessageParser::default().parse(&out).expect("parses");
        let b = msg
            .content_type()
            .and_then(|c| c.attribute("boundary"))
            .expect("boundary");
        assert!(!original.windows(b.len()).any(|w| w == b.as_bytes()));
        let root = msg.parts[0].sub_parts().expect("multipart").to_vec();
        assert_eq!(root.len(), 3);
        assert_eq!(body(&out, &msg, root[2]).as_bytes(), &original[..]);
    }

    #[test]
    fn a_peer_cannot_inject_fields() {
        let rcpts = [failed(
            "bob@example.net",
            "550-5.1.1 first line\r\n550 5.1.1 second\r\nAction: delivered\n\r\nX-Evil: 1",
        )];
        let out = build(
            &dsn(&rcpts, ORIGINAL, Returned::Full),
            at(1_751_360_703),
            "h",
        );
        check_lines(&out);
        let text = String::from_utf8_lossy(&out);
        let unfolded = text.replace("\r\n ", " ");
        assert!(unfolded.contains(
            "Diagnostic-Code: smtp; 550-5.1.1 first line 550 5.1.1 second Action: delivered X-Evil: 1\r\n"
        ), "{text}");
        assert!(!text.contains("\nAction: delivered"));
        assert!(!text.contains("\nX-Evil"));
    }

    #[test]
    fn delay_report_says_how_long() {
        let now = at(1_751_360_703);
        let rcpts = [DsnRecipient {
            action: Action::Delayed,
            status: "4.4.1".into(),
            will_retry_until: Some(now + Duration::from_secs(5 * 86_400)),
            ..failed("bob@example.net", "421 try later")
        }];
        let out = build(&dsn(&rcpts, ORIGINAL, Returned::Headers), now, "h");
        let msg = MessageParser::default().parse(&out).expect("parses");
        assert_eq!(msg.subject(), Some("Delayed Mail (still being retried)"));
        let root = msg.parts[0].sub_parts().expect("multipart").to_vec();
        let text = body(&out, &msg, root[0]).replace("\r\n", " ");
        assert!(
            text.contains("until Sun, 06 Jul 2025 09:05:03 +0000 (5 days from now)"),
            "{text}"
        );
        let fields = body(&out, &msg, root[1]);
        assert!(fields.contains("Action: delayed\r\n"));
        assert!(fields.contains("Will-Retry-Until: Sun, 06 Jul 2025 09:05:03 +0000\r\n"));
    }

    #[test]
    fn mixed_reports_take_the_worst_subject() {
        let ok = DsnRecipient {
            action: Action::Delivered,
            status: "2.0.0".into(),
            ..failed("c@example.net", "250 ok")
        };
        let delayed = DsnRecipient {
            action: Action::Delayed,
            ..ok.clone()
        };
        assert_eq!(
            subject(&[ok.clone(), failed("b@x", "550")]),
            "Undelivered Mail Returned to Sender"
        );
        assert_eq!(
            subject(&[ok.clone(), delayed]),
            "Delayed Mail (still being retried)"
        );
        assert_eq!(subject(&[ok]), "Successful Mail Delivery Report");
    }

    #[test]
    fn smtputf8_reports_are_global() {
        let original =
            "From: j\u{f6}rg@b\u{fc}cher.example\r\nSubject: \u{e9}t\u{e9}\r\n\r\nhej\r\n";
        let rcpts = [failed(
            "j\u{f6}rg@b\u{fc}cher.example",
            "550 5.1.1 unbekannt",
        )];
        let mut report = dsn(&rcpts, original.as_bytes(), Returned::Full);
        report.smtputf8 = true;
        let out = build(&report, at(1_751_360_703), "h");
        check_lines(&out);
        let msg = MessageParser::default().parse(&out).expect("parses");
        assert_eq!(
            msg.content_type().and_then(|c| c.attribute("report-type")),
            Some("global-delivery-status")
        );
        let root = msg.parts[0].sub_parts().expect("multipart").to_vec();
        let ct = |i: usize| {
            msg.parts[root[i] as usize]
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
        };
        assert_eq!(ct(1).as_deref(), Some("message/global-delivery-status"));
        assert_eq!(ct(2).as_deref(), Some("message/global"));
        assert!(body(&out, &msg, root[1])
            .contains("Final-Recipient: utf-8; j\u{f6}rg@b\u{fc}cher.example\r\n"));
    }

    #[test]
    fn bare_line_feeds_in_the_original_become_crlf() {
        let rcpts = [failed("bob@example.net", "550 no")];
        let out = build(
            &dsn(&rcpts, b"Subject: x\n\nline\n", Returned::Full),
            at(1),
            "h",
        );
        check_lines(&out);
        assert!(out.windows(20).any(|w| w == b"Subject: x\r\n\r\nline\r\n"));
    }
}
