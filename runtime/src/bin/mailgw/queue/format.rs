//! The text of `mailgw queue list` and `show`.
//!
//! Addresses and errors come from SMTP peers: control characters are
//! escaped before they reach the terminal.

use std::fmt::Write;

use mailgw_runtime::queue::admin::Entry;

/// The table of `list`: one line per message (ID, size, age, sender),
/// indented lines for its recipients (state, address, last error), and a
/// footer with the totals.
///
/// ```text
/// ID                                  SIZE  AGE  SENDER
/// 00062a1b2c3d4e5f-0000002a-9f3c01d2  2048   5m  alice@example.org
///   deferred   bob@example.net (451 4.7.1 Try again later)
///
/// 1 message, 2048 bytes
/// ```
pub fn table(messages: &[Entry], now: u64) -> String {
    if messages.is_empty() {
        return "the queue is empty\n".into();
    }
    let rows: Vec<[String; 4]> = messages
        .iter()
        .map(|m| {
            let mut sender = sender(&m.sender);
            if m.hold {
                sender.push_str("  [on hold]");
            }
            [
                clean(&m.id),
                m.size.to_string(),
                age(now.saturating_sub(m.received_at)),
                sender,
            ]
        })
        .collect();
    let header = ["ID", "SIZE", "AGE", "SENDER"].map(String::from);
    let width = |i: usize| {
        rows.iter()
            .chain([&header])
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (id_w, size_w, age_w) = (width(0), width(1), width(2));
    let mut out = String::new();
    let line = |out: &mut String, [id, size, age, sender]: &[String; 4]| {
        let _ = writeln!(out, "{id:<id_w$}  {size:>size_w$}  {age:>age_w$}  {sender}");
    };
    line(&mut out, &header);
    for (row, m) in rows.iter().zip(messages) {
        line(&mut out, row);
        for r in &m.recipients {
            let _ = write!(out, "  {:<9}  {}", clean(&r.state), clean(&r.address));
            if let Some(error) = &r.error {
                let _ = write!(out, " ({})", clean(error));
            }
            out.push('\n');
        }
    }
    let bytes: u64 = messages.iter().map(|m| m.size).sum();
    let _ = writeln!(
        out,
        "\n{}, {}",
        count(messages.len() as u64, "message"),
        count(bytes, "byte")
    );
    out
}

/// Every field of one message, for `show`.
pub fn detail(m: &Entry, now: u64) -> String {
    let mut out = String::new();
    let next = match m.next_attempt {
        Some(t) if t > now => format!("{} (in {})", time(t), age(t - now)),
        _ => "now".into(),
    };
    let fields = [
        ("id", clean(&m.id)),
        ("sender", sender(&m.sender)),
        ("size", count(m.size, "byte")),
        (
            "received",
            format!(
                "{} ({} ago)",
                time(m.received_at),
                age(now.saturating_sub(m.received_at))
            ),
        ),
        ("attempts", m.attempts.to_string()),
        ("next attempt", next),
        ("on hold", if m.hold { "yes" } else { "no" }.into()),
    ];
    for (name, value) in fields {
        let _ = writeln!(out, "{:<14}{value}", format!("{name}:"));
    }
    out.push_str("recipients:\n");
    for r in &m.recipients {
        let _ = writeln!(out, "  {:<9}  {}", clean(&r.state), clean(&r.address));
        if let Some(error) = &r.error {
            let _ = writeln!(out, "  {:<9}  {}", "", clean(error));
        }
    }
    out
}

/// `n` and the noun, plural unless `n` is 1: "1 message", "2 bytes".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The envelope sender; `<>` for the null sender.
fn sender(sender: &str) -> String {
    if sender.is_empty() {
        "<>".into()
    } else {
        clean(sender)
    }
}

/// A duration in its largest whole unit: `45s`, `5m`, `2h`, `3d`.
fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// Seconds since the Unix epoch as `2024-05-01 12:00:00 UTC`.
fn time(unix: u64) -> String {
    let (days, rest) = (unix / 86_400, unix % 86_400);
    // Civil from days (Howard Hinnant's algorithm), for days since
    // 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// `text` with control characters escaped (`\n`, `\u{1b}`).
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_their_largest_whole_unit() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3_599, "59m"),
            (3_600, "1h"),
            (86_399, "23h"),
            (86_400, "1d"),
            (30 * 86_400 + 5, "30d"),
        ];
        for (seconds, text) in cases {
            assert_eq!(age(seconds), text, "{seconds} s");
        }
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(1_714_564_800), "2024-05-01 12:00:00 UTC");
        assert_eq!(time(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("a\r\nb\u{1b}[31m"), "a\\r\\nb\\u{1b}[31m");
        assert_eq!(clean("ünïcode"), "ünïcode");
    }

    #[test]
    fn counts_are_plural_except_one() {
        assert_eq!(count(0, "message"), "0 messages");
        assert_eq!(count(1, "byte"), "1 byte");
    }
}
