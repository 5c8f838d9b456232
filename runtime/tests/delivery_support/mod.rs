//! Shared by the `delivery_*` tests: the client, envelopes, and the real
//! peers on loopback — Postfix's `smtp-sink`, `dnsmasq`, and a small
//! scripted SMTP server (`peer.rs`) for what smtp-sink cannot do (TLS,
//! SIZE, a different reply per recipient).
//!
//! Include with `mod dovecot; mod delivery_support;`. A peer whose program
//! is missing returns `None` after printing `SKIPPED`.

#![allow(dead_code)]

pub mod peer;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailgw_plan::{Dns, TlsPolicy};
use mailgw_runtime::delivery::{
    Client, Envelope, NextHop, Recipient, Resolver, SmtpHop, Target, Timeouts,
};
use mailgw_runtime::spool::BodyType;

use super::dovecot::find_program;
use super::ports::free_port;

/// Short timeouts: every peer here is on loopback.
pub fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        greeting: Duration::from_secs(5),
        command: Duration::from_secs(5),
        data_init: Duration::from_secs(5),
        data_block: Duration::from_secs(5),
        data_term: Duration::from_secs(5),
    }
}

/// A client resolving with the name server at `dns` (a closed port when
/// the test does no MX lookups).
pub fn client_with_dns(dns: SocketAddr) -> Client {
    let resolver = Resolver::new(&Dns { servers: vec![dns] }).expect("resolver");
    Client::with_parts("gw.test", resolver, timeouts())
}

/// A client for tests without DNS.
pub fn client() -> Client {
    client_with_dns(SocketAddr::from((Ipv4Addr::LOCALHOST, 9)))
}

/// An envelope from `a@example.org` to `recipients`, without DSN
/// parameters.
pub fn envelope(recipients: &[&str]) -> Envelope {
    Envelope {
        sender: Some("a@example.org".into()),
        ret: None,
        envid: None,
        body: BodyType::SevenBit,
        smtputf8: false,
        recipients: recipients.iter().map(|r| Recipient::new(*r)).collect(),
    }
}

/// Everything to 127.0.0.1:`port`.
pub fn smarthost(port: u16, tls: TlsPolicy) -> NextHop {
    NextHop::Smtp(SmtpHop {
        target: Target::Host {
            host: "127.0.0.1".into(),
            port,
        },
        tls,
        credentials: None,
        ca: None,
    })
}

/// `message` as a peer stores it: CRLF line ends everywhere (a bare CR or
/// LF counts as one) and after the last line.
pub fn normalized(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(message)
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n");
    let mut out = text.into_bytes();
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A running Postfix `smtp-sink`, killed on drop.
pub struct SmtpSink {
    child: Child,
    /// The listening port.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// One transaction as smtp-sink dumped it.
#[derive(Debug)]
pub struct Dump {
    /// `SMTP`, `ESMTP` or `LMTP`.
    pub proto: String,
    /// The arguments of `MAIL`.
    pub mail_args: String,
    /// The arguments of each `RCPT`.
    pub rcpt_args: Vec<String>,
    /// The message, lines ended by LF (smtp-sink's format).
    pub message: String,
}

impl SmtpSink {
    /// Starts `smtp-sink` on `127.0.0.1` with `args` (e.g. `-f rcpt`).
    pub fn start(args: &[&str]) -> Option<SmtpSink> {
        SmtpSink::start_on(Ipv4Addr::LOCALHOST, free_port(), args)
    }

    /// Starts `smtp-sink` on `addr:port` with `args`.
    pub fn start_on(addr: Ipv4Addr, port: u16, args: &[&str]) -> Option<SmtpSink> {
        let Some(program) = find_program("smtp-sink") else {
            eprintln!("SKIPPED: smtp-sink is not installed (scripts/test installs postfix)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .expect("chmod");
        let mut command = Command::new(program);
        if is_root() {
            command.args(["-u", "postfix"]);
        }
        let template = format!("{}/%H%M%S.", dir.path().display());
        command
            .args(["-d", &template])
            .args(args)
            .arg(format!("{addr}:{port}"))
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().expect("start smtp-sink");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((addr, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(SmtpSink { child, port, dir })
    }

    /// The transactions dumped so far, waiting up to a second for at
    /// least `expected` of them.
    pub fn dumps(&self, expected: usize) -> Vec<Dump> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .expect("dump directory")
                .map(|e| e.expect("entry").path())
                .collect();
            paths.sort();
            let dumps: Vec<Dump> = paths
                .iter()
                .filter_map(|p| parse_dump(&std::fs::read(p).expect("dump")))
                .collect();
            if dumps.len() >= expected || Instant::now() > deadline {
                return dumps;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A complete dump (ends with the empty line smtp-sink appends), or
/// `None` while it is being written.
fn parse_dump(bytes: &[u8]) -> Option<Dump> {
    let text = String::from_utf8_lossy(bytes);
    let mut dump = Dump {
        proto: String::new(),
        mail_args: String::new(),
        rcpt_args: Vec::new(),
        message: String::new(),
    };
    let mut lines = text.split_inclusive('\n');
    for line in lines.by_ref() {
        let line = line.trim_end_matches('\n');
        if let Some(v) = line.strip_prefix("X-Client-Proto: ") {
            dump.proto = v.to_owned();
        } else if let Some(v) = line.strip_prefix("X-Mail-Args: ") {
            dump.mail_args = v.to_owned();
        } else if let Some(v) = line.strip_prefix("X-Rcpt-Args: ") {
            dump.rcpt_args.push(v.to_owned());
        } else if line.starts_with("Received: ") {
            break;
        }
    }
    // The two continuation lines of smtp-sink's Received: header.
    lines.next()?;
    lines.next()?;
    let rest: String = lines.collect();
    dump.message = rest.strip_suffix('\n')?.to_owned();
    Some(dump)
}

/// A running `dnsmasq` answering on `127.0.0.1:port`, killed on drop.
pub struct Dnsmasq {
    child: Child,
    /// The name server's address.
    pub addr: SocketAddr,
}

impl Dnsmasq {
    /// Starts dnsmasq with no upstream, no hosts file and `records`
    /// (options such as `--mx-host=...`), authoritative for `test`.
    pub fn start(records: &[String]) -> Option<Dnsmasq> {
        let Some(program) = find_program("dnsmasq") else {
            eprintln!("SKIPPED: dnsmasq is not installed (scripts/test installs dnsmasq-base)");
            return None;
        };
        let port = free_port();
        let child = Command::new(program)
            .args([
                format!("--port={port}"),
                "--listen-address=127.0.0.1".into(),
                "--bind-interfaces".into(),
                "--no-resolv".into(),
                "--no-hosts".into(),
                "--conf-file=/dev/null".into(),
                "--keep-in-foreground".into(),
                "--pid-file=".into(),
                "--user=root".into(),
                "--local=/test/".into(),
            ])
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(10);
        // dnsmasq listens on TCP too; once it accepts, it answers.
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Dnsmasq { child, addr })
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
