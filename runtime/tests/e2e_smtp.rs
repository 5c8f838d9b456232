//! End to end: the real `mailgw` binary, driven by Python's `smtplib`,
//! raw sockets and `swaks`.

#[path = "e2e/harness.rs"]
mod harness;
mod ports;

use std::io::Write as _;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use harness::{have, python, read_all, Gateway};

#[test]
fn check_loads_and_exits() {
    let gw = Gateway::start();
    let out = Command::new(env!("CARGO_BIN_EXE_mailgw"))
        .args(["run", "--check"])
        .arg(gw.config_path())
        .output()
        .expect("run mailgw --check");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn check_reports_diagnostics_like_mailgwc() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("broken.mailgw");
    std::fs::write(&path, "gateway { hostname \"x\" }\nlistner \"a\" { }\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_mailgw"))
        .args(["run", "--check"])
        .arg(&path)
        .output()
        .expect("run mailgw --check");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listner"), "{stderr}");
}

#[test]
fn inbound_to_a_local_mailbox_is_spooled() {
    let gw = Gateway::start();
    let out = python(&gw, &["inbound", &gw.smtp.to_string()]);
    assert!(out.contains("mail 250"), "{out}");
    assert!(out.contains("rcpt 250"), "{out}");
    let data = out
        .lines()
        .find(|l| l.starts_with("data 250"))
        .unwrap_or_else(|| panic!("no 250 after DATA: {out}"));
    let id = data.rsplit(' ').next().unwrap_or_default();
    assert_eq!(gw.queued(), vec![id.to_owned()]);
    let log = gw.log();
    assert!(log.contains("local mailbox"), "{log}");
    assert!(log.contains("session="), "{log}");
}

#[test]
fn relay_without_login_is_denied() {
    let gw = Gateway::start();
    let out = python(&gw, &["relay-denied", &gw.smtp.to_string()]);
    assert!(out.contains("rcpt 554"), "{out}");
    assert!(gw.log().contains("relay denied"));
}

#[test]
fn auth_before_starttls_is_refused() {
    let gw = Gateway::start();
    let out = python(&gw, &["auth-before-tls", &gw.submission.to_string()]);
    assert!(out.contains("auth-advertised False"), "{out}");
    assert!(out.contains("auth 530"), "{out}");
    assert_no_password(&gw.log());
}

/// alice's password appears in the log in no form: as typed, as the
/// `AUTH PLAIN` token, or as `AUTH LOGIN`'s password line.
fn assert_no_password(log: &str) {
    for form in ["alice-demo", "AGFsaWNlAGFsaWNlLWRlbW8=", "YWxpY2UtZGVtbw=="] {
        assert!(!log.contains(form), "{form} in the log:\n{log}");
    }
}

fn submit(mechanism: &str) {
    let gw = Gateway::start();
    let out = python(
        &gw,
        &[
            "submit",
            &gw.submission.to_string(),
            "alice",
            "alice-demo",
            mechanism,
        ],
    );
    assert!(out.contains("starttls-advertised True"), "{out}");
    assert!(out.contains("auth-advertised True"), "{out}");
    assert!(out.contains("auth 235"), "{out}");
    assert!(out.contains("rcpt 250"), "{out}");
    assert!(out.contains("data 250"), "{out}");
    assert_eq!(gw.queued().len(), 1);
    assert_no_password(&gw.log());
}

#[test]
fn submission_with_starttls_and_auth_plain() {
    submit("PLAIN");
}

#[test]
fn submission_with_starttls_and_auth_login() {
    submit("LOGIN");
}

#[test]
fn wrong_password_is_refused() {
    let gw = Gateway::start();
    let out = python(
        &gw,
        &[
            "submit",
            &gw.submission.to_string(),
            "alice",
            "n0t-her-Passw0rd",
            "PLAIN",
        ],
    );
    assert!(out.contains("auth 535"), "{out}");
    assert!(gw.queued().is_empty());
    let log = gw.log();
    assert!(log.contains("authentication failed"), "{log}");
    assert!(!log.contains("n0t-her-Passw0rd"), "{log}");
}

#[test]
fn input_pipelined_after_starttls_is_dropped() {
    let gw = Gateway::start();
    let out = python(&gw, &["starttls-injection", &gw.smtp.to_string()]);
    assert!(out.contains("starttls 220"), "{out}");
    // The first reply over TLS answers EHLO, not the injected RSET.
    assert!(out.contains("after-tls 250-localhost"), "{out}");
    assert!(out.contains("quit 221"), "{out}");
    assert!(gw
        .log()
        .contains("input pipelined after STARTTLS discarded"));
}

