//! Transcript tests of the SMTP session state machine: send this line,
//! expect that reply. No network, no real time.
//!
//! A transcript is a list of lines:
//! - `C: text` sends `text` and CRLF; `\r`, `\n`, `\0`, `\\` and `\xHH` are
//!   unescaped, so several pipelined commands fit on one line;
//! - `R: text` sends `text` unescaped, without adding CRLF;
//! - `S: prefix` expects the next event to start with `prefix`. Events are
//!   replies (`250 2.1.0 Sender OK`, the last line of multi-line replies)
//!   and the I/O layer's actions: `TLS`, `AUTH user`, `DELIVER`,
//!   `DELAY ms`, `CLOSE`.
//!
//! The fake I/O layer accepts `alice`/`secret`, spools every message as
//! `Q1`, `Q2`, … and completes every TLS handshake.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailgw_plan::{
    AddressPattern, AddressSpace, AuthMode, Condition, Connector, Deliver, DomainPattern, Group,
    Limits, Listener, ListenerTls, LocalDomain, Mailbox, Member, Network, Plan, Protocol,
    RecipientTable, RelayAction, RelayRule, SourceRef, Target, TlsMode, TlsPolicy,
    UnknownRecipients,
};
use mailgw_runtime::smtp::{
    AuthOutcome, Delivery, Disposition, Session, SessionConfig, SpoolResult, Step,
};

fn src(line: u32) -> SourceRef {
    SourceRef::new(0, line)
}

/// `local.example` with alice, postmaster and the group sales; connectors
/// for `*.example` only; relay for authenticated users, 10.0.0.0/8, and
/// mail to `*.partner.example`.
fn plan() -> Plan {
    let mut plan = Plan::empty("mx.local.example");
    plan.sources.add("gateway.mailgw");
    plan.gateway.max_message_size = 1000;
    plan.gateway.max_hops = 3;
    plan.gateway.postmaster = Some("postmaster@local.example".into());
    plan.domains.push(LocalDomain {
        name: "local.example".into(),
        source: src(10),
    });
    for (name, line) in [("alice", 20), ("postmaster", 21)] {
        plan.mailboxes.push(Mailbox {
            name,
            backend: 0,
            password_hash: None,
            source: src(line),
        });
    }
    plan.groups.push(Group {
        name: "sales".into(),
        members: vec![Member::Mailbox(0)],
        source: src(30),
    });
    plan.recipients = RecipientTable::build(vec![
        ("alice@local.example".to_owned(), Target::Mailbox(0)),
        ("postmaster@local.example".to_owned(), Target::Mailbox(1)),
        ("sales@local.example".to_owned(), Target::Group(0)),
    ])
    .unwrap();
    plan.connectors.push(Connector {
        name: "out".into(),
        address_spaces: vec![AddressSpace {
            pattern: DomainPattern::parse("*.example").unwrap(),
            cost: 1,
            source: src(51),
        }],
        deliver: Deliver::Mx { port: 25 },
        tls: TlsPolicy::Opportunistic,
        credentials: None,
        ca: None,
        accept_from: Vec::new(),
        reject_from: Vec::new(),
        source: src(50),
    });
    plan.relay = vec![
        RelayRule {
            action: RelayAction::Allow,
            conditions: vec![Condition::Authenticated],
            source: src(40),
        },
        RelayRule {
            action: RelayAction::Allow,
            conditions: vec![Condition::From(Network::parse("10.0.0.0/8").unwrap())],
            source: src(41),
        },
        RelayRule {
            action: RelayAction::Allow,
            conditions: vec![Condition::To(
                AddressPattern::parse("*.partner.example").unwrap(),
            )],
            source: src(42),
        },
    ];
    plan
}

fn listener(tls: TlsMode, auth: AuthMode) -> Listener {
    Listener {
        name: "test".into(),
        protocol: Protocol::Smtp,
        binds: Vec::new(),
        tls: ListenerTls {
            mode: tls,
            profile: None,
        },
        auth,
        limits: Limits::default(),
        filter_return: false,
        source: src(3),
    }
}

fn fixed_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_751_364_245)
}

