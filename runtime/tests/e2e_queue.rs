//! End to end: the queue manager of the real `mailgw` binary delivering to
//! real peers on loopback — two Dovecots over LMTP (the backends), Postfix's
//! smtp-sink as the smarthost, a scripted content filter — with mail sent by
//! Python's smtplib. DSNs are parsed with Python's `email` package. Skipped
//! with a message when a peer cannot run here (`scripts/test` installs
//! them).

mod delivery_support;
mod dovecot;
#[path = "e2e/harness.rs"]
mod harness;
mod ports;

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use delivery_support::SmtpSink;
use dovecot::Dovecot;
use harness::{manifest_dir, Gateway};
use ports::free_port;

/// Two backends: alice, postmaster and journal on mbx1, bob on mbx2.
struct Backends {
    mbx1: Dovecot,
    mbx2: Dovecot,
}

impl Backends {
    fn start() -> Option<Backends> {
        let mbx1 = Dovecot::builder()
            .users(&[("alice", "pw"), ("postmaster", "pw"), ("journal", "pw")])
            .start()?;
        let mbx2 = Dovecot::builder().users(&[("bob", "pw")]).start()?;
        Some(Backends { mbx1, mbx2 })
    }

    /// The gateway's configuration: one inbound listener, the backends,
    /// a group, connector lines and `extra` statements.
    fn config(&self, smtp: u16, connectors: &str, extra: &str) -> String {
        format!(
            r#"
gateway {{ hostname "gw.test"; postmaster "postmaster@example.test" }}
listener "mx" {{ protocol smtp; bind 127.0.0.1:{smtp}; auth off }}
domain "example.test" local
backend "mbx1" {{ host "127.0.0.1"; lmtp {} }}
backend "mbx2" {{ host "127.0.0.1"; lmtp {} }}
mailbox "alice" on "mbx1" {{ address "alice@example.test" }}
mailbox "postmaster" on "mbx1" {{ address "postmaster@example.test" }}
mailbox "journal" on "mbx1" {{ address "journal@example.test" }}
mailbox "bob" on "mbx2" {{ address "bob@example.test", "robert@example.test" }}
group "team" {{ address "team@example.test"; member "alice", "bob", "carol@remote.test" }}
{connectors}
relay {{ allow from 127.0.0.1/32; deny all }}
queue {{ spool "spool"; retry 1s; warn-after 1h; expire 1d }}
{extra}
"#,
            self.mbx1.lmtp, self.mbx2.lmtp
        )
    }
}

fn smarthost(name: &str, port: u16, cost: u32) -> String {
    format!(
        r#"connector "{name}" {{ address-space "*" cost {cost}; deliver smarthost 127.0.0.1:{port} tls none }}"#
    )
}

fn start(config: &str, smtp: u16) -> Gateway {
    Gateway::start_text(config, &[], smtp)
}

/// Sends one message with queue_client.py; the client connects from
/// `source` (127.0.0.1 is inside: it may relay).
fn send_from(source: &str, port: u16, from: &str, to: &str, subject: &str, opts: [&str; 2]) {
    let out = client(
        source,
        &[
            "send",
            &port.to_string(),
            from,
            to,
            subject,
            opts[0],
            opts[1],
        ],
    );
    assert!(
        out.status.success(),
        "send failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn send(port: u16, from: &str, to: &str, subject: &str) {
    send_from("127.0.0.1", port, from, to, subject, ["", ""]);
}

fn client(source: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg(manifest_dir().join("tests/e2e/queue_client.py"))
        .args(args)
        .env("SOURCE", source)
        .output()
        .expect("run python3")
}

/// Waits up to `secs` for `done`, polling.
fn wait_for(secs: u64, what: &str, gw: &Gateway, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- gateway log ---\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(message: &[u8]) -> String {
    String::from_utf8_lossy(message).into_owned()
}

fn with_subject<'a>(messages: &'a [Vec<u8>], subject: &str) -> Vec<&'a Vec<u8>> {
    let needle = format!("Subject: {subject}\r\n");
    messages
        .iter()
        .filter(|m| text(m).contains(&needle) || text(m).contains(&needle.replace("\r\n", "\n")))
        .collect()
}