#[test]
fn per_client_limit_answers_421() {
    third_connection_is_refused("max-per-client 2");
}

/// The listener takes 2 connections in all (its per-client limit, 16 by
/// default, is not what refuses the third).
#[test]
fn per_listener_limit_answers_421() {
    third_connection_is_refused("max-connections 2");
}

/// With `limits` on the inbound listener, two connections are greeted and
/// the third gets `421 4.7.0`.
fn third_connection_is_refused(limits: &str) {
    let gw = Gateway::start_with(limits, "");
    // The harness's probe connection must be gone first.
    gw.wait_sessions_ended(1);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", gw.smtp)).expect("connect"))
        .collect();
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(s, &mut buf).expect("greeting");
        assert!(buf[..n].starts_with(b"220 "));
    }
    let mut third = TcpStream::connect(("127.0.0.1", gw.smtp)).expect("connect");
    let text = read_all(&mut third, Duration::from_secs(5));
    assert!(text.starts_with("421 4.7.0"), "{text}");
    drop(held);
}

#[test]
fn command_timeout_answers_421_4_4_2() {
    let gw = Gateway::start_with("timeout greeting 1s, command 1s", "");
    let mut s = TcpStream::connect(("127.0.0.1", gw.smtp)).expect("connect");
    s.write_all(b"EHLO client.test\r\n").expect("write");
    let text = read_all(&mut s, Duration::from_secs(5));
    assert!(text.starts_with("220 "), "{text}");
    assert!(text.contains("421 4.4.2"), "{text}");
}

#[test]
fn swaks_delivers_inbound_and_submits() {
    if !have("swaks") {
        eprintln!("swaks is not installed (scripts/test installs it); skipped");
        return;
    }
    let gw = Gateway::start();
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", gw.smtp)])
        .args(["--from", "a@remote.test", "--to", "bob@example.test"])
        .args(["--tls", "--timeout", "10"])
        .output()
        .expect("run swaks");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", gw.log());
    assert!(text.contains("<-  220 2.0.0 Ready to start TLS"), "{text}");
    assert!(text.contains("<~  250 2.0.0 Ok: queued as"), "{text}");
    assert_eq!(gw.queued().len(), 1);

    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", gw.submission)])
        .args(["--from", "alice@example.test", "--to", "x@far.test"])
        .args(["--tls", "--auth", "LOGIN", "--auth-user", "alice"])
        .args(["--auth-password", "alice-demo", "--timeout", "10"])
        .output()
        .expect("run swaks");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", gw.log());
    assert_eq!(gw.queued().len(), 2);
}

#[test]
fn implicit_tls_listener() {
    let port = ports::free_port();
    let gw = Gateway::start_with(
        "",
        &format!(
            "listener \"smtps\" {{ protocol smtp; bind 127.0.0.1:{port}; tls implicit \"local\"; auth off }}"
        ),
    );
    let out = python(&gw, &["implicit", &port.to_string()]);
    assert!(
        out.contains("tls TLSv1.3") || out.contains("tls TLSv1.2"),
        "{out}"
    );
    assert!(out.contains("starttls-advertised False"), "{out}");
    assert!(out.contains("data 250"), "{out}");
    let out = python(&gw, &["tls11-refused", &port.to_string()]);
    assert!(out.contains("tls11 refused"), "{out}");
}

#[test]
fn session_deadline_answers_421_4_4_2_however_busy() {
    let gw = Gateway::start_with("timeout session 2s", "");
    let mut s = TcpStream::connect(("127.0.0.1", gw.smtp)).expect("connect");
    // Read as replies come, so that the last one is in before the close.
    let mut r = s.try_clone().expect("clone");
    let reader = std::thread::spawn(move || read_all(&mut r, Duration::from_secs(6)));
    let start = std::time::Instant::now();
    // A NOOP every 300 ms keeps every per-command timeout happy.
    while start.elapsed() < Duration::from_secs(4) {
        if s.write_all(b"NOOP\r\n").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let text = reader.join().expect("reader");
    assert!(text.contains("250 2.0.0 Ok"), "{text}");
    assert!(text.contains("421 4.4.2"), "{text}");
}
