//! Transcripts of the IMAP and POP3 pre-login sessions, I/O-free: what the
//! client sends, what the gateway answers, and what it asks the driver to
//! do (check a login, start TLS, wait, close). Each transcript is an insta
//! snapshot, reviewed by hand.

use std::time::Duration;

use mailgw_plan::TlsMode;
use mailgw_runtime::proxy::imap_session::ImapSession;
use mailgw_runtime::proxy::pop3_session::Pop3Session;
use mailgw_runtime::proxy::{LoginFailure, LoginRequest, PreLogin, PreLoginLimits, Step};

fn limits() -> PreLoginLimits {
    PreLoginLimits {
        max_failures: 3,
        failure_delay: Duration::from_millis(100),
        previous_failures: 0,
    }
}

/// Runs a session of `P` on a listener with `mode` through `script`
/// (chunks the client sends, in order), after its greeting; a login whose
/// password is `right` succeeds, `down` finds the backend down, anything
/// else is refused.
fn transcript<P: PreLogin>(
    mode: TlsMode,
    new: fn(TlsMode, bool, PreLoginLimits) -> P,
    script: &[&[u8]],
) -> String {
    let implicit = mode == TlsMode::Implicit;
    let mut out = String::new();
    said(&mut out, &P::greeting("mail.example.test", mode, implicit));
    let mut session = new(mode, implicit, limits());
    let mut script = script.iter();
    loop {
        match session.step() {
            Step::Reply(bytes) => said(&mut out, &bytes),
            Step::NeedInput => match script.next() {
                Some(chunk) => {
                    out.push_str(&format!(
                        "C: {}\n",
                        String::from_utf8_lossy(chunk).escape_debug()
                    ));
                    session.feed(chunk);
                }
                None => {
                    out.push_str("-- waiting for input\n");
                    return out;
                }
            },
            Step::Delay(d) => out.push_str(&format!("-- delay {} ms\n", d.as_millis())),
            Step::StartTls => {
                out.push_str("-- TLS handshake\n");
                session.tls_established();
            }
            Step::Login(LoginRequest {
                user,
                password,
                tag,
                method,
            }) => {
                out.push_str(&format!(
                    "-- login user={user:?} password={:?} tag={tag:?} method={method}\n",
                    password.expose()
                ));
                match password.expose() {
                    "right" => {
                        let pending = session.take_pending();
                        out.push_str(&format!(
                            "-- logged in; forwarded to the backend: {:?}\n",
                            String::from_utf8_lossy(&pending)
                        ));
                        return out;
                    }
                    "down" => session.login_failed(LoginFailure::Unavailable),
                    _ => session.login_failed(LoginFailure::Rejected),
                }
            }
            Step::Close => {
                out.push_str("-- close\n");
                return out;
            }
        }
    }
}

/// Adds what the server said to the transcript, a line at a time.
fn said(out: &mut String, bytes: &[u8]) {
    for line in String::from_utf8_lossy(bytes).split_inclusive("\r\n") {
        out.push_str(&format!("S: {}\n", line.escape_debug()));
    }
}

fn imap(mode: TlsMode, script: &[&[u8]]) -> String {
    transcript(mode, ImapSession::new, script)
}

fn pop3(mode: TlsMode, script: &[&[u8]]) -> String {
    transcript(mode, Pop3Session::new, script)
}

#[test]
fn imap_requires_tls_before_login() {
    insta::assert_snapshot!(imap(
        TlsMode::StartTlsRequire,
        &[
            b"a1 CAPABILITY\r\n",
            b"a2 LOGIN alice right\r\n",
            b"a3 AUTHENTICATE PLAIN\r\n",
            b"a4 STARTTLS\r\na5 LOGIN alice right\r\n",
            b"a6 CAPABILITY\r\n",
            b"a7 LOGIN \"alice@example.test\" \"right\"\r\na8 SELECT INBOX\r\n",
        ]
    ));
}

#[test]
fn imap_literals_and_limits() {
    insta::assert_snapshot!(imap(
        TlsMode::Implicit,
        &[
            b"b1 LOGIN {5}\r\n",
            b"alice {5}\r\n",
            b"wrong\r\n",
            b"b2 LOGIN {5000}\r\n",
            b"b3 NOOP\r\n",
            b"b4 LOGIN {5+}\r\nalice {10+}\r\na\"b\\c\r\nd e\r\n",
            b"b5 LOGIN {5000+}\r\n",
        ]
    ));
}

