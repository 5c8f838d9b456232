//! End to end: signals. SIGTERM drains gracefully, SIGINT stops at once,
//! SIGHUP reloads the configuration (or keeps the running one when the new
//! one is broken).

#[path = "e2e/harness.rs"]
mod harness;
mod ports;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::{config, Gateway};
use ports::free_port;

/// A raw SMTP client: send a line, read one whole reply.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut c = Client {
            reader: BufReader::new(stream),
            writer,
        };
        assert!(c.reply().starts_with("220 "));
        c
    }

    /// One reply; its last line.
    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap_or(0);
            if n == 0 {
                return "EOF".to_owned();
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
    }

    fn command(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }
}

#[test]
fn sigterm_tells_idle_sessions_and_finishes_transactions() {
    let mut gw = Gateway::start();
    gw.wait_sessions_ended(1);
    let mut idle = Client::connect(gw.smtp);
    assert!(idle.command("EHLO idle.test").starts_with("250 "));
    let mut busy = Client::connect(gw.smtp);
    assert!(busy.command("EHLO busy.test").starts_with("250 "));
    assert!(busy
        .command("MAIL FROM:<a@remote.test>")
        .starts_with("250 "));
    assert!(busy
        .command("RCPT TO:<alice@example.test>")
        .starts_with("250 "));
    assert!(busy.command("DATA").starts_with("354 "));
    busy.send("Subject: in flight\r\n\r\nfirst half");

    gw.signal("TERM");
    assert!(idle.reply().starts_with("421 4.3.0"), "{}", gw.log());
    // No new connections.
    gw.wait_log("stopped accepting", 2);
    assert!(TcpStream::connect(("127.0.0.1", gw.smtp)).is_err());
    // The transaction in flight finishes, then the session is told.
    busy.send("second half\r\n.");
    let done = busy.reply();
    assert!(done.starts_with("250 "), "{done}\n{}", gw.log());
    assert!(busy.reply().starts_with("421 4.3.0"));
    let status = gw.wait_exit().expect("mailgw exits after the drain");
    assert!(status.success(), "{status}");
    assert_eq!(gw.queued().len(), 1);
}

#[test]
fn sigint_stops_at_once() {
    let mut gw = Gateway::start();
    let mut c = Client::connect(gw.smtp);
    assert!(c.command("EHLO x.test").starts_with("250 "));
    assert!(c.command("MAIL FROM:<a@remote.test>").starts_with("250 "));
    let start = Instant::now();
    gw.signal("INT");
    gw.wait_exit().expect("mailgw exits");
    assert!(start.elapsed() < Duration::from_secs(3));
    // Sessions are cut: at most a last 421, no waiting for them.
    let last = c.reply();
    assert!(last == "EOF" || last.starts_with("421 4.3.0"), "{last}");
}

#[test]
fn sighup_adds_a_listener_and_keeps_sessions_in_flight() {
    let mut gw = Gateway::start();
    let mut before = Client::connect(gw.smtp);
    assert!(before.command("EHLO x.test").starts_with("250 "));

    let extra = free_port();
    let text = config(
        gw.smtp,
        gw.submission,
        "",
        &format!(
            "listener \"extra\" {{ protocol smtp; bind 127.0.0.1:{extra}; tls none; auth off }}"
        ),
    );
    gw.write_config(&text);
    gw.signal("HUP");
    gw.wait_port(extra);
    gw.wait_log("reloaded", 1);

    let mut added = Client::connect(extra);
    assert!(added.command("EHLO y.test").starts_with("250 "));
    assert!(added.command("QUIT").starts_with("221 "));
    // The session that started before the reload goes on.
    assert!(before.command("NOOP").starts_with("250 "));
    assert!(before.command("QUIT").starts_with("221 "));

    // Removing it again stops it.
    gw.write_config(&config(gw.smtp, gw.submission, "", ""));
    gw.signal("HUP");
    gw.wait_log("reloaded", 2);
    assert!(TcpStream::connect(("127.0.0.1", extra)).is_err());
    Client::connect(gw.smtp);
}

#[test]
fn sighup_onto_an_address_in_use_keeps_the_running_plan() {
    let gw = Gateway::start();
    let taken = std::net::TcpListener::bind(("127.0.0.1", free_port())).expect("bind");
    let busy = taken.local_addr().expect("address").port();
    let free = free_port();
    gw.write_config(&config(
        gw.smtp,
        gw.submission,
        "",
        &format!(
            "listener \"busy\" {{ protocol smtp; bind 127.0.0.1:{busy}; tls none; auth off }}\n\
             listener \"free\" {{ protocol smtp; bind 127.0.0.1:{free}; tls none; auth off }}"
        ),
    ));
    gw.signal("HUP");
    gw.wait_log("the running plan stays", 1);
    // Nothing of the new plan took effect, not even its bindable listener.
    assert!(TcpStream::connect(("127.0.0.1", free)).is_err());
    let mut c = Client::connect(gw.smtp);
    assert!(c.command("EHLO x.test").starts_with("250 "));
    assert!(c.command("QUIT").starts_with("221 "));
    drop(taken);
}

#[test]
fn sighup_with_a_broken_configuration_keeps_the_running_plan() {
    let gw = Gateway::start();
    gw.write_config("gateway { hostname \"x\" }\nlistner \"oops\" { }\n");
    gw.signal("HUP");
    gw.wait_log("reload failed; the running plan stays", 1);
    let mut c = Client::connect(gw.smtp);
    assert!(c.command("EHLO x.test").starts_with("250 "));
    assert!(c.command("QUIT").starts_with("221 "));
}
