//! LMTP (RFC 2033) to Dovecot: one reply per recipient after the data,
//! STARTTLS with the backend's CA file.

mod delivery_support;
mod dovecot;
mod ports;

use std::io::Write;

use delivery_support::{client, envelope, normalized};
use dovecot::Dovecot;
use mailgw_plan::{Endpoint, EndpointTls};
use mailgw_runtime::delivery::{LmtpHop, NextHop, Outcome};

/// Dovecot looks users up by local part, as the gateway's backends do.
const BY_LOCAL_PART: &str = "auth_username_format = %Ln";

fn lmtp(port: u16, tls: EndpointTls, ca: Option<&tempfile::NamedTempFile>) -> NextHop {
    NextHop::Lmtp(LmtpHop {
        host: "127.0.0.1".into(),
        endpoint: Endpoint { port, tls },
        ca: ca.map(|f| f.path().to_owned()),
    })
}

#[tokio::test]
async fn delivers_into_the_maildirs_and_fails_the_unknown_user_alone() {
    let Some(dovecot) = Dovecot::builder()
        .user("alice", "pw")
        .user("bob", "pw")
        .extra(BY_LOCAL_PART)
        .start()
    else {
        return;
    };
    let message = b"Subject: lmtp\r\n\r\n.dot line\r\nbare\nend\r\n";
    let env = envelope(&["alice@x.test", "nobody@x.test", "bob@x.test"]);
    let report = client()
        .deliver(&lmtp(dovecot.lmtp, EndpointTls::None, None), &env, message)
        .await;
    let [Outcome::Delivered { reply: a }, Outcome::Failed(nobody), Outcome::Delivered { reply: b }] =
        &report.outcomes[..]
    else {
        panic!("{report:?}\n{}", dovecot.log());
    };
    assert_eq!((a.code, b.code), (250, 250));
    assert_eq!(
        nobody.reply.as_ref().map(|r| r.code),
        Some(550),
        "{nobody:?}"
    );
    assert_eq!(nobody.status.to_string(), "5.1.1");
    assert_eq!(report.remote.expect("remote").addr.port(), dovecot.lmtp);

    for user in ["alice", "bob"] {
        let messages = dovecot.messages(user);
        assert_eq!(messages.len(), 1, "{user}");
        // Dovecot adds its own header lines on top and stores LF line ends.
        let stored = String::from_utf8_lossy(&normalized(message)).replace("\r\n", "\n");
        assert!(
            messages[0].ends_with(stored.as_bytes()),
            "{user}: {}",
            String::from_utf8_lossy(&messages[0])
        );
    }
    assert!(dovecot.messages("nobody").is_empty());
}

#[tokio::test]
async fn starttls_with_the_backends_ca() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let (cert, key) = (certified.cert.pem(), certified.key_pair.serialize_pem());
    let Some(dovecot) = Dovecot::builder()
        .user("alice", "pw")
        .tls(&cert, &key)
        .extra(BY_LOCAL_PART)
        .start()
    else {
        return;
    };
    let mut ca = tempfile::NamedTempFile::new().expect("temporary file");
    ca.write_all(cert.as_bytes()).expect("write CA");
    let message = b"Subject: over tls\r\n\r\nsecret\r\n";

    let report = client()
        .deliver(
            &lmtp(dovecot.lmtp, EndpointTls::StartTls, Some(&ca)),
            &envelope(&["alice@x.test"]),
            message,
        )
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
        "{report:?}\n{}",
        dovecot.log()
    );
    assert_eq!(dovecot.messages("alice").len(), 1);

    // Without the CA the certificate is not trusted: deferred, not sent.
    let report = client()
        .deliver(
            &lmtp(dovecot.lmtp, EndpointTls::StartTls, None),
            &envelope(&["alice@x.test"]),
            message,
        )
        .await;
    let [Outcome::Deferred(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status.to_string(), "4.7.5", "{}", f.reason);
    assert_eq!(dovecot.messages("alice").len(), 1);
}

#[tokio::test]
async fn implicit_tls() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let (cert, key) = (certified.cert.pem(), certified.key_pair.serialize_pem());
    let lmtps = ports::free_port();
    let Some(dovecot) = Dovecot::builder()
        .user("alice", "pw")
        .tls(&cert, &key)
        .extra(BY_LOCAL_PART)
        .extra(&format!(
            "service lmtp {{\n  inet_listener lmtps {{\n    address = 127.0.0.1\n    port = {lmtps}\n    ssl = yes\n  }}\n}}"
        ))
        .start()
    else {
        return;
    };
    let mut ca = tempfile::NamedTempFile::new().expect("temporary file");
    ca.write_all(cert.as_bytes()).expect("write CA");
    let report = client()
        .deliver(
            &lmtp(lmtps, EndpointTls::Implicit, Some(&ca)),
            &envelope(&["alice@x.test"]),
            b"Subject: implicit\r\n\r\nx\r\n",
        )
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
        "{report:?}\n{}",
        dovecot.log()
    );
    assert_eq!(dovecot.messages("alice").len(), 1);
}
