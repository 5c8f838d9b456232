//! The envelope of an accepted message: what the spool stores beside the
//! message, including the DSN parameters (RFC 3461) for the delivery side.
//!
//! These are plain data types with public fields; the spool defines how they
//! are written to disk.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use mailgw_plan::Address;

use super::command::{Body, Notify, Orcpt, Ret, Utf8};

/// Whether the session was encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsState {
    /// Cleartext.
    Plain,
    /// TLS (implicit or after STARTTLS).
    Active,
}

/// One SMTP transaction's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The id given in the `Received:` header: the session id and the
    /// transaction's number in it.
    pub id: String,
    /// The reverse path; `None` is the null sender `<>`.
    pub sender: Option<Address>,
    /// Accepted recipients in `RCPT` order, without duplicates.
    pub recipients: Vec<RecipientEntry>,
    /// `BODY=`.
    pub body: Body,
    /// `SMTPUTF8`.
    pub smtputf8: Utf8,
    /// DSN `RET=`.
    pub ret: Option<Ret>,
    /// DSN `ENVID=`, decoded.
    pub envid: Option<String>,
    /// The client's IP address.
    pub client: IpAddr,
    /// The `EHLO`/`HELO` name the client gave.
    pub helo: String,
    /// The authenticated user, if any.
    pub authenticated: Option<String>,
    /// Whether the message came over TLS.
    pub tls: TlsState,
    /// When the message data started.
    pub received_at: SystemTime,
}

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientEntry {
    /// The address as parsed (domain normalized, local part as written).
    pub address: Address,
    /// DSN `ORCPT=`.
    pub orcpt: Option<Orcpt>,
    /// DSN `NOTIFY=`.
    pub notify: Option<Notify>,
    /// What the plan decided at `RCPT` time.
    pub disposition: Disposition,
}

/// What the plan's decision engine made of a recipient at `RCPT` time. The
/// delivery side resolves again with the plan it runs; this records why the
/// recipient was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// A local mailbox (index into the plan's mailboxes).
    Mailbox(u32),
    /// A local group (index into the plan's groups).
    Group(u32),
    /// An unknown address in a local domain, accepted for the forward host.
    ForwardUnknown {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A foreign domain, relaying allowed.
    Relay,
}

/// Protocol name for the `with` clause of `Received:` (RFC 3848, RFC 6531).
fn protocol(helo: Greeting, smtputf8: Utf8, tls: TlsState, auth: bool) -> String {
    let base = match (helo, smtputf8) {
        (Greeting::Helo, _) => return "SMTP".to_owned(),
        (Greeting::Ehlo, Utf8::Yes) => "UTF8SMTP",
        (Greeting::Ehlo, Utf8::No) => "ESMTP",
    };
    let mut name = base.to_owned();
    if tls == TlsState::Active {
        name.push('S');
    }
    if auth {
        name.push('A');
    }
    name
}

/// Which greeting the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greeting {
    /// `HELO`: plain SMTP.
    Helo,
    /// `EHLO`: ESMTP.
    Ehlo,
}

/// Keeps a client-chosen name safe inside a header: anything but letters,
/// digits and `.-:[]_` becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .take(255)
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-:[]_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Envelope {
    /// The `Received:` header this gateway adds (RFC 5321 4.4), folded, with
    /// CRLF. `for` names the recipient only when there is exactly one.
    pub fn received_header(&self, hostname: &str, greeting: Greeting) -> String {
        let with = protocol(
            greeting,
            self.smtputf8,
            self.tls,
            self.authenticated.is_some(),
        );
        let ip = match self.client {
            IpAddr::V4(ip) => format!("[{ip}]"),
            IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
        };
        let mut header = format!(
            "Received: from {} ({ip})\r\n\tby {} (mailgw) with {with} id {}",
            sanitize(&self.helo),
            sanitize(hostname),
            self.id
        );
        if let [only] = self.recipients.as_slice() {
            header.push_str(&format!("\r\n\tfor <{}>", only.address));
        }
        header.push_str(&format!("; {}\r\n", rfc5322_date(self.received_at)));
        header
    }
}

/// `Tue, 1 Jul 2025 10:00:00 +0000` (RFC 5322 3.3), in UTC.
pub fn rfc5322_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)];
    format!(
        "{weekday}, {day} {month} {year} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01, after
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let at = |s: u64| rfc5322_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(at(1_751_364_245), "Tue, 1 Jul 2025 10:04:05 +0000");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 +0000");
    }

    #[test]
    fn protocol_names() {
        assert_eq!(
            protocol(Greeting::Helo, Utf8::No, TlsState::Active, true),
            "SMTP"
        );
        assert_eq!(
            protocol(Greeting::Ehlo, Utf8::No, TlsState::Plain, false),
            "ESMTP"
        );
        assert_eq!(
            protocol(Greeting::Ehlo, Utf8::No, TlsState::Active, true),
            "ESMTPSA"
        );
        assert_eq!(
            protocol(Greeting::Ehlo, Utf8::Yes, TlsState::Active, false),
            "UTF8SMTPS"
        );
        assert_eq!(sanitize("a b(c);\r\n.example"), "a_b_c____.example");
    }
}