#[test]
fn local_mail_reaches_the_right_backend_and_groups_expand_once() {
    let Some(b) = Backends::start() else { return };
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let smtp = free_port();
    let gw = start(&b.config(smtp, &smarthost("out", sink.port, 1), ""), smtp);

    send(smtp, "sender@remote.test", "alice@example.test", "to alice");
    send(
        smtp,
        "sender@remote.test",
        "robert@example.test",
        "to bob by his second address",
    );
    send(
        smtp,
        "sender@remote.test",
        "team@example.test,alice@example.test,postmaster@example.test,robert@example.test",
        "to the team",
    );

    wait_for(20, "an empty queue", &gw, || gw.queued().is_empty());
    let alice = b.mbx1.messages("alice");
    let bob = b.mbx2.messages("bob");
    assert_eq!(with_subject(&alice, "to alice").len(), 1, "{alice:?}");
    assert_eq!(with_subject(&bob, "to bob by his second address").len(), 1);
    // alice is a member and a direct recipient, bob a member and a direct
    // recipient by his other address: one copy each.
    assert_eq!(with_subject(&alice, "to the team").len(), 1);
    assert_eq!(with_subject(&bob, "to the team").len(), 1);
    // Two mailboxes of one backend in one transaction: each its own copy.
    let postmaster = b.mbx1.messages("postmaster");
    assert_eq!(with_subject(&postmaster, "to the team").len(), 1);
    assert!(b.mbx2.messages("alice").is_empty());
    assert!(b.mbx1.messages("bob").is_empty());
    let dumps = sink.dumps(1);
    assert_eq!(dumps.len(), 1, "only carol is remote");
    // The member goes out with the group as its original recipient.
    assert_eq!(
        dumps[0].rcpt_args,
        vec!["<carol@remote.test> ORCPT=rfc822;team@example.test".to_owned()]
    );
    assert!(dumps[0].message.contains("Subject: to the team"));
    let delivered = with_subject(&alice, "to alice")[0];
    assert!(
        text(delivered).contains("Received: from client.test"),
        "{}",
        text(delivered)
    );
}

#[test]
fn relayed_mail_reaches_the_smarthost_with_its_envelope() {
    let Some(b) = Backends::start() else { return };
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let smtp = free_port();
    let gw = start(&b.config(smtp, &smarthost("out", sink.port, 1), ""), smtp);
    send(
        smtp,
        "alice@example.test",
        "carol@remote.test,dave@remote.test",
        "relayed",
    );
    wait_for(20, "an empty queue", &gw, || gw.queued().is_empty());
    let dumps = sink.dumps(1);
    assert_eq!(dumps.len(), 1, "one transaction for both recipients");
    assert!(
        dumps[0].mail_args.contains("alice@example.test"),
        "{}",
        dumps[0].mail_args
    );
    assert_eq!(
        dumps[0].rcpt_args,
        vec![
            "<carol@remote.test>".to_owned(),
            "<dave@remote.test>".to_owned()
        ]
    );
    assert!(dumps[0].message.contains("hello from the queue test"));
    assert!(gw.log().contains("delivered"));
}

#[test]
fn a_dead_smarthost_defers_and_the_retry_delivers() {
    let Some(b) = Backends::start() else { return };
    let port = free_port();
    let smtp = free_port();
    let gw = start(&b.config(smtp, &smarthost("out", port, 1), ""), smtp);
    send(smtp, "alice@example.test", "carol@remote.test", "retried");
    gw.wait_log("deferred", 1);
    assert_eq!(gw.queued().len(), 1, "kept after the failed attempt");
    let Some(sink) = SmtpSink::start_on(std::net::Ipv4Addr::LOCALHOST, port, &[]) else {
        return;
    };
    wait_for(20, "the retry", &gw, || gw.queued().is_empty());
    assert_eq!(sink.dumps(1).len(), 1);
}

#[test]
fn a_connector_that_cannot_be_reached_fails_over_and_equal_costs_share() {
    let Some(b) = Backends::start() else { return };
    let (Some(first), Some(second)) = (SmtpSink::start(&[]), SmtpSink::start(&[])) else {
        return;
    };
    let dead = free_port();
    let connectors = [
        smarthost("dead", dead, 1),
        r#"connector "a" { address-space "share.test" cost 1; deliver smarthost 127.0.0.1:PA tls none }"#
            .replace("PA", &first.port.to_string()),
        r#"connector "b" { address-space "share.test" cost 1; deliver smarthost 127.0.0.1:PB tls none }"#
            .replace("PB", &second.port.to_string()),
        smarthost("backup", first.port, 5),
    ]
    .join("\n");
    let smtp = free_port();
    let gw = start(&b.config(smtp, &connectors, ""), smtp);
    send(smtp, "alice@example.test", "carol@remote.test", "failover");
    wait_for(20, "the failover", &gw, || gw.queued().is_empty());
    assert_eq!(first.dumps(1).len(), 1, "the costlier connector took it");
    for n in 0..6 {
        send(
            smtp,
            "alice@example.test",
            "x@share.test",
            &format!("shared {n}"),
        );
    }
    wait_for(20, "an empty queue", &gw, || gw.queued().is_empty());
    let (a, b2) = (first.dumps(7).len() - 1, second.dumps(1).len());
    assert_eq!(a + b2, 6);
    assert!(
        a >= 1 && b2 >= 1,
        "both equal-cost connectors used: {a} and {b2}"
    );
}

