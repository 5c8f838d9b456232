//! The `MAIL FROM` and `RCPT TO` command lines with their parameters.

use std::fmt::Write as _;

use crate::spool::{Notify, Ret};

use super::capabilities::Capabilities;
use super::envelope::{Envelope, Recipient};

/// Whether `address` can go into a command line: no control characters,
/// no angle brackets. The server's parser guarantees it for mail it took;
/// this keeps anything else from injecting a command.
pub(crate) fn is_safe_address(address: &str) -> bool {
    !address
        .chars()
        .any(|c| c.is_control() || c == '<' || c == '>')
}

/// `MAIL FROM:<sender>` with the parameters the peer understands.
pub(crate) fn mail(
    envelope: &Envelope,
    caps: &Capabilities,
    size: usize,
    eight_bit: bool,
) -> String {
    let mut line = format!("MAIL FROM:<{}>", envelope.sender.as_deref().unwrap_or(""));
    if caps.size.is_some() {
        let _ = write!(line, " SIZE={size}");
    }
    if caps.eight_bit_mime && (eight_bit || envelope.body == crate::spool::BodyType::EightBitMime) {
        line.push_str(" BODY=8BITMIME");
    }
    if caps.smtputf8 && envelope.smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    if caps.dsn {
        match envelope.ret {
            Some(Ret::Full) => line.push_str(" RET=FULL"),
            Some(Ret::Hdrs) => line.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = &envelope.envid {
            let _ = write!(line, " ENVID={}", xtext(envid));
        }
    }
    line.push_str("\r\n");
    line
}

/// `RCPT TO:<address>` with `NOTIFY` and `ORCPT` when the peer has `DSN`.
pub(crate) fn rcpt(recipient: &Recipient, caps: &Capabilities) -> String {
    let mut line = format!("RCPT TO:<{}>", recipient.address);
    if caps.dsn {
        if let Some(notify) = recipient.notify {
            let _ = write!(line, " NOTIFY={}", notify_value(notify));
        }
        if let Some((kind, address)) = recipient.orcpt.as_deref().and_then(|o| o.split_once(';')) {
            if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                let _ = write!(line, " ORCPT={kind};{}", xtext(address));
            }
        }
    }
    line.push_str("\r\n");
    line
}

fn notify_value(notify: Notify) -> String {
    let words: Vec<&str> = [
        (notify.success, "SUCCESS"),
        (notify.failure, "FAILURE"),
        (notify.delay, "DELAY"),
    ]
    .into_iter()
    .filter_map(|(on, word)| on.then_some(word))
    .collect();
    if words.is_empty() {
        "NEVER".to_owned()
    } else {
        words.join(",")
    }
}

/// RFC 3461 xtext: printable ASCII but `+` and `=` as is, every other
/// octet as `+HH`.
pub(crate) fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::BodyType;

    fn envelope() -> Envelope {
        Envelope {
            sender: Some("a@example.org".into()),
            ret: Some(Ret::Hdrs),
            envid: Some("id+1 x".into()),
            body: BodyType::SevenBit,
            smtputf8: true,
            recipients: vec![Recipient {
                address: "b@example.net".into(),
                notify: Some(Notify {
                    success: true,
                    failure: true,
                    delay: false,
                }),
                orcpt: Some("rfc822;b=c@example.net".into()),
            }],
        }
    }

    #[test]
    fn parameters_only_for_what_the_peer_offers() {
        let env = envelope();
        let none = Capabilities::default();
        assert_eq!(mail(&env, &none, 10, true), "MAIL FROM:<a@example.org>\r\n");
        assert_eq!(
            rcpt(&env.recipients[0], &none),
            "RCPT TO:<b@example.net>\r\n"
        );

        let all = Capabilities {
            size: Some(0),
            eight_bit_mime: true,
            smtputf8: true,
            dsn: true,
            ..Capabilities::default()
        };
        assert_eq!(
            mail(&env, &all, 10, true),
            "MAIL FROM:<a@example.org> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+20x\r\n"
        );
        assert_eq!(
            rcpt(&env.recipients[0], &all),
            "RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+3Dc@example.net\r\n"
        );
        let null = Envelope {
            sender: None,
            ..env
        };
        assert!(mail(&null, &none, 1, false).starts_with("MAIL FROM:<>"));
        assert_eq!(notify_value(Notify::default()), "NEVER");
    }

    #[test]
    fn unsafe_addresses() {
        assert!(is_safe_address("\"a b\"@example.org"));
        assert!(!is_safe_address("a@example.org>\r\nRCPT TO:<x@y"));
        assert!(!is_safe_address("a\n@x"));
    }
}
