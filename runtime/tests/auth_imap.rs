//! Verification by logging in to the backend over IMAP, against a real
//! Dovecot started for the test (skipped with a message when `dovecot` is
//! not installed; `scripts/test` installs it).

mod dovecot;
mod ports;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use mailgw_plan::{
    Backend, Endpoint, EndpointTls, Mailbox, Plan, RecipientTable, SourceRef, Target, Verify,
};
use mailgw_runtime::auth::{Authenticator, Verdict};

use dovecot::{test_pki, Dovecot};
use ports::free_port;

/// Passwords that would break a quoted string or inject a command.
/// Dovecot refuses CR and LF in passwords ("password having illegal
/// chars"), so those arrive intact but can never log in.
const NASTY: &[(&str, &str)] = &[
    ("plain", "plain-pass"),
    ("quote", "a\"b\\c"),
    ("utf8", "pässwörd ✓ 密码"),
    ("braces", " {5}\\ ( ) \"\"*%"),
];

/// A password with CRLF that, sent as a quoted string or unchecked
/// literal, would log in as `plain`.
const CRLF: &str = "x\r\nb LOGOUT\r\nc LOGIN plain plain-pass";

fn client() -> IpAddr {
    IpAddr::from([192, 0, 2, 9])
}

/// A plan with one backend at `port` and the mailboxes `names`, each with
/// the address `NAME@example.test`, verified over IMAP.
fn plan(port: u16, tls: EndpointTls, names: &[&str]) -> Arc<Plan> {
    plan_with_ca(port, tls, None, names)
}

/// Like [`plan`], trusting the CA certificate in the file `ca`.
fn plan_with_ca(port: u16, tls: EndpointTls, ca: Option<String>, names: &[&str]) -> Arc<Plan> {
    let mut plan = Plan::empty("mx.example.test");
    plan.auth.verify = Verify::BackendImap;
    plan.backends.push(Backend {
        name: "store".into(),
        host: "127.0.0.1".into(),
        imap: Some(Endpoint { port, tls }),
        pop3: None,
        lmtp: None,
        smtp: None,
        forward_client: false,
        ca,
        source: SourceRef::new(0, 1),
    });
    let mut entries = Vec::new();
    for (index, name) in names.iter().enumerate() {
        plan.mailboxes.push(Mailbox {
            name,
            backend: 0,
            password_hash: None,
            source: SourceRef::new(0, 2),
        });
        entries.push((
            format!("{name}@example.test"),
            Target::Mailbox(index as u32),
        ));
    }
    plan.recipients = RecipientTable::build(entries).expect("distinct addresses");
    Arc::new(plan)
}

#[tokio::test]
async fn dovecot_checks_nasty_passwords_sent_as_literals() {
    let mut users = NASTY.to_vec();
    users.push(("crlf", CRLF));
    let Some(dovecot) = Dovecot::start(&users) else {
        return;
    };
    let names: Vec<&str> = users.iter().map(|(user, _)| *user).collect();
    let auth = Authenticator::new(plan(dovecot.port, EndpointTls::None, &names));
    for (index, (user, password)) in NASTY.iter().enumerate() {
        let mailbox = index as u32;
        assert_eq!(
            auth.verify(user, password, client()).await,
            Verdict::Accepted { mailbox },
            "{user}: {}",
            dovecot.log()
        );
        let by_address = format!("{user}@example.test");
        assert_eq!(
            auth.verify(&by_address, password, client()).await,
            Verdict::Accepted { mailbox },
            "{by_address}"
        );
        let wrong = format!("{password}x");
        assert_eq!(
            auth.verify(user, &wrong, client()).await,
            Verdict::Rejected,
            "{user}"
        );
    }
    // The CRLF password reaches Dovecot whole, as one password (which it
    // refuses), and logs nobody in as `plain`.
    let logins_as_plain = dovecot.log().matches("Login: user=<plain>").count();
    assert_eq!(auth.verify("crlf", CRLF, client()).await, Verdict::Rejected);
    let injection = "x\r\na LOGIN plain plain-pass";
    assert_eq!(
        auth.verify("quote", injection, client()).await,
        Verdict::Rejected
    );
    let log = dovecot.log();
    assert!(log.contains("password having illegal chars"), "{log}");
    assert_eq!(
        log.matches("Login: user=<plain>").count(),
        logins_as_plain,
        "{log}"
    );
    assert_eq!(
        auth.verify("nobody", "plain-pass", client()).await,
        Verdict::Rejected
    );
    // A success clears the count: the last user's wrong password and the
    // three above.
    assert_eq!(auth.failures(client()), 4);
    // Every session ended with LOGOUT, not a dropped connection (the
    // readiness probes of `Dovecot::start` log `user=<>`).
    let log = dovecot.log();
    let dropped = log
        .lines()
        .filter(|l| l.contains("imap-login") && l.contains("Connection closed"))
        .filter(|l| !l.contains("user=<>"))
        .count();
    assert_eq!(dropped, 0, "{log}");
}