#[test]
fn a_temporary_refusal_defers_and_the_retry_delivers() {
    let Some(b) = Backends::start() else { return };
    let Some(refusing) = SmtpSink::start(&["-r", "data"]) else {
        return;
    };
    let port = refusing.port;
    let smtp = free_port();
    let gw = start(&b.config(smtp, &smarthost("out", port, 1), ""), smtp);
    send(
        smtp,
        "alice@example.test",
        "carol@remote.test",
        "refused for now",
    );
    // Deferred with the 4xx's status, not failed.
    gw.wait_log("rcpt=carol@remote.test status=4.", 1);
    assert!(!gw.log().contains("status=5."), "{}", gw.log());
    assert_eq!(gw.queued().len(), 1, "kept after the 4xx");
    drop(refusing);
    let Some(sink) = SmtpSink::start_on(std::net::Ipv4Addr::LOCALHOST, port, &[]) else {
        return;
    };
    wait_for(20, "the retry", &gw, || gw.queued().is_empty());
    let dumps = sink.dumps(1);
    assert_eq!(dumps.len(), 1);
    assert!(dumps[0].message.contains("Subject: refused for now"));
}

#[test]
fn unknown_local_recipients_are_forwarded_to_the_forward_host() {
    let Some(b) = Backends::start() else { return };
    let (Some(out), Some(catchall)) = (SmtpSink::start(&[]), SmtpSink::start(&[])) else {
        return;
    };
    let smtp = free_port();
    let forward = format!("unknown-recipients forward to 127.0.0.1:{}", catchall.port);
    let gw = start(
        &b.config(smtp, &smarthost("out", out.port, 1), &forward),
        smtp,
    );
    send(
        smtp,
        "sender@remote.test",
        "nobody@example.test,alice@example.test",
        "to somebody unknown",
    );
    wait_for(20, "an empty queue", &gw, || gw.queued().is_empty());
    let dumps = catchall.dumps(1);
    assert_eq!(dumps.len(), 1);
    assert_eq!(dumps[0].rcpt_args, vec!["<nobody@example.test>".to_owned()]);
    assert!(dumps[0].message.contains("Subject: to somebody unknown"));
    assert_eq!(
        with_subject(&b.mbx1.messages("alice"), "to somebody unknown").len(),
        1,
        "the known recipient goes to its mailbox"
    );
    assert!(out.dumps(0).is_empty(), "nothing went to the smarthost");
}

/// A port that takes connections and never answers.
struct Tarpit {
    _listener: std::net::TcpListener,
    port: u16,
}

impl Tarpit {
    fn start() -> Tarpit {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        Tarpit {
            _listener: listener,
            port,
        }
    }
}

#[test]
fn a_hop_that_never_answers_does_not_hold_up_the_others() {
    let Some(b) = Backends::start() else { return };
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let tarpit = Tarpit::start();
    let connectors = format!(
        "{}\n{}",
        r#"connector "slow" { address-space "slow.test" cost 1; deliver smarthost 127.0.0.1:PT tls none }"#
            .replace("PT", &tarpit.port.to_string()),
        smarthost("out", sink.port, 1)
    );
    let smtp = free_port();
    let config = b
        .config(smtp, &connectors, "")
        .replace("retry 1s;", "retry 1s; concurrency 2; per-destination 1;");
    let gw = start(&config, smtp);
    // Three messages for the hop that never answers: one connection to
    // it (its limit), two waiting for it.
    for n in 0..3 {
        send(
            smtp,
            "alice@example.test",
            "x@slow.test",
            &format!("slow {n}"),
        );
    }
    send(
        smtp,
        "alice@example.test",
        "carol@remote.test",
        "not held up",
    );
    wait_for(15, "the other hop's delivery", &gw, || {
        !sink.dumps(0).is_empty()
    });
    assert!(sink.dumps(1)[0].message.contains("Subject: not held up"));
    assert_eq!(gw.queued().len(), 3, "the slow hop's messages wait");
}