/// The fake I/O layer around a session.
struct Harness {
    session: Session,
    events: VecDeque<String>,
    deliveries: Vec<Delivery>,
    /// The spool answers "disk full" instead of queueing.
    disk_full: bool,
    closed: bool,
}

impl Harness {
    fn new(plan: Plan, tls: TlsMode, auth: AuthMode, client: &str) -> Harness {
        Harness::with(plan, tls, auth, client, |_| {})
    }

    /// A harness whose session configuration `adjust` changes first.
    fn with(
        plan: Plan,
        tls: TlsMode,
        auth: AuthMode,
        client: &str,
        adjust: impl FnOnce(&mut SessionConfig),
    ) -> Harness {
        let client: IpAddr = client.parse().unwrap();
        let mut config = SessionConfig::new(&plan, &listener(tls, auth), client, "s1".to_owned());
        config.clock = fixed_clock;
        config.max_recipients = 3;
        adjust(&mut config);
        let session = Session::new(config, Arc::new(plan));
        let greeting = session.greeting();
        let mut h = Harness {
            session,
            events: VecDeque::new(),
            deliveries: Vec::new(),
            disk_full: false,
            closed: false,
        };
        h.reply(&greeting.to_string());
        h
    }

    fn reply(&mut self, text: &str) {
        let last = text.trim_end().lines().last().unwrap_or("").to_owned();
        self.events.push_back(last);
    }

    fn send(&mut self, bytes: &[u8]) {
        assert!(!self.closed, "send after close");
        self.session.feed(bytes);
        self.run();
    }

    fn run(&mut self) {
        loop {
            match self.session.step() {
                Step::Reply(r) => self.reply(&r.to_string()),
                Step::NeedInput => return,
                Step::Delay(d) => self.events.push_back(format!("DELAY {}", d.as_millis())),
                Step::StartTls(r) => {
                    self.reply(&r.to_string());
                    self.events.push_back("TLS".into());
                    self.session.tls_established();
                }
                Step::Authenticate(c) => {
                    self.events.push_back(format!("AUTH {}", c.username));
                    let ok = c.username == "alice" && c.password.expose() == "secret";
                    self.session.auth_result(if ok {
                        AuthOutcome::Success
                    } else {
                        AuthOutcome::Failure
                    });
                }
                Step::Deliver(d) => {
                    self.events.push_back("DELIVER".into());
                    self.deliveries.push(*d);
                    let id = format!("Q{}", self.deliveries.len());
                    self.session.spooled(if self.disk_full {
                        SpoolResult::DiskFull
                    } else {
                        SpoolResult::Queued(id)
                    });
                }
                Step::Etrn(domain) => {
                    self.events.push_back(format!("ETRN {domain}"));
                    // The fake queue: 3 messages for partner.example, none
                    // elsewhere, and down.example cannot be asked.
                    self.session.etrn_result(match domain.as_str() {
                        "partner.example" => Some(3),
                        "down.example" => None,
                        _ => Some(0),
                    });
                }
                Step::Close => {
                    self.events.push_back("CLOSE".into());
                    self.closed = true;
                    return;
                }
            }
        }
    }

    fn check(&mut self, transcript: &str) {
        for (n, line) in transcript.lines().map(str::trim).enumerate() {
            if line.is_empty() {
                continue;
            }
            if let Some(text) = line.strip_prefix("C: ") {
                let mut bytes = unescape(text);
                bytes.extend_from_slice(b"\r\n");
                self.send(&bytes);
            } else if let Some(text) = line.strip_prefix("R: ") {
                self.send(&unescape(text));
            } else if let Some(expected) = line.strip_prefix("S: ") {
                let got = self.events.pop_front();
                assert!(
                    got.as_deref().is_some_and(|g| g.starts_with(expected)),
                    "transcript line {}: expected {expected:?}, got {got:?}; rest {:?}",
                    n + 1,
                    self.events
                );
            } else {
                panic!("bad transcript line {line:?}");
            }
        }
        assert!(
            self.events.is_empty(),
            "unexpected events: {:?}",
            self.events
        );
    }
}

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
            }
            other => panic!("bad escape {other:?}"),
        }
    }
    out
}

