//! A small scripted SMTP server over tokio and rustls, for what smtp-sink
//! cannot do: STARTTLS, SIZE, AUTH checks, a different reply per
//! recipient, clear-text bytes injected after `220` to `STARTTLS`. It
//! records what it was sent.

use std::sync::{Arc, Mutex};

use mailgw_runtime::smtp::auth::decode_base64;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How the peer behaves.
#[derive(Clone)]
pub struct Script {
    /// The greeting line; `None` never greets.
    pub greeting: Option<&'static str>,
    /// `EHLO` extension lines (STARTTLS is added when `tls` is set and
    /// the session is not yet encrypted).
    pub extensions: Vec<&'static str>,
    /// The server side of STARTTLS.
    pub tls: Option<Arc<ServerConfig>>,
    /// Clear-text bytes sent right after `220` to `STARTTLS`.
    pub after_starttls: &'static str,
    /// Close the connection after `220` to `STARTTLS` instead of the
    /// handshake.
    pub broken_tls: bool,
    /// The reply to `RCPT TO:<address>`.
    pub rcpt: fn(&str) -> &'static str,
    /// The reply that ends `AUTH`.
    pub auth: &'static str,
    /// Close the connection after each message, first sending this line
    /// unless it is empty (a host ending a session the client keeps).
    pub hang_up: Option<&'static str>,
}

impl Default for Script {
    fn default() -> Script {
        Script {
            greeting: Some("220 peer.test ESMTP"),
            extensions: vec!["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"],
            tls: None,
            after_starttls: "",
            broken_tls: false,
            rcpt: |_| "250 2.1.5 ok",
            auth: "235 2.7.0 ok",
            hang_up: None,
        }
    }
}

/// What the peer was sent.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Each command line without CRLF, with whether TLS was up; AUTH
    /// payloads are decoded into [`Seen::auth`] instead.
    pub commands: Vec<(bool, String)>,
    /// The decoded AUTH exchange: PLAIN's token, or LOGIN's user and
    /// password.
    pub auth: Vec<String>,
    /// The raw bytes after each `354`, up to and including `.\r\n`.
    pub data: Vec<Vec<u8>>,
}

impl Seen {
    /// The verbs (first words) of the commands, in order.
    pub fn verbs(&self) -> Vec<String> {
        self.commands
            .iter()
            .map(|(_, c)| {
                c.split([' ', ':'])
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase()
            })
            .collect()
    }
}

/// A certificate for `localhost` (self-signed) and its PEM, to trust as a
/// CA file.
pub fn certificate() -> (Arc<ServerConfig>, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![certified.cert.der().clone()];
    let config = mailgw_runtime::tls::server_config(chain, key).expect("server config");
    (config, certified.cert.pem())
}

/// Starts the peer on a free loopback port; every connection follows
/// `script`.
pub async fn spawn(script: Script) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (script, record) = (script.clone(), record.clone());
            tokio::spawn(async move {
                let _ = session(Box::new(tcp), script, record).await;
            });
        }
    });
    (port, seen)
}

async fn session(
    stream: Box<dyn Io>,
    script: Script,
    seen: Arc<Mutex<Seen>>,
) -> std::io::Result<()> {
    let mut io = BufReader::new(stream);
    let Some(greeting) = script.greeting else {
        // Hold the connection open without a word.
        let mut line = Vec::new();
        io.read_until(b'\n', &mut line).await?;
        return Ok(());
    };
    send(&mut io, greeting).await?;
    let mut encrypted = false;
    loop {
        let line = read_line(&mut io).await?;
        let Some(line) = line else { return Ok(()) };
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("AUTH ") {
            seen.lock()
                .expect("lock")
                .commands
                .push((encrypted, "AUTH".into()));
            auth(&mut io, &line, &script, &seen).await?;
            continue;
        }
        seen.lock()
            .expect("lock")
            .commands
            .push((encrypted, line.clone()));
        if upper.starts_with("EHLO") {
            let mut lines = vec!["peer.test".to_owned()];
            lines.extend(script.extensions.iter().map(|e| e.to_string()));
            if script.tls.is_some() && !encrypted {
                lines.push("STARTTLS".into());
            }
            let count = lines.len();
            for (i, text) in lines.iter().enumerate() {
                let sep = if i + 1 == count { ' ' } else { '-' };
                send(&mut io, &format!("250{sep}{text}")).await?;
            }
        } else if upper == "STARTTLS" && !encrypted {
            let Some(config) = script.tls.clone() else {
                send(&mut io, "502 5.5.1 no").await?;
                continue;
            };
            let reply = format!("220 2.0.0 go ahead\r\n{}", script.after_starttls);
            io.get_mut().write_all(reply.as_bytes()).await?;
            if script.broken_tls {
                return Ok(());
            }
            let tls = TlsAcceptor::from(config).accept(io.into_inner()).await?;
            io = BufReader::new(Box::new(tls));
            encrypted = true;
        } else if upper.starts_with("MAIL FROM:") {
            send(&mut io, "250 2.1.0 ok").await?;
        } else if upper.starts_with("RCPT TO:<") {
            let address = line[9..].split('>').next().unwrap_or("");
            send(&mut io, (script.rcpt)(address)).await?;
        } else if upper == "DATA" {
            send(&mut io, "354 go on").await?;
            let mut data = Vec::new();
            loop {
                let before = data.len();
                if io.read_until(b'\n', &mut data).await? == 0 {
                    return Ok(());
                }
                if &data[before..] == b".\r\n" {
                    break;
                }
            }
            seen.lock().expect("lock").data.push(data);
            send(&mut io, "250 2.0.0 queued").await?;
            if let Some(last) = script.hang_up {
                if !last.is_empty() {
                    send(&mut io, last).await?;
                }
                return Ok(());
            }
        } else if upper == "QUIT" {
            send(&mut io, "221 2.0.0 bye").await?;
            return Ok(());
        } else {
            send(&mut io, "250 2.0.0 ok").await?;
        }
    }
}

async fn auth(
    io: &mut BufReader<Box<dyn Io>>,
    line: &str,
    script: &Script,
    seen: &Arc<Mutex<Seen>>,
) -> std::io::Result<()> {
    let decode = |b64: &str| {
        String::from_utf8_lossy(&decode_base64(b64.trim()).unwrap_or_default()).into_owned()
    };
    let mut words = line.split(' ').skip(1);
    match words.next().map(str::to_ascii_uppercase).as_deref() {
        Some("PLAIN") => {
            let token = decode(words.next().unwrap_or(""));
            seen.lock().expect("lock").auth.push(token);
        }
        Some("LOGIN") => {
            for prompt in ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"] {
                send(io, prompt).await?;
                let answer = read_line(io).await?.unwrap_or_default();
                seen.lock().expect("lock").auth.push(decode(&answer));
            }
        }
        _ => {
            send(io, "504 5.5.4 unknown mechanism").await?;
            return Ok(());
        }
    }
    send(io, script.auth).await
}

async fn read_line(io: &mut BufReader<Box<dyn Io>>) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    if io.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&line);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

async fn send(io: &mut BufReader<Box<dyn Io>>, line: &str) -> std::io::Result<()> {
    io.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await?;
    io.get_mut().flush().await
}