#[test]
fn a_crash_during_delivery_loses_nothing_and_resends_nothing() {
    let Some(b) = Backends::start() else { return };
    let tarpit = Tarpit::start();
    let port = tarpit.port;
    let smtp = free_port();
    let mut gw = start(&b.config(smtp, &smarthost("out", port, 1), ""), smtp);
    send(
        smtp,
        "sender@remote.test",
        "alice@example.test,carol@remote.test",
        "crash",
    );
    wait_for(20, "alice's copy", &gw, || {
        gw.log().contains("rcpt=alice@example.test reply=250")
    });
    // carol's delivery hangs on the tarpit; the gateway dies meanwhile.
    let pid = gw.pid();
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let _ = gw.wait_exit();
    drop(tarpit);
    let Some(sink) = SmtpSink::start_on(std::net::Ipv4Addr::LOCALHOST, port, &[]) else {
        return;
    };
    gw.launch();
    gw.wait_port(smtp);
    wait_for(30, "carol's copy after the restart", &gw, || {
        gw.queued().is_empty()
    });
    assert_eq!(sink.dumps(1).len(), 1);
    assert_eq!(
        with_subject(&b.mbx1.messages("alice"), "crash").len(),
        1,
        "alice was delivered before the crash and not again"
    );
}

/// A scripted content filter (queue_client.py filter), killed on drop.
struct ContentFilter(Child);

impl ContentFilter {
    fn start(listen: u16, back: u16) -> ContentFilter {
        let child = Command::new("python3")
            .arg(manifest_dir().join("tests/e2e/queue_client.py"))
            .args(["filter", &listen.to_string(), &back.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the filter");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(Instant::now() < deadline, "the filter did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        ContentFilter(child)
    }
}

impl Drop for ContentFilter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn inbound_mail_passes_the_content_filter_once_and_outbound_does_not() {
    let Some(b) = Backends::start() else { return };
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let (smtp, filter, back) = (free_port(), free_port(), free_port());
    let extra = format!(
        "filter inbound smtp 127.0.0.1:{filter}\n\
         listener \"back\" {{ protocol smtp; bind 127.0.0.1:{back}; auth off; filter-return }}"
    );
    let gw = start(
        &b.config(smtp, &smarthost("out", sink.port, 1), &extra),
        smtp,
    );
    let _filter = ContentFilter::start(filter, back);
    // From 127.0.0.5: outside (the relay rule trusts 127.0.0.1 only).
    send_from(
        "127.0.0.5",
        smtp,
        "x@remote.test",
        "alice@example.test",
        "inbound",
        ["", ""],
    );
    send(smtp, "alice@example.test", "carol@remote.test", "outbound");
    wait_for(20, "an empty queue", &gw, || {
        gw.queued().is_empty() && !b.mbx1.messages("alice").is_empty()
    });
    let alice = b.mbx1.messages("alice");
    let inbound = with_subject(&alice, "inbound");
    assert_eq!(inbound.len(), 1);
    assert_eq!(text(inbound[0]).matches("X-Filtered: yes").count(), 1);
    let dumps = sink.dumps(1);
    assert_eq!(dumps.len(), 1);
    assert!(
        !dumps[0].message.contains("X-Filtered"),
        "outbound mail is not filtered"
    );
}

#[test]
fn etrn_from_an_allowed_client_starts_the_domains_mail_at_once() {
    let Some(b) = Backends::start() else { return };
    let port = free_port();
    let smtp = free_port();
    let extra = "etrn \"remote.test\" from 127.0.0.1/32";
    let config = b
        .config(smtp, &smarthost("out", port, 1), extra)
        .replace("retry 1s", "retry 1h");
    let gw = start(&config, smtp);
    send(smtp, "alice@example.test", "carol@remote.test", "etrn");
    gw.wait_log("deferred", 1);
    let Some(sink) = SmtpSink::start_on(std::net::Ipv4Addr::LOCALHOST, port, &[]) else {
        return;
    };
    // Without ETRN the next attempt is an hour away.
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{smtp}"),
            "--quit-after",
            "EHLO",
        ])
        .output();
    let Ok(out) = out else {
        eprintln!("SKIPPED: swaks is not installed");
        return;
    };
    assert!(String::from_utf8_lossy(&out.stdout).contains("250-ETRN"));
    let answer = smtp_command(smtp, "ETRN remote.test");
    assert!(answer.starts_with("253 2.0.0 OK, 1 pending"), "{answer}");
    wait_for(20, "the delivery ETRN started", &gw, || {
        gw.queued().is_empty()
    });
    assert_eq!(sink.dumps(1).len(), 1);
    assert!(smtp_command(smtp, "ETRN other.test").starts_with("459"));
}

