//! Small pieces of RFC 5322 / MIME writing shared by the builders.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `Date:` text (RFC 5322 3.3) in UTC.
pub fn date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil(i64::try_from(days).unwrap_or(0));
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[usize::try_from(days % 7).unwrap_or(0)];
    let month = MONTHS[usize::try_from(m - 1).unwrap_or(0).min(11)];
    format!(
        "{weekday}, {d} {month} {y} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A token unique in this process and unlikely elsewhere: time, process
/// and a counter.
pub fn unique(now: SystemTime) -> String {
    let micros = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{micros:x}.{:x}.{n:x}", std::process::id())
}

/// A `Message-ID:` value for a message made by `host`.
pub fn message_id(now: SystemTime, host: &str) -> String {
    format!("<{}@{host}>", unique(now))
}

/// A MIME boundary that occurs nowhere in `content`.
pub fn boundary(now: SystemTime, content: &[u8]) -> String {
    loop {
        let candidate = format!("=_mailgw_{}", unique(now));
        if !contains(content, candidate.as_bytes()) {
            return candidate;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Text safe for one header or report field: line breaks and other
/// control characters become spaces, runs of spaces one.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_owned()
}

/// Appends `name: value` folded at spaces so that no line passes 78
/// characters where a space allows (RFC 5322 2.2.3), CRLF-terminated.
pub fn field(out: &mut String, name: &str, value: &str) {
    let value = one_line(value);
    let mut line_len = name.len() + 1;
    out.push_str(name);
    out.push(':');
    for word in value.split(' ') {
        if line_len + 1 + word.len() > 78 && line_len > name.len() + 1 {
            out.push_str("\r\n");
            line_len = 0;
        }
        out.push(' ');
        out.push_str(word);
        line_len += 1 + word.len();
    }
    out.push_str("\r\n");
}

/// The header section of `message`, through the empty line that ends it
/// (all of it when there is no body).
pub fn headers_of(message: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < message.len() {
        let rest = &message[i..];
        if rest.starts_with(b"\r\n") {
            return &message[..i + 2];
        }
        if rest.starts_with(b"\n") {
            return &message[..i + 1];
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => i += n + 1,
            None => return message,
        }
    }
    message
}

/// The value of the first header field `name` (case-insensitive),
/// unfolded, if the header has one.
pub fn header_value(message: &[u8], name: &str) -> Option<String> {
    let header = String::from_utf8_lossy(headers_of(message));
    let mut value: Option<String> = None;
    for line in header.split('\n') {
        let line = line.trim_end_matches('\r');
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => {
                v.push(' ');
                v.push_str(line.trim());
            }
            Some(_) => break,
            None => {
                if let Some((n, v)) = line.split_once(':') {
                    if n.trim().eq_ignore_ascii_case(name) {
                        value = Some(v.trim().to_owned());
                    }
                }
            }
        }
    }
    value
}

/// `bytes` with every line ending CRLF (a bare LF or CR becomes CRLF).
pub fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 50);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(date(t), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert_eq!(date(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn fields_fold_and_lose_line_breaks() {
        let mut out = String::new();
        field(
            &mut out,
            "Diagnostic-Code",
            "smtp; 550 5.1.1 no\r\nBcc: evil@example.org",
        );
        assert_eq!(
            out,
            "Diagnostic-Code: smtp; 550 5.1.1 no Bcc: evil@example.org\r\n"
        );
        let mut out = String::new();
        field(&mut out, "X", &"word ".repeat(40));
        assert!(out.lines().all(|l| l.len() <= 78), "{out}");
        assert!(out.contains("\r\n word"));
    }

    #[test]
    fn headers_values_and_line_ends() {
        let m = b"Subject: a\r\n long\r\nFrom: x\r\n\r\nbody\r\n";
        assert_eq!(headers_of(m), b"Subject: a\r\n long\r\nFrom: x\r\n\r\n");
        assert_eq!(header_value(m, "subject").as_deref(), Some("a long"));
        assert_eq!(header_value(m, "to"), None);
        assert_eq!(crlf(b"a\nb\rc\r\nd"), b"a\r\nb\r\nc\r\nd");
        assert_eq!(headers_of(b"Subject: only"), b"Subject: only");
    }

    #[test]
    fn boundaries_avoid_the_content() {
        let now = UNIX_EPOCH + Duration::from_secs(5);
        let earlier: Vec<String> = (0..50).map(|_| boundary(now, b"")).collect();
        let content = earlier.join("\r\n");
        let b = boundary(now, content.as_bytes());
        assert!(b.starts_with("=_mailgw_"));
        assert!(!content.contains(&b));
    }
}
