//! Outbound SMTP against a scripted tokio + rustls peer on loopback:
//! STARTTLS by policy, certificate checks, AUTH, SIZE, per-recipient
//! replies, timeouts.

mod delivery_support;
mod dovecot;
mod ports;

use std::io::Write;
use std::time::Duration;

use delivery_support::peer::{self, Script};
use delivery_support::{client, envelope, normalized, timeouts};
use mailgw_plan::TlsPolicy;
use mailgw_runtime::delivery::{
    Client, NextHop, Outcome, Resolver, SmtpCredentials, SmtpHop, Status, Target,
};
use mailgw_runtime::smtp::Password;

const MESSAGE: &[u8] = b"Subject: hi\r\n\r\n.dot\r\nbare\n.lf\r\n";

fn hop(port: u16, tls: TlsPolicy, ca: Option<&tempfile::NamedTempFile>) -> SmtpHop {
    SmtpHop {
        target: Target::Host {
            host: "localhost".into(),
            port,
        },
        tls,
        credentials: None,
        ca: ca.map(|f| f.path().to_owned()),
    }
}

fn ca_file(pem: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(pem.as_bytes()).expect("write CA");
    file
}

fn tls_script() -> (Script, String) {
    let (config, pem) = peer::certificate();
    let script = Script {
        tls: Some(config),
        ..Script::default()
    };
    (script, pem)
}

#[tokio::test]
async fn require_with_a_trusted_certificate_sends_everything_over_tls() {
    let (script, pem) = tls_script();
    let (port, seen) = peer::spawn(script).await;
    let ca = ca_file(&pem);
    let hop = NextHop::Smtp(hop(port, TlsPolicy::Require, Some(&ca)));
    let report = client()
        .deliver(&hop, &envelope(&["b@x.test"]), MESSAGE)
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
        "{report:?}"
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen.verbs(),
        ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    );
    assert!(
        seen.commands.iter().skip(2).all(|(tls, _)| *tls),
        "after STARTTLS everything is encrypted: {seen:?}"
    );
    // The raw data: CRLF only, dot-stuffed, ended once.
    assert_eq!(
        seen.data,
        [b"Subject: hi\r\n\r\n..dot\r\nbare\r\n..lf\r\n.\r\n".to_vec()]
    );
    assert_eq!(
        normalized(MESSAGE),
        b"Subject: hi\r\n\r\n.dot\r\nbare\r\n.lf\r\n"
    );
}

#[tokio::test]
async fn require_with_an_untrusted_certificate_defers_before_mail() {
    let (script, _) = tls_script();
    let (port, seen) = peer::spawn(script).await;
    let hop = NextHop::Smtp(hop(port, TlsPolicy::Require, None));
    let report = client()
        .deliver(&hop, &envelope(&["b@x.test"]), MESSAGE)
        .await;
    let [Outcome::Deferred(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(4, 7, 5), "{}", f.reason);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.verbs(), ["EHLO", "STARTTLS"]);
}

#[tokio::test]
async fn opportunistic_encrypts_with_any_certificate_and_goes_plain_without_starttls() {
    let (script, _) = tls_script();
    let (port, seen) = peer::spawn(script).await;
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::Opportunistic, None)),
            &envelope(&["b@x.test"]),
            MESSAGE,
        )
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
        "{report:?}"
    );
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.commands
            .iter()
            .any(|(tls, c)| *tls && c.starts_with("MAIL")),
        "{seen:?}"
    );

    let (port, seen) = peer::spawn(Script::default()).await;
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::Opportunistic, None)),
            &envelope(&["b@x.test"]),
            MESSAGE,
        )
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
        "{report:?}"
    );
    assert_eq!(
        seen.lock().expect("lock").verbs(),
        ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    );
}