/// Sends EHLO then `command` on a raw connection; the reply to `command`.
fn smtp_command(port: u16, command: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut line = String::new();
    let mut reply = |reader: &mut BufReader<std::net::TcpStream>| loop {
        line.clear();
        reader.read_line(&mut line).expect("read");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.trim_end().to_owned();
        }
    };
    reply(&mut reader);
    writer.write_all(b"EHLO client.test\r\n").expect("write");
    reply(&mut reader);
    writer
        .write_all(format!("{command}\r\nQUIT\r\n").as_bytes())
        .expect("write");
    reply(&mut reader)
}

/// The DSN `message` as Python's `email` package reads it (JSON).
fn parse_dsn(message: &[u8]) -> serde_json::Value {
    let file = tempfile::NamedTempFile::new().expect("temporary file");
    std::fs::write(file.path(), message).expect("write");
    let out = client("127.0.0.1", &["dsn", &file.path().display().to_string()]);
    assert!(
        out.status.success(),
        "dsn parse failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        text(message)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn reports(messages: &[Vec<u8>]) -> Vec<&Vec<u8>> {
    messages
        .iter()
        .filter(|m| text(m).contains("report-type=delivery-status"))
        .collect()
}

#[test]
fn a_refused_recipient_bounces_to_the_sender_with_a_dsn_and_a_copy() {
    let Some(b) = Backends::start() else { return };
    let Some(sink) = SmtpSink::start(&["-f", "rcpt"]) else {
        return;
    };
    let smtp = free_port();
    let extra = "ndr { copy-to \"postmaster@example.test\" }";
    let gw = start(
        &b.config(smtp, &smarthost("out", sink.port, 1), extra),
        smtp,
    );
    send_from(
        "127.0.0.1",
        smtp,
        "alice@example.test",
        "carol@remote.test",
        "bounced",
        [
            "RET=HDRS ENVID=env-42",
            "NOTIFY=FAILURE ORCPT=rfc822;Carol@Remote.test",
        ],
    );
    wait_for(20, "the DSN", &gw, || {
        gw.queued().is_empty() && !reports(&b.mbx1.messages("alice")).is_empty()
    });
    let alice = b.mbx1.messages("alice");
    let dsn = parse_dsn(reports(&alice)[0]);
    assert_eq!(dsn["content_type"], "multipart/report");
    assert_eq!(dsn["report_type"], "delivery-status");
    assert_eq!(
        dsn["parts"],
        serde_json::json!([
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ])
    );
    assert_eq!(
        dsn["headers"]["Subject"],
        "Undelivered Mail Returned to Sender"
    );
    assert_eq!(
        dsn["headers"]["From"],
        "Mail Delivery System <postmaster@example.test>"
    );
    assert_eq!(dsn["headers"]["Auto-Submitted"], "auto-replied");
    assert_eq!(dsn["per_message"]["Reporting-MTA"], "dns; gw.test");
    assert_eq!(dsn["per_message"]["Original-Envelope-Id"], "env-42");
    let r = &dsn["per_recipient"][0];
    assert_eq!(r["Final-Recipient"], "rfc822; carol@remote.test");
    assert_eq!(r["Original-Recipient"], "rfc822;Carol@Remote.test");
    assert_eq!(r["Action"], "failed");
    assert!(
        r["Status"].as_str().is_some_and(|s| s.starts_with("5.")),
        "{r}"
    );
    assert!(
        r["Diagnostic-Code"]
            .as_str()
            .is_some_and(|d| d.starts_with("smtp; 5")),
        "{r}"
    );
    assert_eq!(r["Remote-MTA"], "dns; 127.0.0.1");
    assert!(dsn["returned_headers_text"]
        .as_str()
        .is_some_and(|h| h.contains("Subject: bounced")));
    assert!(
        !text(reports(&alice)[0]).contains("hello from the queue test"),
        "RET=HDRS"
    );
    // The DSN came from the null sender: the gateway's Return-Path.
    assert!(
        text(reports(&alice)[0]).contains("Return-Path: <>"),
        "{}",
        text(reports(&alice)[0])
    );
    let copies = b.mbx1.messages("postmaster");
    assert_eq!(reports(&copies).len(), 1, "ndr copy-to\n{}", gw.log());

    // NOTIFY=NEVER and the null sender: failed, and nobody is told.
    send_from(
        "127.0.0.1",
        smtp,
        "alice@example.test",
        "dave@remote.test",
        "never",
        ["", "NOTIFY=NEVER"],
    );
    send_from(
        "127.0.0.1",
        smtp,
        "",
        "erin@remote.test",
        "null sender",
        ["", ""],
    );
    wait_for(20, "both failures", &gw, || {
        gw.queued().is_empty()
            && gw.log().contains("rcpt=dave@remote.test status=5")
            && gw.log().contains("rcpt=erin@remote.test status=5")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(gw.queued().is_empty());
    assert_eq!(
        reports(&b.mbx1.messages("alice")).len(),
        1,
        "no DSN for NOTIFY=NEVER"
    );
    assert_eq!(reports(&b.mbx1.messages("postmaster")).len(), 1);
}

#[test]
fn an_undeliverable_message_warns_once_then_expires_with_a_failure_report() {
    let Some(b) = Backends::start() else { return };
    let dead = free_port();
    let smtp = free_port();
    let config = b
        .config(smtp, &smarthost("out", dead, 1), "")
        .replace("warn-after 1h; expire 1d", "warn-after 1s; expire 4s");
    let gw = start(&config, smtp);
    send(smtp, "alice@example.test", "carol@remote.test", "stuck");
    wait_for(30, "the expiry", &gw, || {
        gw.queued().is_empty() && reports(&b.mbx1.messages("alice")).len() >= 2
    });
    let alice = b.mbx1.messages("alice");
    let dsns: Vec<serde_json::Value> = reports(&alice).into_iter().map(|m| parse_dsn(m)).collect();
    assert_eq!(dsns.len(), 2, "one warning, one failure");
    let warning = dsns
        .iter()
        .find(|d| d["per_recipient"][0]["Action"] == "delayed")
        .expect("a delay warning");
    assert_eq!(
        warning["headers"]["Subject"],
        "Delayed Mail (still being retried)"
    );
    assert!(warning["per_recipient"][0]["Will-Retry-Until"].is_string());
    assert_eq!(warning["parts"][2], "text/rfc822-headers");
    let failure = dsns
        .iter()
        .find(|d| d["per_recipient"][0]["Action"] == "failed")
        .expect("a failure report");
    assert_eq!(failure["per_recipient"][0]["Status"], "4.4.7");
    assert!(failure["text"]
        .as_str()
        .is_some_and(|t| t.contains("delivery time expired")));
    assert_eq!(failure["parts"][2], "message/rfc822");
    assert!(failure["returned_body"]
        .as_str()
        .is_some_and(|t| t.contains("hello from the queue test")));
}

#[test]
fn notify_failure_gets_no_warning_and_notify_delay_no_failure_report() {
    let Some(b) = Backends::start() else { return };
    let dead = free_port();
    let smtp = free_port();
    let config = b
        .config(smtp, &smarthost("out", dead, 1), "")
        .replace("warn-after 1h; expire 1d", "warn-after 1s; expire 4s");
    let gw = start(&config, smtp);
    send_from(
        "127.0.0.1",
        smtp,
        "alice@example.test",
        "carol@remote.test",
        "failure only",
        ["", "NOTIFY=FAILURE"],
    );
    send_from(
        "127.0.0.1",
        smtp,
        "bob@example.test",
        "carol@remote.test",
        "delay only",
        ["", "NOTIFY=DELAY"],
    );
    wait_for(30, "the expiry", &gw, || {
        gw.queued().is_empty()
            && !reports(&b.mbx1.messages("alice")).is_empty()
            && !reports(&b.mbx2.messages("bob")).is_empty()
    });
    let actions = |messages: &[Vec<u8>]| -> Vec<String> {
        reports(messages)
            .into_iter()
            .map(|m| parse_dsn(m)["per_recipient"][0]["Action"].to_string())
            .collect()
    };
    assert_eq!(actions(&b.mbx1.messages("alice")), ["\"failed\""]);
    assert_eq!(actions(&b.mbx2.messages("bob")), ["\"delayed\""]);
}

#[test]
fn success_is_reported_when_asked() {
    let Some(b) = Backends::start() else { return };
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let smtp = free_port();
    let gw = start(&b.config(smtp, &smarthost("out", sink.port, 1), ""), smtp);
    send_from(
        "127.0.0.1",
        smtp,
        "alice@example.test",
        "bob@example.test",
        "success",
        ["", "NOTIFY=SUCCESS"],
    );
    wait_for(20, "the success report", &gw, || {
        gw.queued().is_empty() && !reports(&b.mbx1.messages("alice")).is_empty()
    });
    let dsn = parse_dsn(reports(&b.mbx1.messages("alice"))[0]);
    assert_eq!(dsn["headers"]["Subject"], "Successful Mail Delivery Report");
    assert_eq!(dsn["per_recipient"][0]["Action"], "delivered");
    assert_eq!(
        dsn["per_recipient"][0]["Final-Recipient"],
        "rfc822; bob@example.test"
    );
    assert_eq!(with_subject(&b.mbx2.messages("bob"), "success").len(), 1);
}

#[test]
fn journal_reports_and_disclaimers_follow_the_direction() {
    let Some(b) = Backends::start() else { return };
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let smtp = free_port();
    let extra = "journal to \"journal@example.test\" scope both\n\
                 disclaimer outbound append \"OUTBOUND-NOTICE\"\n\
                 disclaimer inbound prepend \"[EXTERNAL]\"";
    let gw = start(
        &b.config(smtp, &smarthost("out", sink.port, 1), extra),
        smtp,
    );
    send_from(
        "127.0.0.5",
        smtp,
        "x@remote.test",
        "alice@example.test",
        "from outside",
        ["", ""],
    );
    send(
        smtp,
        "alice@example.test",
        "carol@remote.test,bob@example.test",
        "from inside",
    );
    wait_for(20, "everything delivered", &gw, || {
        gw.queued().is_empty() && b.mbx1.messages("journal").len() >= 2
    });
    let alice = b.mbx1.messages("alice");
    // Dovecot stores messages with LF line ends.
    let inbound = text(with_subject(&alice, "from outside")[0]).replace("\r\n", "\n");
    let body = inbound.split_once("\n\n").map_or("", |(_, b)| b);
    assert!(body.starts_with("[EXTERNAL]\n\nhello"), "{inbound}");
    assert!(!inbound.contains("OUTBOUND-NOTICE"));

    let dumps = sink.dumps(1);
    assert_eq!(dumps.len(), 1);
    assert!(
        dumps[0]
            .message
            .contains("hello from the queue test\n\nOUTBOUND-NOTICE"),
        "{}",
        dumps[0].message
    );
    assert!(!dumps[0].message.contains("[EXTERNAL]"));
    let bob = text(with_subject(&b.mbx2.messages("bob"), "from inside")[0]);
    assert!(
        !bob.contains("OUTBOUND-NOTICE") && !bob.contains("[EXTERNAL]"),
        "{bob}"
    );

    let journal = b.mbx1.messages("journal");
    let inside = journal
        .iter()
        .map(|m| text(m).replace("\r\n", "\n"))
        .find(|m| m.contains("Subject: Journal: from inside"))
        .expect("a journal report of the inside message");
    assert!(inside.contains("Recipient: carol@remote.test\n"));
    assert!(
        inside.contains("Recipient: bob@example.test\n"),
        "the Bcc-like recipient is listed"
    );
    assert!(inside.contains("Sender: alice@example.test\n"));
    assert!(inside.contains("Content-Type: message/rfc822"));
    assert!(
        !inside.contains("OUTBOUND-NOTICE"),
        "the journal keeps the original"
    );
    assert!(journal
        .iter()
        .any(|m| text(m).contains("Subject: Journal: from outside")));
}

#[test]
fn mx_delivery_by_the_plans_name_server_and_sender_restrictions() {
    let Some(b) = Backends::start() else { return };
    let Some(sink) = SmtpSink::start_on(std::net::Ipv4Addr::new(127, 0, 0, 7), free_port(), &[])
    else {
        return;
    };
    let Some(dns) = delivery_support::Dnsmasq::start(&[
        "--mx-host=remote.test,mx.remote.test,10".to_owned(),
        "--host-record=mx.remote.test,127.0.0.7".to_owned(),
    ]) else {
        return;
    };
    let smtp = free_port();
    let connectors = format!(
        "connector \"mx\" {{ address-space \"*\" cost 1; deliver mx port {} tls none; reject-from mailbox \"alice\" }}\n\
         dns {{ server {} }}",
        sink.port, dns.addr
    );
    let gw = start(&b.config(smtp, &connectors, ""), smtp);
    send(smtp, "bob@example.test", "carol@remote.test", "by mx");
    send(
        smtp,
        "alice@example.test",
        "carol@remote.test",
        "refused sender",
    );
    wait_for(20, "both handled", &gw, || {
        gw.queued().is_empty() && !reports(&b.mbx1.messages("alice")).is_empty()
    });
    let dumps = sink.dumps(1);
    assert_eq!(dumps.len(), 1, "only bob's message went out");
    assert!(dumps[0].mail_args.contains("bob@example.test"));
    assert!(
        gw.log().contains("mx.remote.test"),
        "delivered to the MX host"
    );
    let dsn = parse_dsn(reports(&b.mbx1.messages("alice"))[0]);
    assert_eq!(dsn["per_recipient"][0]["Status"], "5.7.1");
    assert!(
        dsn["text"]
            .as_str()
            .is_some_and(|t| t.contains("may not send through")),
        "{dsn}"
    );
}

/// Runs `mailgw queue --spool SPOOL ARGS...`.
fn admin(gw: &Gateway, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailgw"))
        .args(["queue", "--spool", &gw.spool().display().to_string()])
        .args(args)
        .output()
        .expect("run mailgw queue")
}

#[test]
fn the_queue_admin_works_on_the_running_gateway() {
    let Some(b) = Backends::start() else { return };
    let port = free_port();
    let smtp = free_port();
    let config = b
        .config(smtp, &smarthost("out", port, 1), "")
        .replace("retry 1s", "retry 1h");
    let gw = start(&config, smtp);
    send(smtp, "alice@example.test", "carol@remote.test", "held");
    gw.wait_log("deferred", 1);
    let out = admin(&gw, &["list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let entry = &list[0];
    let id = entry["id"].as_str().expect("id").to_owned();
    assert_eq!(entry["sender"], "alice@example.test");
    assert_eq!(entry["recipients"][0]["state"], "deferred");
    assert!(
        entry["recipients"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect")),
        "{entry}"
    );
    assert!(
        entry["next_attempt"].is_u64(),
        "a retry is scheduled: {entry}"
    );
    assert_eq!(entry["attempts"], 1);

    assert!(admin(&gw, &["hold", &id]).status.success());
    let shown = admin(&gw, &["show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(shown["hold"], true);

    let Some(sink) = SmtpSink::start_on(std::net::Ipv4Addr::LOCALHOST, port, &[]) else {
        return;
    };
    // Held: a retry does not send it.
    assert!(admin(&gw, &["retry", "--all"]).status.success());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sink.dumps(0).len(), 0, "a held message stays");
    assert_eq!(gw.queued(), vec![id.clone()]);
    // Released: tried at once.
    assert!(admin(&gw, &["release", &id]).status.success());
    wait_for(20, "the released message", &gw, || gw.queued().is_empty());
    assert_eq!(sink.dumps(1).len(), 1);

    drop(sink);
    send(smtp, "alice@example.test", "dave@remote.test", "deleted");
    gw.wait_log("deferred", 2);
    let id = gw.queued().pop().expect("queued");
    let text = String::from_utf8_lossy(&admin(&gw, &["list"]).stdout).into_owned();
    assert!(
        text.contains(&id) && text.contains("dave@remote.test"),
        "{text}"
    );
    assert!(admin(&gw, &["delete", &id]).status.success());
    assert!(gw.queued().is_empty());
    let missing = admin(&gw, &["show", &id]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn success_is_relayed_only_by_a_next_hop_without_dsn() {
    let Some(b) = Backends::start() else { return };
    let (Some(with_dsn), Some(without)) = (SmtpSink::start(&[]), SmtpSink::start(&["-e"])) else {
        return;
    };
    let connectors = format!(
        "connector \"dsn\" {{ address-space \"dsn.test\" cost 1; deliver smarthost 127.0.0.1:{} tls none }}\n\
         connector \"plain\" {{ address-space \"plain.test\" cost 1; deliver smarthost 127.0.0.1:{} tls none }}",
        with_dsn.port, without.port
    );
    let smtp = free_port();
    let gw = start(&b.config(smtp, &connectors, ""), smtp);
    let notify = ["", "NOTIFY=SUCCESS"];
    send_from(
        "127.0.0.1",
        smtp,
        "alice@example.test",
        "x@dsn.test",
        "onward",
        notify,
    );
    send_from(
        "127.0.0.1",
        smtp,
        "alice@example.test",
        "y@plain.test",
        "relayed",
        notify,
    );
    wait_for(20, "both delivered and the report", &gw, || {
        gw.queued().is_empty() && !reports(&b.mbx1.messages("alice")).is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(with_dsn.dumps(1).len(), 1);
    assert!(
        with_dsn.dumps(1)[0].rcpt_args[0].contains("NOTIFY=SUCCESS"),
        "NOTIFY went on to the hop that offers DSN"
    );
    assert_eq!(without.dumps(1).len(), 1);
    let alice = b.mbx1.messages("alice");
    let dsns: Vec<serde_json::Value> = reports(&alice).into_iter().map(|m| parse_dsn(m)).collect();
    assert_eq!(
        dsns.len(),
        1,
        "only the hop without DSN is reported from here"
    );
    assert_eq!(dsns[0]["per_recipient"][0]["Action"], "relayed");
    assert_eq!(
        dsns[0]["per_recipient"][0]["Final-Recipient"],
        "rfc822; y@plain.test"
    );
}
