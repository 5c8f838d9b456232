//! The SMTP listener's time limits (RFC 5321 4.5.3.2) on a gateway served
//! in-process: with tokio's clock paused, each wait ends with `421 4.4.2`
//! after its own limit, not another's; in real time, a slow `DATA`
//! transfer is cut by the minimum data rate while a steady one is taken.

#![allow(clippy::unwrap_used)]

mod ports;

use std::net::SocketAddr;
use std::time::Duration;

use mailgw_plan::{
    AddressSpace, AuthMode, Condition, Connector, Deliver, DomainPattern, Limits, Listener,
    ListenerTls, Network, Plan, Protocol, RelayAction, RelayRule, SourceRef, TlsMode, TlsPolicy,
};
use mailgw_runtime::server::{Generation, Server};
use mailgw_runtime::spool::Spool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A gateway with one SMTP listener on a free loopback port, with
/// `limits`, relaying for loopback clients to a smarthost that is never
/// contacted (no queue manager runs).
struct Gateway {
    server: Server,
    addr: SocketAddr,
    _spool_dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(limits: Limits) -> Gateway {
        let src = SourceRef::new(0, 1);
        let addr = SocketAddr::from(([127, 0, 0, 1], ports::free_port()));
        let mut plan = Plan::empty("mx.test");
        plan.sources.add("gateway.mailgw");
        plan.listeners.push(Listener {
            name: "mx".into(),
            protocol: Protocol::Smtp,
            binds: vec![addr],
            tls: ListenerTls {
                mode: TlsMode::None,
                profile: None,
            },
            auth: AuthMode::Off,
            limits,
            filter_return: false,
            source: src,
        });
        plan.connectors.push(Connector {
            name: "out".into(),
            address_spaces: vec![AddressSpace {
                pattern: DomainPattern::parse("*").unwrap(),
                cost: 1,
                source: src,
            }],
            deliver: Deliver::Smarthost {
                host: "127.0.0.1".into(),
                port: 9,
            },
            tls: TlsPolicy::None,
            credentials: None,
            ca: None,
            accept_from: Vec::new(),
            reject_from: Vec::new(),
            source: src,
        });
        plan.relay = vec![RelayRule {
            action: RelayAction::Allow,
            conditions: vec![Condition::From(Network::parse("127.0.0.0/8").unwrap())],
            source: src,
        }];
        let spool_dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(spool_dir.path()).unwrap();
        let server = Server::start(Generation::new(plan).unwrap(), spool)
            .await
            .unwrap();
        Gateway {
            server,
            addr,
            _spool_dir: spool_dir,
        }
    }

    async fn connect(&self) -> Client {
        let mut client = Client {
            stream: TcpStream::connect(self.addr).await.unwrap(),
        };
        assert!(client.reply().await.starts_with("220 "));
        client
    }

    async fn stop(self) {
        self.server.shutdown(Duration::from_secs(1)).await;
    }
}

/// An SMTP client that reads one reply (or the end of the stream) at a
/// time.
struct Client {
    stream: TcpStream,
}

impl Client {
    async fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.unwrap();
    }

    /// The next reply's last line, or "" at the end of the stream.
    async fn reply(&mut self) -> String {
        let mut text = Vec::new();
        loop {
            let mut byte = [0u8; 1];
            if self.stream.read(&mut byte).await.unwrap() == 0 {
                return String::from_utf8(text).unwrap();
            }
            text.push(byte[0]);
            if text.ends_with(b"\r\n") {
                let line = String::from_utf8(text.clone()).unwrap();
                let last = line.trim_end().rsplit("\r\n").next().unwrap().to_owned();
                if last.as_bytes().get(3) == Some(&b' ') {
                    return last;
                }
            }
        }
    }

    /// `EHLO`, `MAIL`, `RCPT` and `DATA`, up to the `354`.
    async fn open_data(&mut self) {
        for (command, code) in [
            ("EHLO client.test\r\n", "250"),
            ("MAIL FROM:<a@client.test>\r\n", "250"),
            ("RCPT TO:<b@remote.test>\r\n", "250"),
            ("DATA\r\n", "354"),
        ] {
            self.send(command).await;
            let reply = self.reply().await;
            assert!(reply.starts_with(code), "{command:?} got {reply:?}");
        }
    }
}

