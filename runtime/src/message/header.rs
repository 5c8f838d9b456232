//! Header sections: finding them, reading a field, writing folded fields,
//! dates and message identifiers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where folding starts: lines are kept under this length when they have
/// white space to break at (RFC 5322 2.1.1 recommends 78).
const FOLD_AT: usize = 78;
/// A word longer than this is cut, so that no line exceeds 998 octets.
const LONGEST_WORD: usize = 900;

/// The header section of `message`, including the empty line that ends it
/// (CRLF or a bare LF). A message without an empty line is all header.
pub fn headers_of(message: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < message.len() {
        let end = match message[start..].iter().position(|&b| b == b'\n') {
            Some(i) => start + i + 1,
            None => return message,
        };
        let line = &message[start..end];
        if line == b"\n" || line == b"\r\n" {
            return &message[..end];
        }
        start = end;
    }
    message
}

/// One field of a header section, as raw bytes.
pub(crate) struct Field<'a> {
    /// The field name, as written.
    pub name: &'a [u8],
    /// Everything after the colon, folding included, up to the final line end.
    pub value: &'a [u8],
    /// Offset of the field's first byte in the header section.
    pub start: usize,
    /// Offset just past the field's final line end.
    pub end: usize,
}

/// The fields of a header section, in order; stops at the empty line.
/// Lines without a colon are skipped.
pub(crate) fn fields(header: &[u8]) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < header.len() {
        let line_end = line_end_of(header, pos);
        let line = &header[pos..line_end];
        if trim_eol(line).is_empty() {
            break;
        }
        let mut end = line_end;
        while end < header.len() && matches!(header[end], b' ' | b'\t') {
            end = line_end_of(header, end);
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            out.push(Field {
                name: trim(&header[pos..pos + colon]),
                value: trim_eol(&header[pos + colon + 1..end]),
                start: pos,
                end,
            });
        }
        pos = end;
    }
    out
}

fn line_end_of(bytes: &[u8], from: usize) -> usize {
    match bytes[from..].iter().position(|&b| b == b'\n') {
        Some(i) => from + i + 1,
        None => bytes.len(),
    }
}

/// `bytes` without a final CRLF or LF.
pub(crate) fn trim_eol(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// The first field called `name` (case-insensitive), unfolded and trimmed.
pub(crate) fn field_value(header: &[u8], name: &str) -> Option<Vec<u8>> {
    fields(header)
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| one_line(f.value))
}

/// `value` on one line: every run of CR, LF and other control characters
/// becomes one space, so that nothing a peer sent can start a new field.
pub(crate) fn one_line(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut in_space = false;
    for &b in value {
        let space = b.is_ascii_control() || b == b' ';
        if space {
            if !in_space && !out.is_empty() {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b);
            in_space = false;
        }
    }
    while out.last() == Some(&b' ') {
        out.pop();
    }
    out
}

/// Writes `Name: value` folded at spaces, with CRLF. The value is first put
/// on one line ([`one_line`]); a word too long for any line is cut.
pub(crate) fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    let mut len = name.len() + 1;
    let value = one_line(value);
    for word in value.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        for piece in word.chunks(LONGEST_WORD) {
            if len + 1 + piece.len() > FOLD_AT && len > name.len() + 1 {
                out.extend_from_slice(b"\r\n");
                len = 0;
            }
            out.push(b' ');
            out.extend_from_slice(piece);
            len += 1 + piece.len();
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// An RFC 5322 date in UTC: `Tue, 01 Jul 2025 09:05:03 +0000`.
pub(crate) fn rfc5322_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, for non-negative counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Counts the identifiers made by this process, so that two made in the
/// same nanosecond still differ.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A number not used before by this process.
pub(crate) fn next_sequence() -> u64 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed)
}

/// A unique Message-ID: `<seconds.nanoseconds.process.sequence@host>`.
pub(crate) fn message_id(now: SystemTime, host: &str) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!(
        "<{}.{:09}.{}.{}@{}>",
        since.as_secs(),
        since.subsec_nanos(),
        std::process::id(),
        next_sequence(),
        host
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn header_section_ends_at_the_empty_line() {
        assert_eq!(
            headers_of(b"A: b\r\nC: d\r\n\r\nbody"),
            b"A: b\r\nC: d\r\n\r\n"
        );
        assert_eq!(headers_of(b"A: b\n\nbody"), b"A: b\n\n");
        assert_eq!(headers_of(b"A: b\r\n"), b"A: b\r\n");
        assert_eq!(headers_of(b"\r\nbody"), b"\r\n");
    }

    #[test]
    fn fields_are_unfolded() {
        let h = b"Subject: one\r\n two\r\nX: y\r\n\r\n";
        assert_eq!(field_value(h, "subject").as_deref(), Some(&b"one two"[..]));
        assert_eq!(fields(h).len(), 2);
    }

    #[test]
    fn dates_are_rfc5322() {
        let t = UNIX_EPOCH + Duration::from_secs(1_751_360_703);
        assert_eq!(rfc5322_date(t), "Tue, 01 Jul 2025 09:05:03 +0000");
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn folding_keeps_lines_short() {
        let mut out = Vec::new();
        let long = "word ".repeat(100) + &"x".repeat(2000);
        push_field(&mut out, "Diagnostic-Code", long.as_bytes());
        for line in out.split(|&b| b == b'\n') {
            assert!(line.len() <= 998);
        }
        assert!(out.ends_with(b"\r\n"));
        assert_eq!(
            out.windows(2).filter(|w| w == b"\r\n").count(),
            out.iter().filter(|&&b| b == b'\n').count()
        );
    }

    #[test]
    fn message_ids_differ() {
        let now = UNIX_EPOCH + Duration::from_secs(5);
        assert_ne!(message_id(now, "h"), message_id(now, "h"));
    }
}
