//! The queue's timing and the message size limit: `mailgw::queue::schedule`
//! and `mailgw::value`.
//!
//! A deferred message is retried after each interval of `retry` in turn; the
//! last interval then repeats until the message is `expire`d and bounced. So
//! `retry 1m, 5m, 1h` with `expire 1d` retries after 1m, 6m, 1h6m, 2h6m, ...
//! A retry that would fall at or after the expiry never happens: the message
//! has been bounced by then.
//!
//! **`mailgw::queue::schedule`**:
//! - error: the first retry falls at or after the expiry, so a message that
//!   fails once is never retried;
//! - warning: later intervals of the schedule fall at or after the expiry and
//!   are never used (pointed at the first of them);
//! - warning: `warn-after` is at or after `expire`, so the delay warning is
//!   never sent.
//!
//! Without `expire` none of these apply. Intervals need not increase: a
//! schedule like `5m, 5m, 1h` is fine.
//!
//! **`mailgw::value`**:
//! - error: a retry interval of `0s` retries at once, again and again,
//!   hammering the next hop; an `expire` of `0s` bounces every message at its
//!   first temporary failure;
//! - error: `max-message-size 0` refuses every message;
//! - warning: a `max-message-size` over 2 GiB: no server on the internet
//!   accepts such messages, and each one is held whole in the spool.

use super::Context;
use crate::diagnostic::{Code, Diagnostic, Label};

/// Above this, `max-message-size` is surely a mistake.
const LARGEST_SENSIBLE_MESSAGE: u64 = 2 << 30;

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    if let Some(size) = cx
        .config
        .gateway
        .as_ref()
        .and_then(|g| g.max_message_size.as_ref())
    {
        if size.value == 0 {
            found.push(
                Diagnostic::error(
                    Code::Value,
                    "a maximum message size of 0 refuses every message",
                    Label::new(size.span, "nothing fits"),
                )
                .with_help("most gateways use `max-message-size 25MB` to `50MB`"),
            );
        } else if size.value > LARGEST_SENSIBLE_MESSAGE {
            found.push(
                Diagnostic::warning(
                    Code::Value,
                    "a maximum message size over 2 GiB is larger than any server on the internet accepts, \
                     and every message is held whole in the spool",
                    Label::new(size.span, "over 2 GiB"),
                )
                .with_help("most gateways use `max-message-size 25MB` to `50MB`"),
            );
        }
    }
    if let Some(queue) = &cx.config.queue {
        for interval in queue.retry.iter().filter(|r| r.value == 0) {
            found.push(
                Diagnostic::error(
                    Code::Value,
                    "a retry interval of 0 retries at once, again and again, hammering the next hop",
                    Label::new(interval.span, "no pause"),
                )
                .with_help("retry after a pause that grows, e.g. `retry 1m, 5m, 15m, 1h, 4h`"),
            );
        }
        if let Some(expire) = &queue.expire {
            if expire.value == 0 {
                found.push(
                    Diagnostic::error(
                        Code::Value,
                        "an expiry of 0 bounces every message at its first temporary failure",
                        Label::new(expire.span, "expires at once"),
                    )
                    .with_help("keep messages for a few days: `expire 5d`"),
                );
            } else {
                let expire_label = Label::new(expire.span, "messages expire here");
                let mut at = 0u64;
                for (index, interval) in queue.retry.iter().enumerate() {
                    at = at.saturating_add(interval.value);
                    if at < expire.value {
                        continue;
                    }
                    let diagnostic = if index == 0 {
                        Diagnostic::error(
                            Code::QueueSchedule,
                            "the first retry comes at or after the expiry: a message that fails once is \
                             never retried and bounces",
                            Label::new(interval.span, "first retry"),
                        )
                        .with_help("make the first retry interval much shorter than `expire`, e.g. `1m`")
                    } else {
                        Diagnostic::warning(
                            Code::QueueSchedule,
                            format!(
                                "the retries from this one on come at or after the expiry ({} after the \
                                 message arrived): they never happen",
                                human(at)
                            ),
                            Label::new(interval.span, "after the expiry"),
                        )
                        .with_help("shorten the schedule, or raise `expire`")
                    };
                    found.push(diagnostic.with_label(expire_label.clone()));
                    break;
                }
                if let Some(warn) = queue
                    .warn_after
                    .as_ref()
                    .filter(|w| w.value >= expire.value)
                {
                    found.push(
                        Diagnostic::warning(
                            Code::QueueSchedule,
                            "the delay warning would never be sent: messages expire before it is due",
                            Label::new(warn.span, "at or after the expiry"),
                        )
                        .with_label(expire_label)
                        .with_help("warn well before the expiry, e.g. `warn-after 4h` with `expire 5d`"),
                    );
                }
            }
        }
    }
    for diagnostic in found {
        cx.report(diagnostic);
    }
}