fn limits() -> Limits {
    Limits {
        greeting_timeout_s: 30,
        command_timeout_s: 600,
        data_timeout_s: 60,
        session_deadline_s: 3_600,
        min_data_rate: 0,
        ..Limits::default()
    }
}

/// Asserts that `reply` is the timeout's and came between `at_least` and
/// `below` after `since`.
fn assert_timed_out(reply: &str, since: Instant, at_least: u64, below: u64) {
    let waited = since.elapsed();
    assert!(reply.starts_with("421 4.4.2"), "{reply:?}");
    assert!(
        waited >= Duration::from_secs(at_least) && waited < Duration::from_secs(below),
        "timed out after {waited:?}, expected {at_least}..{below} s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_gets_the_greeting_timeout() {
    let gw = Gateway::start(limits()).await;
    let mut client = gw.connect().await;
    let start = Instant::now();
    let reply = client.reply().await;
    assert_timed_out(&reply, start, 30, 60);
    assert_eq!(client.reply().await, "", "the session is closed");
    gw.stop().await;
}

#[tokio::test(start_paused = true)]
async fn after_the_first_command_the_command_timeout_applies() {
    let gw = Gateway::start(limits()).await;
    let mut client = gw.connect().await;
    client.send("EHLO client.test\r\n").await;
    assert!(client.reply().await.starts_with("250 "));
    let start = Instant::now();
    let reply = client.reply().await;
    assert_timed_out(&reply, start, 600, 700);
    gw.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_data_transfer_gets_the_data_timeout() {
    let gw = Gateway::start(limits()).await;
    let mut client = gw.connect().await;
    client.open_data().await;
    client.send("Subject: stalled\r\n\r\nfirst line\r\n").await;
    let start = Instant::now();
    let reply = client.reply().await;
    assert_timed_out(&reply, start, 60, 120);
    gw.stop().await;
}

/// In real time: the rate is checked only after the first 10 s of a
/// transfer, and under tokio's paused clock the gateway's read after the
/// client's first sleep was never woken (seen with tokio's test-util, not
/// explained), while in real time it is.
#[tokio::test]
async fn a_trickle_below_the_minimum_rate_is_cut_and_a_steady_transfer_is_taken() {
    let gw = Gateway::start(Limits {
        min_data_rate: 1_000,
        ..limits()
    })
    .await;
    let mut slow = gw.connect().await;
    slow.open_data().await;
    let mut steady = gw.connect().await;
    steady.open_data().await;
    let start = Instant::now();

    // 100 bytes every 2 s: each read is well within the data timeout, but
    // 50 bytes per second is far below the minimum.
    let trickle = async {
        let line = format!("{}\r\n", "x".repeat(98));
        loop {
            if slow.stream.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            let mut probe = [0u8; 1];
            if let Ok(n) =
                tokio::time::timeout(Duration::from_secs(2), slow.stream.peek(&mut probe)).await
            {
                assert!(n.unwrap() > 0, "closed without a reply");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(40), "never cut");
        }
        slow.reply().await
    };
    // 2,000 bytes every second for 12 s, then the end.
    let flow = async {
        let block = format!("{}\r\n", "y".repeat(1_998));
        for _ in 0..12 {
            steady.send(&block).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        steady.send(".\r\n").await;
        steady.reply().await
    };
    let (cut, taken) = tokio::join!(trickle, flow);
    assert_timed_out(&cut, start, 10, 30);
    assert!(taken.starts_with("250 "), "{taken:?}");
    gw.stop().await;
}