#[test]
fn imap_authenticate() {
    // "\0alice\0wrong" and "\0alice\0right" in base64; "bob" acting for
    // "alice"; LOGIN's user and password prompts.
    insta::assert_snapshot!(imap(
        TlsMode::None,
        &[
            b"c1 AUTHENTICATE PLAIN AGFsaWNlAHdyb25n\r\n",
            b"c2 AUTHENTICATE PLAIN\r\n",
            b"*\r\n",
            b"c3 AUTHENTICATE PLAIN\r\n",
            b"not base64!\r\n",
            b"c4 AUTHENTICATE PLAIN Ym9iAGFsaWNlAHJpZ2h0\r\n",
            b"c5 AUTHENTICATE LOGIN\r\n",
            b"YWxpY2U=\r\n",
            b"ZG93bg==\r\n",
            b"c6 AUTHENTICATE PLAIN\r\n",
            b"AGFsaWNlAHJpZ2h0\r\n",
        ]
    ));
}

#[test]
fn imap_failed_logins_are_delayed_then_closed() {
    insta::assert_snapshot!(imap(
        TlsMode::None,
        &[
            b"d1 LOGIN nobody wrong\r\n",
            b"d2 LOGIN alice wrong\r\n",
            b"d3 LOGIN alice wrong\r\n",
            b"d4 LOGIN alice right\r\n",
        ]
    ));
}

#[test]
fn imap_odd_input() {
    insta::assert_snapshot!(imap(
        TlsMode::StartTlsOffer,
        &[
            b"e1 ID (\"name\" \"test\")\r\ne2 ID NIL\r\ne3 NOOP\r\n",
            b"e4 SELECT INBOX\r\n",
            b"\r\n",
            b"e5 LOGIN \"unterminated\r\n",
            b"e6 LOGIN a\0b c\r\n",
            b"e7 NOOP extra\r\n",
            b"e8 STARTTLS\r\n",
            b"e9 STARTTLS\r\n",
            b"e10 LOGOUT\r\n",
        ]
    ));
}

#[test]
fn imap_too_many_bad_commands() {
    let script: Vec<&[u8]> = vec![b"x FOO\r\n"; 11];
    let t = imap(TlsMode::None, &script);
    assert_eq!(t.matches("BAD").count(), 10, "{t}");
    assert!(
        t.ends_with("S: * BYE Too many invalid commands.\\r\\n\n-- close\n"),
        "{t}"
    );
}

#[test]
fn imap_overlong_line_closes() {
    let long = [b'a'; 9000];
    let t = imap(TlsMode::None, &[&long]);
    assert!(
        t.ends_with("S: * BYE [TOOBIG] Command too long.\\r\\n\n-- close\n"),
        "{t}"
    );
}

#[test]
fn pop3_requires_tls_before_login() {
    insta::assert_snapshot!(pop3(
        TlsMode::StartTlsRequire,
        &[
            b"CAPA\r\n",
            b"USER alice\r\n",
            b"STLS\r\nUSER sneaky\r\n",
            b"CAPA\r\n",
            b"USER alice\r\nPASS right\r\nSTAT\r\n",
        ]
    ));
}

#[test]
fn pop3_auth_and_failures() {
    insta::assert_snapshot!(pop3(
        TlsMode::Implicit,
        &[
            b"PASS right\r\n",
            b"AUTH\r\n",
            b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n",
            b"AUTH LOGIN\r\n",
            b"YWxpY2U=\r\n",
            b"ZG93bg==\r\n",
            b"AUTH PLAIN\r\n",
            b"*\r\n",
            b"USER alice\r\n",
            b"PASS my secret pass phrase\r\n",
            b"NOOP\r\n",
            b"USER alice\r\n",
            b"PASS wrong\r\n",
        ]
    ));
}

#[test]
fn pop3_overlong_line_closes() {
    let long = [b'a'; 3000];
    let t = pop3(TlsMode::None, &[&long]);
    assert!(
        t.ends_with("S: -ERR Line too long.\\r\\n\n-- close\n"),
        "{t}"
    );
}