/// A number of seconds the way people say it: `1d 2h`, `6m`, `30s`.
fn human(seconds: u64) -> String {
    let parts = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut left = seconds;
    let mut out = Vec::new();
    for (unit, name) in parts {
        if left >= unit {
            out.push(format!("{}{name}", left / unit));
            left %= unit;
        }
    }
    if out.is_empty() {
        "0s".to_owned()
    } else {
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::at;
    use crate::checks::testing::{findings, with_code};
    use crate::diagnostic::Severity;

    #[test]
    fn a_sane_schedule_is_fine() {
        let t = "gateway { max-message-size 25MB }\n\
                 queue { retry 1m, 5m, 5m, 1h, 4h; warn-after 4h; expire 5d }";
        let mine = |t: &str| {
            let mut found = with_code(t, Code::QueueSchedule);
            found.extend(with_code(t, Code::Value));
            found
        };
        assert!(mine(t).is_empty(), "{:?}", findings(t));
        let t = "queue { retry 1d; warn-after 10d }";
        assert!(mine(t).is_empty(), "no expire: {:?}", findings(t));
    }

    #[test]
    fn first_retry_after_expiry_is_an_error() {
        let t = "queue { retry 2d, 4d; expire 1d }";
        let found = with_code(t, Code::QueueSchedule);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Error);
        assert_eq!(at(t, &found[0]), "2d");
        assert_eq!(found[0].secondary.len(), 1);
    }

    #[test]
    fn later_retries_after_expiry_are_a_warning() {
        let t = "queue { retry 1h, 12h, 12h, 1d; expire 1d }";
        let found = with_code(t, Code::QueueSchedule);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        let start = t.find("12h, 1d").expect("the third interval");
        assert_eq!(found[0].primary.span.start as usize, start);
        assert!(found[0].message.contains("1d 1h"), "{}", found[0].message);
    }

    #[test]
    fn warning_after_expiry() {
        let t = "queue { retry 1m; warn-after 5d; expire 5d }";
        let found = with_code(t, Code::QueueSchedule);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(t, &found[0]), "5d");
        assert_eq!(Some(found[0].primary.span.start as usize), t.find("5d"));
    }

    #[test]
    fn zero_values() {
        let t = "gateway { max-message-size 0MB }\nqueue { retry 1m, 0s; expire 0s }";
        let found = with_code(t, Code::Value);
        let spans: Vec<String> = found.iter().map(|d| at(t, d)).collect();
        assert_eq!(spans, ["0MB", "0s", "0s"]);
        assert!(found.iter().all(|d| d.severity == Severity::Error));
    }

    #[test]
    fn huge_message_size() {
        let t = "gateway { max-message-size 3GiB }";
        let found = with_code(t, Code::Value);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(with_code("gateway { max-message-size 2GiB }", Code::Value).is_empty());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(90_000), "1d 1h");
        assert_eq!(human(360), "6m");
    }
}
