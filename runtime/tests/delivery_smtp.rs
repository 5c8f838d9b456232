//! Outbound SMTP against Postfix's `smtp-sink` on loopback: the bytes
//! arrive as sent, the replies become per-recipient outcomes.

mod delivery_support;
mod dovecot;
mod ports;

use delivery_support::{client, envelope, normalized, smarthost, SmtpSink};
use mailgw_plan::TlsPolicy;
use mailgw_runtime::delivery::{Outcome, Report, Status};
use mailgw_runtime::spool::{Notify, Ret};

/// A message whose lines start with dots, with bare LF and bare CR line
/// ends and a last line without one.
const TRICKY: &[u8] =
    b"Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\nbare\n.after-lf\nx\r.after-cr\r\n\r\n.\r\nend";

fn codes(report: &Report) -> Vec<String> {
    report
        .outcomes
        .iter()
        .map(|o| match o {
            Outcome::Delivered { reply } => format!("delivered {}", reply.code),
            Outcome::Deferred(f) => format!("deferred {}", f.status),
            Outcome::Failed(f) => format!("failed {}", f.status),
        })
        .collect()
}

/// smtp-sink writes LF line ends.
fn as_dumped(message: &[u8]) -> String {
    String::from_utf8(normalized(message))
        .expect("utf-8")
        .replace("\r\n", "\n")
}

#[tokio::test]
async fn delivers_the_bytes_as_sent_with_and_without_pipelining() {
    for flags in [&[][..], &["-p"]] {
        let Some(sink) = SmtpSink::start(flags) else {
            return;
        };
        let mut env = envelope(&["b@example.net", "c@example.net"]);
        env.ret = Some(Ret::Hdrs);
        env.envid = Some("env 1".into());
        env.recipients[0].notify = Some(Notify {
            success: true,
            failure: true,
            delay: false,
        });
        env.recipients[0].orcpt = Some("rfc822;b@example.net".into());
        let report = client()
            .deliver(
                &smarthost(sink.port, TlsPolicy::Opportunistic),
                &env,
                TRICKY,
            )
            .await;
        assert_eq!(
            codes(&report),
            ["delivered 250", "delivered 250"],
            "{flags:?} {report:?}"
        );
        let remote = report.remote.expect("remote MTA");
        assert_eq!(remote.addr.port(), sink.port);
        assert_eq!(remote.name, "127.0.0.1");

        let dumps = sink.dumps(1);
        assert_eq!(dumps.len(), 1, "{flags:?}");
        let dump = &dumps[0];
        assert_eq!(dump.proto, "ESMTP");
        assert_eq!(dump.message, as_dumped(TRICKY), "{flags:?}");
        // smtp-sink offers DSN but not SIZE; 8BITMIME is not needed.
        assert_eq!(dump.mail_args, "<a@example.org> RET=HDRS ENVID=env+201");
        assert_eq!(
            dump.rcpt_args,
            [
                "<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.net",
                "<c@example.net>"
            ]
        );
    }
}

#[tokio::test]
async fn rcpt_4xx_defers_and_5xx_fails() {
    for (flag, expected, code) in [("-r", "deferred 4.3.0", 450), ("-f", "failed 5.3.0", 500)] {
        let Some(sink) = SmtpSink::start(&[flag, "rcpt"]) else {
            return;
        };
        let report = client()
            .deliver(
                &smarthost(sink.port, TlsPolicy::None),
                &envelope(&["b@x.test", "c@x.test"]),
                b"Subject: x\r\n\r\nx\r\n",
            )
            .await;
        assert_eq!(codes(&report), [expected, expected], "{report:?}");
        let (Outcome::Deferred(f) | Outcome::Failed(f)) = &report.outcomes[0] else {
            panic!("{report:?}");
        };
        assert_eq!(f.reply.as_ref().map(|r| r.code), Some(code));
        assert!(f.reason.contains("127.0.0.1"), "{}", f.reason);
        assert!(sink.dumps(0).is_empty(), "no data after every RCPT failed");
    }
}