#[tokio::test]
async fn backend_down_is_unavailable() {
    let port = free_port();
    let auth = Authenticator::new(plan(port, EndpointTls::None, &["user"]));
    assert_eq!(
        auth.verify("user", "pw", client()).await,
        Verdict::Unavailable
    );
    // Not a failure of the client's.
    assert_eq!(auth.failures(client()), 0);
}

#[tokio::test(start_paused = true)]
async fn silent_backend_times_out() {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepts and never says a word.
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let auth = Authenticator::new(plan(port, EndpointTls::None, &["user"]));
    let start = tokio::time::Instant::now();
    assert_eq!(
        auth.verify("user", "pw", client()).await,
        Verdict::Unavailable
    );
    assert!(start.elapsed() >= Duration::from_secs(10));
    server.abort();
}

#[tokio::test]
async fn backend_without_imap_is_unavailable() {
    let mut plan = (*plan(1, EndpointTls::None, &["user"])).clone();
    plan.backends[0].imap = None;
    let auth = Authenticator::new(Arc::new(plan));
    assert_eq!(
        auth.verify("user", "pw", client()).await,
        Verdict::Unavailable
    );
}

#[tokio::test]
async fn dovecot_over_starttls_and_implicit_tls() {
    let (ca, cert, key) = test_pki();
    let users = [("tls", "tls-pass")];
    let Some(dovecot) = Dovecot::start_with(&users, Some((&cert, &key))) else {
        return;
    };
    let ca_file = dovecot.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).expect("ca");
    let ca_file = ca_file.display().to_string();
    for (port, tls) in [
        (dovecot.port, EndpointTls::StartTls),
        (dovecot.imaps, EndpointTls::Implicit),
    ] {
        let auth = Authenticator::new(plan_with_ca(port, tls, Some(ca_file.clone()), &["tls"]));
        assert_eq!(
            auth.verify("tls", "tls-pass", client()).await,
            Verdict::Accepted { mailbox: 0 },
            "{tls:?}: {}",
            dovecot.log()
        );
        assert_eq!(
            auth.verify("tls", "wrong", client()).await,
            Verdict::Rejected,
            "{tls:?}"
        );
        // Without the CA the certificate is not trusted: no answer.
        let untrusting = Authenticator::new(plan(port, tls, &["tls"]));
        assert_eq!(
            untrusting.verify("tls", "tls-pass", client()).await,
            Verdict::Unavailable,
            "{tls:?}"
        );
    }
    let log = dovecot.log();
    assert!(log.contains("TLS"), "{log}");
}

#[tokio::test]
async fn forward_client_tells_dovecot_the_real_address() {
    let Some(dovecot) = Dovecot::start(&[("fwd", "fwd-pass")]) else {
        return;
    };
    let mut plan = (*plan(dovecot.port, EndpointTls::None, &["fwd"])).clone();
    plan.backends[0].forward_client = true;
    let auth = Authenticator::new(Arc::new(plan));
    assert_eq!(
        auth.verify("fwd", "fwd-pass", client()).await,
        Verdict::Accepted { mailbox: 0 }
    );
    let log = dovecot.log();
    assert!(
        log.contains("Login: user=<fwd>") && log.contains("rip=192.0.2.9"),
        "{log}"
    );
}