#[tokio::test]
async fn clear_text_sent_before_the_handshake_is_discarded() {
    let (mut script, pem) = tls_script();
    // Read as the answer to the EHLO after TLS, this would end the session.
    script.after_starttls = "421 4.3.0 injected\r\n";
    let (port, seen) = peer::spawn(script).await;
    let ca = ca_file(&pem);
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::Require, Some(&ca))),
            &envelope(&["b@x.test"]),
            MESSAGE,
        )
        .await;
    // The injected bytes either are dropped unread or break the handshake;
    // never are they taken as a reply.
    match &report.outcomes[..] {
        [Outcome::Delivered { .. }] => {
            assert_eq!(seen.lock().expect("lock").verbs()[2], "EHLO");
        }
        [Outcome::Deferred(f)] => assert_eq!(f.status, Status::new(4, 7, 5), "{}", f.reason),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn auth_plain_and_login_over_tls_only() {
    let credentials = SmtpCredentials {
        user: "gateway".into(),
        password: Password::new("s3cret pw".into()),
    };
    for (mechanism, expected) in [
        ("AUTH PLAIN LOGIN", vec!["\0gateway\0s3cret pw".to_owned()]),
        (
            "AUTH LOGIN",
            vec!["gateway".to_owned(), "s3cret pw".to_owned()],
        ),
    ] {
        let (mut script, pem) = tls_script();
        script.extensions.push(mechanism);
        let (port, seen) = peer::spawn(script).await;
        let ca = ca_file(&pem);
        let mut smtp = hop(port, TlsPolicy::Require, Some(&ca));
        smtp.credentials = Some(credentials.clone());
        let report = client()
            .deliver(&NextHop::Smtp(smtp), &envelope(&["b@x.test"]), MESSAGE)
            .await;
        assert!(
            matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
            "{report:?}"
        );
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.auth, expected, "{mechanism}");
        assert!(seen.commands.iter().any(|(tls, c)| *tls && c == "AUTH"));
    }

    // Refused login: deferred, no MAIL.
    let (mut script, pem) = tls_script();
    script.extensions.push("AUTH PLAIN");
    script.auth = "535 5.7.8 bad credentials";
    let (port, seen) = peer::spawn(script).await;
    let ca = ca_file(&pem);
    let mut smtp = hop(port, TlsPolicy::Require, Some(&ca));
    smtp.credentials = Some(credentials.clone());
    let report = client()
        .deliver(&NextHop::Smtp(smtp), &envelope(&["b@x.test"]), MESSAGE)
        .await;
    let [Outcome::Deferred(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(4, 7, 8));
    assert!(!f.reason.contains("s3cret"));
    assert!(!seen
        .lock()
        .expect("lock")
        .verbs()
        .contains(&"MAIL".to_owned()));

    // Credentials never go in clear text.
    let mut script = Script::default();
    script.extensions.push("AUTH PLAIN");
    let (port, seen) = peer::spawn(script).await;
    let mut smtp = hop(port, TlsPolicy::Opportunistic, None);
    smtp.credentials = Some(credentials);
    let report = client()
        .deliver(&NextHop::Smtp(smtp), &envelope(&["b@x.test"]), MESSAGE)
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Deferred(_)]),
        "{report:?}"
    );
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.auth.is_empty() && !seen.verbs().contains(&"MAIL".to_owned()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn each_recipient_gets_its_own_reply() {
    for pipelining in [true, false] {
        let mut script = Script {
            rcpt: |address| match address {
                "later@x.test" => "452 4.2.2 mailbox full",
                "nobody@x.test" => "550 5.1.1 no such user",
                _ => "250 2.1.5 ok",
            },
            ..Script::default()
        };
        if !pipelining {
            script.extensions.retain(|e| *e != "PIPELINING");
        }
        let (port, seen) = peer::spawn(script).await;
        let env = envelope(&["b@x.test", "later@x.test", "nobody@x.test", "c@x.test"]);
        let report = client()
            .deliver(
                &NextHop::Smtp(hop(port, TlsPolicy::None, None)),
                &env,
                MESSAGE,
            )
            .await;
        let summary: Vec<String> = report
            .outcomes
            .iter()
            .map(|o| match o {
                Outcome::Delivered { reply } => format!("delivered {reply}"),
                Outcome::Deferred(f) => format!("deferred {}", f.status),
                Outcome::Failed(f) => format!("failed {}", f.status),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "delivered 250 2.0.0 queued",
                "deferred 4.2.2",
                "failed 5.1.1",
                "delivered 250 2.0.0 queued"
            ],
            "pipelining {pipelining}"
        );
        assert_eq!(seen.lock().expect("lock").data.len(), 1);
    }
}

#[tokio::test]
async fn a_message_over_the_peers_size_fails_with_5_3_4() {
    let mut script = Script::default();
    script.extensions.push("SIZE 20");
    let (port, seen) = peer::spawn(script).await;
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::None, None)),
            &envelope(&["b@x.test"]),
            MESSAGE,
        )
        .await;
    let [Outcome::Failed(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(5, 3, 4));
    assert!(!seen
        .lock()
        .expect("lock")
        .verbs()
        .contains(&"MAIL".to_owned()));

    // Within the limit, SIZE= is declared.
    let mut script = Script::default();
    script.extensions.push("SIZE 1000");
    let (port, seen) = peer::spawn(script).await;
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::None, None)),
            &envelope(&["b@x.test"]),
            MESSAGE,
        )
        .await;
    assert!(matches!(report.outcomes[..], [Outcome::Delivered { .. }]));
    let seen = seen.lock().expect("lock").clone();
    let mail = seen
        .commands
        .iter()
        .find(|(_, c)| c.starts_with("MAIL"))
        .expect("MAIL");
    assert_eq!(
        mail.1,
        format!("MAIL FROM:<a@example.org> SIZE={}", MESSAGE.len())
    );
}

