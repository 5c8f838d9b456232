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

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use delivery_support::SmtpSink;
use dovecot::Dovecot;
use harness::{free_port, manifest_dir, Gateway};

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
        "team@example.test,alice@example.test",
        "to the team",
    );

    wait_for(20, "an empty queue", &gw, || gw.queued().is_empty());
    let alice = b.mbx1.messages("alice");
    let bob = b.mbx2.messages("bob");
    assert_eq!(with_subject(&alice, "to alice").len(), 1, "{alice:?}");
    assert_eq!(with_subject(&bob, "to bob by his second address").len(), 1);
    // alice is a member and a direct recipient: one copy.
    assert_eq!(with_subject(&alice, "to the team").len(), 1);
    assert_eq!(with_subject(&bob, "to the team").len(), 1);
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