/// An MX session on a STARTTLS-offering listener, from the Internet.
fn mx() -> Harness {
    Harness::new(
        plan(),
        TlsMode::StartTlsOffer,
        AuthMode::Offer,
        "203.0.113.5",
    )
}

/// The full EHLO reply, line by line.
fn ehlo_lines(h: &mut Harness) -> Vec<String> {
    h.session.feed(b"EHLO client.example\r\n");
    let Step::Reply(r) = h.session.step() else {
        panic!("no reply")
    };
    assert_eq!(r.code, 250);
    r.lines
}

#[test]
fn greeting_and_ehlo_per_tls_state() {
    let mut h = mx();
    h.check(r"S: 220 mx.local.example ESMTP");
    let lines = ehlo_lines(&mut h);
    for ext in [
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "DSN",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(lines.iter().any(|l| l == ext), "{ext} in {lines:?}");
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("AUTH")),
        "no AUTH in clear text"
    );
    h.check(
        r"C: STARTTLS
         S: 220 2.0.0 Ready to start TLS
         S: TLS",
    );
    let lines = ehlo_lines(&mut h);
    assert!(!lines.iter().any(|l| l == "STARTTLS"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{lines:?}");

    // Implicit TLS: AUTH at once, no STARTTLS.
    let mut h = Harness::new(plan(), TlsMode::Implicit, AuthMode::Require, "203.0.113.5");
    h.check(r"S: 220");
    let lines = ehlo_lines(&mut h);
    assert!(lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{lines:?}");
    assert!(!lines.iter().any(|l| l == "STARTTLS"), "{lines:?}");

    // No TLS at all: neither.
    let mut h = Harness::new(plan(), TlsMode::None, AuthMode::Offer, "203.0.113.5");
    h.check(r"S: 220");
    let lines = ehlo_lines(&mut h);
    assert!(!lines
        .iter()
        .any(|l| l == "STARTTLS" || l.starts_with("AUTH")));
    h.check(
        r"C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 538 5.7.11
         C: STARTTLS
         S: 502 5.5.1",
    );
}

#[test]
fn a_whole_transaction_with_received_header() {
    let mut h = mx();
    h.check(
        r"S: 220
         C: EHLO client.example
         S: 250 HELP
         C: MAIL FROM:<sender@far.example> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=abc+2B1
         S: 250 2.1.0
         C: RCPT TO:<alice@Local.Example.> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+40local.example
         S: 250 2.1.5
         C: DATA
         S: 354
         C: Subject: hi\r\n\r\n..dot\r\nbody\r\n.
         S: DELIVER
         S: 250 2.0.0 Ok: queued as Q1
         C: QUIT
         S: 221 2.0.0
         S: CLOSE",
    );
    let d = &h.deliveries[0];
    let text = String::from_utf8(d.message.clone()).unwrap();
    assert_eq!(
        text,
        "Received: from client.example ([203.0.113.5])\r\n\
         \tby mx.local.example (mailgw) with ESMTP id s1.1\r\n\
         \tfor <alice@local.example>; Tue, 1 Jul 2025 10:04:05 +0000\r\n\
         Subject: hi\r\n\r\n.dot\r\nbody\r\n"
    );
    let e = &d.envelope;
    assert_eq!(e.envid.as_deref(), Some("abc+1"));
    assert_eq!(e.recipients.len(), 1);
    assert_eq!(e.recipients[0].disposition, Disposition::Mailbox(0));
    assert_eq!(
        e.recipients[0].orcpt.as_ref().map(|o| o.address.as_str()),
        Some("alice@local.example")
    );
}

#[test]
fn pipelined_replies_come_in_order() {
    let mut h = mx();
    h.check(
        r"S: 220
         C: EHLO c\r\nMAIL FROM:<a@far.example>\r\nRCPT TO:<nobody@local.example>\r\nRCPT TO:<sales@local.example>\r\nRCPT TO:<x@evil.test>\r\nDATA\r\nhello\r\n.\r\nRSET\r\nNOOP
         S: 250 HELP
         S: 250 2.1.0
         S: 550 5.1.1
         S: 250 2.1.5
         S: 554 5.7.1 Relay access denied
         S: 354
         S: DELIVER
         S: 250 2.0.0 Ok: queued as Q1
         S: 250 2.0.0 Ok
         S: 250 2.0.0 Ok",
    );
    assert_eq!(
        h.deliveries[0].envelope.recipients[0].disposition,
        Disposition::Group(0)
    );
}

#[test]
fn size_declared_and_actual() {
    let mut h = mx();
    let big = "x".repeat(100);
    let body = format!("{big}\\r\\n").repeat(11);
    h.check(&format!(
        r"S: 220
         C: EHLO c
         S: 250
         C: MAIL FROM:<a@far.example> SIZE=1001
         S: 552 5.3.4
         C: MAIL FROM:<a@far.example> SIZE=1000
         S: 250 2.1.0
         C: RCPT TO:<alice@local.example>
         S: 250
         C: DATA
         S: 354
         C: {body}.
         S: 552 5.3.4
         C: MAIL FROM:<a@far.example>
         S: 250 2.1.0"
    ));
    assert!(h.deliveries.is_empty());
}

/// Each sequence is sent inside a message; none may end it, and the message
/// is refused at the real end.
#[test]
fn smuggling_sequences_are_refused() {
    for seq in [
        r"\n.\n", r"\r.\r", r"\n.\r\n", r"\r\n.\n", r"\r\n.\r", r"\r.\r\n",
    ] {
        let mut h = mx();
        h.check(&format!(
            r"S: 220
             C: EHLO c
             S: 250
             C: MAIL FROM:<a@far.example>
             S: 250
             C: RCPT TO:<alice@local.example>
             S: 250
             C: DATA
             S: 354
             R: Subject: x\r\n\r\nbody{seq}MAIL FROM:<evil@far.example>\r\nRCPT TO:<alice@local.example>\r\nDATA\r\nsmuggled\r\n
             C: .
             S: 550 5.6.0
             C: NOOP
             S: 250"
        ));
        assert!(h.deliveries.is_empty(), "{seq}");
    }
}

#[test]
fn bad_command_lines() {
    let mut h = mx();
    let long = "x".repeat(5000);
    h.check(&format!(
        r"S: 220
         R: EHLO c\n
         S: 500 5.5.2
         R: NOOP\rQUIT\r\n
         S: 500 5.5.2
         C: NO\0OP
         S: 500 5.5.2
         C: EHLO \xff\xfe
         S: 500 5.5.2
         C: NOOP {long}
         S: 500 5.5.6
         C: FOO
         S: 500 5.5.1
         C: EHLO c
         S: 250"
    ));
}

#[test]
fn too_many_errors_close() {
    let mut h = mx();
    let mut transcript = String::from("S: 220\n");
    for _ in 0..19 {
        transcript.push_str("C: FOO\nS: 500\n");
    }
    transcript.push_str("C: FOO\nS: 421 4.7.0\nS: CLOSE\n");
    h.check(&transcript);
}

#[test]
fn starttls_drops_pipelined_input() {
    let mut h = mx();
    h.check(
        r"S: 220
         C: EHLO c
         S: 250
         C: STARTTLS\r\nMAIL FROM:<a@far.example>
         S: 220 2.0.0
         S: TLS
         C: MAIL FROM:<a@far.example>
         S: 503 5.5.1 Send EHLO/HELO first",
    );
}

#[test]
fn starttls_require_and_auth_require() {
    let mut h = Harness::new(
        plan(),
        TlsMode::StartTlsRequire,
        AuthMode::Require,
        "203.0.113.5",
    );
    h.check(
        r"S: 220
         C: EHLO c
         S: 250
         C: MAIL FROM:<a@far.example>
         S: 530 5.7.0 Must issue a STARTTLS command first
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 530 5.7.0
         C: STARTTLS
         S: 220
         S: TLS
         C: EHLO c
         S: 250
         C: MAIL FROM:<a@far.example>
         S: 530 5.7.0 Authentication required
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: AUTH alice
         S: 235 2.7.0
         C: MAIL FROM:<alice@local.example>
         S: 250 2.1.0
         C: RCPT TO:<bob@foreign.example>
         S: 250 2.1.5",
    );
}

#[test]
fn auth_exchanges() {
    let mut h = Harness::new(plan(), TlsMode::Implicit, AuthMode::Offer, "203.0.113.5");
    h.check(
        r"S: 220
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 503 5.5.1
         C: EHLO c
         S: 250
         C: AUTH PLAIN
         S: 334
         C: *
         S: 501 5.0.0
         C: AUTH PLAIN not!base64
         S: 501 5.5.2
         C: AUTH PLAIN
         S: 334
         C: AGFsaWNl
         S: 501 5.5.2
         C: AUTH LOGIN
         S: 334 VXNlcm5hbWU6
         C: YWxpY2U=
         S: 334 UGFzc3dvcmQ6
         C: d3Jvbmc=
         S: AUTH alice
         S: DELAY 1000
         S: 535 5.7.8
         C: AUTH LOGIN YWxpY2U=
         S: 334 UGFzc3dvcmQ6
         C: c2VjcmV0
         S: AUTH alice
         S: 235 2.7.0
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 503 5.5.1",
    );
}

#[test]
fn auth_failures_grow_the_delay_then_close() {
    let mut h = Harness::new(plan(), TlsMode::Implicit, AuthMode::Offer, "203.0.113.5");
    // "\0alice\0nope"
    h.check(
        r"S: 220
         C: EHLO c
         S: 250
         C: AUTH PLAIN AGFsaWNlAG5vcGU=
         S: AUTH alice
         S: DELAY 1000
         S: 535 5.7.8
         C: AUTH PLAIN AGFsaWNlAG5vcGU=
         S: AUTH alice
         S: DELAY 2000
         S: 535
         C: AUTH PLAIN AGFsaWNlAG5vcGU=
         S: AUTH alice
         S: DELAY 4000
         S: 535
         C: AUTH PLAIN AGFsaWNlAG5vcGU=
         S: AUTH alice
         S: DELAY 8000
         S: 535
         C: AUTH PLAIN AGFsaWNlAG5vcGU=
         S: AUTH alice
         S: 421 4.7.0
         S: CLOSE",
    );
}

#[test]
fn a_client_at_the_failure_limit_gets_no_new_guess() {
    let mut h = Harness::with(
        plan(),
        TlsMode::Implicit,
        AuthMode::Offer,
        "203.0.113.5",
        |config| config.previous_auth_failures = config.auth_max_failures,
    );
    // "\0alice\0secret": the right password, never checked.
    h.check(
        r"S: 220
         C: EHLO c
         S: 250
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 421 4.7.0
         S: CLOSE",
    );
}

#[test]
fn a_full_disk_answers_452_never_250() {
    let mut h = Harness::new(plan(), TlsMode::None, AuthMode::Off, "10.1.2.3");
    h.disk_full = true;
    h.check(
        r"S: 220
         C: EHLO c
         S: 250
         C: MAIL FROM:<a@b.example>
         S: 250
         C: RCPT TO:<alice@local.example>
         S: 250
         C: DATA
         S: 354
         C: Subject: t\r\n\r\nbody\r\n.
         S: DELIVER
         S: 452 4.3.1
         C: MAIL FROM:<a@b.example>
         S: 250",
    );
}

/// The classic open-relay tricks, from a client no rule allows: each stays
/// in the local domain (and is an unknown user there) or is refused.
#[test]
fn open_relay_tricks_are_refused() {
    let cases = [
        ("<user%foreign.example@local.example>", "550 5.1.1"),
        ("<foreign.example!user@local.example>", "550 5.1.1"),
        ("<\"user@foreign.example\"@local.example>", "550 5.1.1"),
        ("<@local.example:user@foreign.example>", "554 5.7.1"),
        (
            "<@local.example,@other.example:user@foreign.example>",
            "554 5.7.1",
        ),
        ("<user@[1.2.3.4]>", "554 5.7.1"),
        ("<user@[IPv6:2001:db8::1]>", "554 5.7.1"),
        ("<USER@Foreign.Example.>", "554 5.7.1"),
        ("<user@foreign.example>", "554 5.7.1"),
        ("<user@local.example.foreign.example>", "554 5.7.1"),
        ("<user@foreign.example@local.example>", "501 5.1.3"),
        ("<user@local.example\\\\@foreign.example>", "501 5.1.3"),
        ("<Alice@local.example>", "550 5.1.1"),
        ("<user@unroutable.test>", "554 5.7.1"),
    ];
    for (path, code) in cases {
        let mut h = mx();
        h.check(&format!(
            r"S: 220
             C: EHLO c
             S: 250
             C: MAIL FROM:<a@far.example>
             S: 250
             C: RCPT TO:{path}
             S: {code}"
        ));
    }
}

#[test]
fn relay_rules_allow() {
    // From 10.0.0.0/8, relaying is allowed; a domain no connector serves is
    // unroutable.
    let mut h = Harness::new(plan(), TlsMode::StartTlsOffer, AuthMode::Offer, "10.1.2.3");
    h.check(
        r"S: 220
         C: EHLO c
         S: 250
         C: MAIL FROM:<a@far.example>
         S: 250
         C: RCPT TO:<USER@Foreign.Example.>
         S: 250 2.1.5
         C: RCPT TO:<user@unroutable.test>
         S: 550 5.4.4
         C: RCPT TO:<user@[1.2.3.4]>
         S: 550 5.4.4",
    );
    // A rule on the recipient.
    let mut h = mx();
    h.check(
        r"S: 220
         C: EHLO c
         S: 250
         C: MAIL FROM:<>
         S: 250
         C: RCPT TO:<x@hq.partner.example>
         S: 250 2.1.5
         C: RCPT TO:<x@partner.example>
         S: 554 5.7.1",
    );
}

#[test]
fn postmaster_recipient_limit_and_unknown_forward() {
    let mut h = mx();
    h.check(
        r"S: 220
         C: EHLO c
         S: 250
         C: MAIL FROM:<>
         S: 250
         C: RCPT TO:<Postmaster>
         S: 250 2.1.5
         C: RCPT TO:<alice@local.example>
         S: 250
         C: RCPT TO:<sales@local.example>
         S: 250
         C: RCPT TO:<sales@local.example>
         S: 452 4.5.3",
    );
    let mut p = plan();
    p.unknown_recipients = UnknownRecipients::Forward {
        host: "old.local.example".into(),
        port: 25,
    };
    let mut h = Harness::new(p, TlsMode::StartTlsOffer, AuthMode::Offer, "203.0.113.5");
    h.check(
        r"S: 220
         C: HELO c
         S: 250
         C: MAIL FROM:<a@far.example> SIZE=10
         S: 555 5.5.4
         C: MAIL FROM:<a@far.example>
         S: 250
         C: RCPT TO:<nobody@local.example>
         S: 250 2.1.5
         C: DATA
         S: 354
         C: x\r\n.
         S: DELIVER
         S: 250",
    );
    let d = &h.deliveries[0];
    assert!(String::from_utf8_lossy(&d.message).contains("with SMTP id"));
    assert!(matches!(
        d.envelope.recipients[0].disposition,
        Disposition::ForwardUnknown { .. }
    ));
}

#[test]
fn sequence_errors() {
    let mut h = mx();
    h.check(
        r"S: 220
         C: MAIL FROM:<a@far.example>
         S: 503 5.5.1
         C: EHLO c
         S: 250
         C: RCPT TO:<alice@local.example>
         S: 503 5.5.1
         C: DATA
         S: 503 5.5.1
         C: MAIL FROM:<a@far.example>
         S: 250
         C: MAIL FROM:<a@far.example>
         S: 503 5.5.1
         C: DATA
         S: 554 5.5.1
         C: MAIL FROM:<ü@far.example>
         S: 503
         C: RSET
         S: 250
         C: MAIL FROM:<ü@far.example>
         S: 553 5.6.7
         C: MAIL FROM:<ü@far.example> SMTPUTF8
         S: 250
         C: VRFY alice
         S: 252 2.5.0
         C: HELP
         S: 214
         C: EXPN sales
         S: 502 5.5.1",
    );
}

#[test]
fn hop_limit() {
    let mut h = mx();
    let hops = r"Received: a\r\n".repeat(4);
    h.check(&format!(
        r"S: 220
         C: EHLO c
         S: 250
         C: MAIL FROM:<a@far.example>
         S: 250
         C: RCPT TO:<alice@local.example>
         S: 250
         C: DATA
         S: 354
         C: {hops}\r\nbody\r\n.
         S: 554 5.4.6"
    ));
}

#[test]
fn bdat_chunks() {
    let mut h = mx();
    h.check(
        r"S: 220
         C: EHLO c
         S: 250
         R: BDAT 5\r\nabcde
         S: 503 5.5.1
         C: MAIL FROM:<a@far.example>
         S: 250
         R: BDAT 3\r\nabc
         S: 554 5.5.1
         C: RCPT TO:<alice@local.example>
         S: 250
         R: BDAT 4\r\nA\r\n.
         S: 250 2.0.0 4 octets received
         R: BDAT 3 LAST\r\n\r\nB
         S: DELIVER
         S: 250 2.0.0 Ok: queued as Q1
         C: MAIL FROM:<a@far.example>
         S: 250
         C: RCPT TO:<alice@local.example>
         S: 250
         R: BDAT 2000 LAST\r\n",
    );
    let body = &h.deliveries[0].message;
    assert!(body.ends_with(b"\r\nA\r\n.\r\nB"), "{body:?}");
    // The 2000-octet chunk is read to its end and refused as too big.
    let mut rest = vec![b'x'; 1998];
    rest.extend_from_slice(b"\r\nNOOP\r\n");
    h.send(&rest);
    h.check(
        r"S: 552 5.3.4
         S: 250 2.0.0 Ok",
    );
}

/// `plan()` with `etrn "partner.example", "*.partner.example",
/// "down.example" from 192.0.2.0/24`.
fn etrn_plan() -> Plan {
    let mut plan = plan();
    plan.etrn.push(mailgw_plan::Etrn {
        domains: ["partner.example", "*.partner.example", "down.example"]
            .into_iter()
            .map(|d| DomainPattern::parse(d).unwrap())
            .collect(),
        from: vec![Network::new("192.0.2.0".parse().unwrap(), 24).unwrap()],
        source: src(90),
    });
    plan
}

#[test]
fn etrn_for_the_domains_and_clients_a_rule_allows() {
    let mut h = Harness::new(etrn_plan(), TlsMode::None, AuthMode::Off, "192.0.2.7");
    assert!(ehlo_lines(&mut h).contains(&"ETRN".to_owned()));
    h.check(
        "S: 220
         C: ETRN partner.example
         S: ETRN partner.example
         S: 253 2.0.0 OK, 3 pending messages for node partner.example started
         C: ETRN @Sub.Partner.Example.
         S: ETRN sub.partner.example
         S: 251 2.0.0 OK, no messages waiting for node sub.partner.example
         C: ETRN down.example
         S: ETRN down.example
         S: 458 4.3.0 Unable to queue messages for node down.example
         C: ETRN other.example
         S: 459 4.7.1 Node other.example not allowed
         C: ETRN #outbound
         S: 458 4.5.0
         C: ETRN
         S: 501
         C: ETRN a.example b.example
         S: 501
         C: ETRN bad..domain
         S: 501 5.5.4",
    );
    let mut outsider = Harness::new(etrn_plan(), TlsMode::None, AuthMode::Off, "203.0.113.5");
    outsider.check(
        "S: 220
         C: EHLO client.example
         S: 250
         C: ETRN partner.example
         S: 459 4.7.1 Node partner.example not allowed",
    );
    let mut h = mx();
    assert!(!ehlo_lines(&mut h).contains(&"ETRN".to_owned()));
    h.check(
        "S: 220
         C: ETRN partner.example
         S: 502 5.5.1",
    );
}