#[tokio::test]
async fn a_silent_peer_times_out_and_defers() {
    let (port, _seen) = peer::spawn(Script {
        greeting: None,
        ..Script::default()
    })
    .await;
    let mut limits = timeouts();
    limits.greeting = Duration::from_millis(300);
    let resolver = Resolver::new(&mailgw_plan::Dns {
        servers: vec!["127.0.0.1:9".parse().expect("address")],
    })
    .expect("resolver");
    let client = Client::with_parts("gw.test", resolver, limits);
    let started = std::time::Instant::now();
    let report = client
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::None, None)),
            &envelope(&["b@x.test"]),
            MESSAGE,
        )
        .await;
    let [Outcome::Deferred(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(4, 4, 2));
    assert!(
        f.reason.contains("timed out waiting for the greeting"),
        "{}",
        f.reason
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn many_recipients_are_pipelined_in_groups_with_replies_in_order() {
    let script = Script {
        rcpt: |address| {
            if address.starts_with("fail") {
                "550 5.1.1 no such user"
            } else {
                "250 2.1.5 ok"
            }
        },
        ..Script::default()
    };
    let (port, seen) = peer::spawn(script).await;
    let addresses: Vec<String> = (0..250)
        .map(|i| {
            if i % 3 == 0 {
                format!("fail{i}@x.test")
            } else {
                format!("ok{i}@x.test")
            }
        })
        .collect();
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::None, None)),
            &envelope(&refs),
            MESSAGE,
        )
        .await;
    for (i, outcome) in report.outcomes.iter().enumerate() {
        match outcome {
            Outcome::Failed(f) if i % 3 == 0 => assert_eq!(f.status, Status::new(5, 1, 1)),
            Outcome::Delivered { .. } if i % 3 != 0 => {}
            other => panic!("recipient {i}: {other:?}"),
        }
    }
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.verbs().iter().filter(|v| *v == "RCPT").count(), 250);
    assert_eq!(seen.data.len(), 1);
}

#[tokio::test]
async fn addresses_that_could_inject_commands_are_failed_alone() {
    let (port, seen) = peer::spawn(Script::default()).await;
    let env = envelope(&["x@y.test>\r\nRSET\r\nRCPT TO:<z@y.test", "b@x.test"]);
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::None, None)),
            &env,
            MESSAGE,
        )
        .await;
    let [Outcome::Failed(f), Outcome::Delivered { .. }] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(5, 1, 3));
    let verbs = seen.lock().expect("lock").verbs();
    assert_eq!(verbs, ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]);
}

#[tokio::test]
async fn smtputf8_is_passed_on_or_the_message_fails_with_5_6_7() {
    let mut env = envelope(&["jörg@x.test"]);
    env.smtputf8 = true;
    let message = "Subject: Grüße\r\n\r\nx\r\n".as_bytes();

    let (port, seen) = peer::spawn(Script::default()).await;
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::None, None)),
            &env,
            message,
        )
        .await;
    let [Outcome::Failed(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(5, 6, 7));
    assert!(!seen
        .lock()
        .expect("lock")
        .verbs()
        .contains(&"MAIL".to_owned()));

    let mut script = Script::default();
    script.extensions.push("SMTPUTF8");
    let (port, seen) = peer::spawn(script).await;
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::None, None)),
            &env,
            message,
        )
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
        "{report:?}"
    );
    let seen = seen.lock().expect("lock").clone();
    let mail = seen
        .commands
        .iter()
        .find(|(_, c)| c.starts_with("MAIL"))
        .expect("MAIL");
    assert_eq!(mail.1, "MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8");
}