#[tokio::test]
async fn mail_and_data_replies_apply_to_every_recipient() {
    for (args, expected) in [
        (&["-f", "mail"][..], "failed 5.3.0"),
        (&["-r", "mail"], "deferred 4.3.0"),
        (&["-f", "data"], "failed 5.3.0"),
        (&["-r", "."], "deferred 4.3.0"),
        (&["-f", "."], "failed 5.3.0"),
    ] {
        let Some(sink) = SmtpSink::start(args) else {
            return;
        };
        let report = client()
            .deliver(
                &smarthost(sink.port, TlsPolicy::None),
                &envelope(&["b@x.test", "c@x.test"]),
                b"x\r\n",
            )
            .await;
        assert_eq!(codes(&report), [expected, expected], "{args:?}");
    }
}

#[tokio::test]
async fn helo_after_ehlo_is_refused() {
    let Some(sink) = SmtpSink::start(&["-f", "ehlo"]) else {
        return;
    };
    let report = client()
        .deliver(
            &smarthost(sink.port, TlsPolicy::Opportunistic),
            &envelope(&["b@x.test"]),
            b"Subject: x\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(codes(&report), ["delivered 250"], "{report:?}");
    let dumps = sink.dumps(1);
    assert_eq!(dumps[0].proto, "SMTP");
    assert_eq!(
        dumps[0].mail_args, "<a@example.org>",
        "no ESMTP parameters after HELO"
    );
}

#[tokio::test]
async fn refused_greeting_defers() {
    let Some(sink) = SmtpSink::start(&["-f", "connect"]) else {
        return;
    };
    let report = client()
        .deliver(
            &smarthost(sink.port, TlsPolicy::None),
            &envelope(&["b@x.test"]),
            b"x\r\n",
        )
        .await;
    let [Outcome::Deferred(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.reply.as_ref().map(|r| r.code), Some(500));
    assert_eq!(f.status.class, 4);
}

#[tokio::test]
async fn eight_bit_to_a_peer_without_8bitmime_fails_with_5_6_3() {
    let Some(sink) = SmtpSink::start(&["-8"]) else {
        return;
    };
    let message = "Subject: x\r\n\r\nGrüße\r\n".as_bytes();
    let report = client()
        .deliver(
            &smarthost(sink.port, TlsPolicy::None),
            &envelope(&["b@x.test"]),
            message,
        )
        .await;
    let [Outcome::Failed(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(5, 6, 3));
    assert!(sink.dumps(0).is_empty());

    // With 8BITMIME it goes, declared.
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let report = client()
        .deliver(
            &smarthost(sink.port, TlsPolicy::None),
            &envelope(&["b@x.test"]),
            message,
        )
        .await;
    assert_eq!(codes(&report), ["delivered 250"]);
    assert_eq!(sink.dumps(1)[0].mail_args, "<a@example.org> BODY=8BITMIME");
}

#[tokio::test]
async fn require_tls_without_starttls_defers_and_sends_nothing() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let report = client()
        .deliver(
            &smarthost(sink.port, TlsPolicy::Require),
            &envelope(&["b@x.test"]),
            b"Subject: secret\r\n\r\nx\r\n",
        )
        .await;
    let [Outcome::Deferred(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(4, 7, 4));
    assert!(f.reason.contains("STARTTLS"), "{}", f.reason);
    assert!(
        sink.dumps(0).is_empty(),
        "nothing may be sent in clear text"
    );
}

#[tokio::test]
async fn no_host_listening_defers() {
    let port = ports::free_port();
    let report = client()
        .deliver(
            &smarthost(port, TlsPolicy::None),
            &envelope(&["b@x.test", "c@x.test"]),
            b"x\r\n",
        )
        .await;
    assert_eq!(codes(&report), ["deferred 4.4.1", "deferred 4.4.1"]);
    assert_eq!(report.remote, None);
}