/// Collects log output.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_login_is_never_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (mut script, pem) = tls_script();
    script.extensions.push("AUTH LOGIN PLAIN");
    let (port, _seen) = peer::spawn(script).await;
    let ca = ca_file(&pem);
    let mut smtp = hop(port, TlsPolicy::Require, Some(&ca));
    smtp.credentials = Some(SmtpCredentials {
        user: "gateway".into(),
        password: Password::new("s3cret-pw".into()),
    });
    let report = client()
        .deliver(&NextHop::Smtp(smtp), &envelope(&["b@x.test"]), MESSAGE)
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
        "{report:?}"
    );

    let logged = String::from_utf8_lossy(&capture.0.lock().expect("lock")).into_owned();
    assert!(
        logged.contains("localhost") && logged.contains("250"),
        "{logged}"
    );
    let token = mailgw_runtime::smtp::auth::encode_base64(b"\0gateway\0s3cret-pw");
    for secret in ["s3cret-pw", token.as_str()] {
        assert!(!logged.contains(secret), "{secret} in {logged}");
    }
}

#[tokio::test]
async fn a_failed_opportunistic_handshake_retries_in_clear_text_but_require_defers() {
    let (mut script, pem) = tls_script();
    script.broken_tls = true;
    let (port, seen) = peer::spawn(script.clone()).await;
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::Opportunistic, None)),
            &envelope(&["b@x.test"]),
            MESSAGE,
        )
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
        "{report:?}"
    );
    assert_eq!(
        seen.lock().expect("lock").verbs(),
        ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    );

    let (port, seen) = peer::spawn(script).await;
    let ca = ca_file(&pem);
    let report = client()
        .deliver(
            &NextHop::Smtp(hop(port, TlsPolicy::Require, Some(&ca))),
            &envelope(&["b@x.test"]),
            MESSAGE,
        )
        .await;
    let [Outcome::Deferred(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(4, 7, 5), "{}", f.reason);
    assert_eq!(seen.lock().expect("lock").verbs(), ["EHLO", "STARTTLS"]);
}

#[tokio::test]
async fn a_connection_is_reused_for_the_next_message_then_closed_when_idle() {
    let (script, pem) = tls_script();
    let (port, seen) = peer::spawn(script).await;
    let ca = ca_file(&pem);
    let hop = NextHop::Smtp(hop(port, TlsPolicy::Require, Some(&ca)));
    let client = client().reusing_connections();
    for rcpt in ["a@x.test", "b@x.test"] {
        let report = client.deliver(&hop, &envelope(&[rcpt]), MESSAGE).await;
        assert!(
            matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
            "{report:?}"
        );
    }
    let verbs = seen.lock().expect("lock").clone().verbs();
    assert_eq!(
        verbs,
        ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA"],
        "one connection, one TLS handshake, the next transaction at once"
    );
    // Unused for two seconds, it is closed politely.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.verbs().last().map(String::as_str), Some("QUIT"));
    assert!(
        seen.commands.iter().skip(2).all(|(tls, _)| *tls),
        "{seen:?}"
    );
}

/// A kept connection the host closed meanwhile, silently or with a `421`:
/// the next message goes over a new connection and is delivered once.
#[tokio::test]
async fn a_kept_connection_the_host_closed_is_replaced() {
    for hang_up in ["", "421 4.4.2 peer.test closing idle connection"] {
        let script = Script {
            hang_up: Some(hang_up),
            ..Script::default()
        };
        let (port, seen) = peer::spawn(script).await;
        let hop = NextHop::Smtp(hop(port, TlsPolicy::None, None));
        let client = client().reusing_connections();
        for rcpt in ["a@x.test", "b@x.test"] {
            let report = client.deliver(&hop, &envelope(&[rcpt]), MESSAGE).await;
            assert!(
                matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
                "{hang_up:?}: {report:?}"
            );
        }
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.data.len(), 2, "{hang_up:?}: each message once");
        assert_eq!(
            seen.verbs().iter().filter(|v| *v == "EHLO").count(),
            2,
            "{hang_up:?}: a new session for the second message: {seen:?}"
        );
    }
}
