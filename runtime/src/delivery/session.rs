//! One SMTP or LMTP conversation with one host: greeting, `EHLO`/`LHLO`,
//! STARTTLS, `AUTH`, the mail transaction and `QUIT`.

use std::sync::Arc;

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::cache::{Cache, Idle, Stream};
use super::capabilities::Capabilities;
use super::connection::{ConnError, Connection};
use super::envelope::Envelope;
use super::hop::SmtpCredentials;
use super::outcome::{Failure, Outcome};
use super::reply::{Reply, Status};
use super::tls;
use super::transaction;
use super::Timeouts;
use crate::smtp::auth::encode_base64;

/// SMTP or LMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// RFC 5321.
    Smtp,
    /// RFC 2033: `LHLO`, one reply per accepted recipient after the data.
    Lmtp,
}

/// TLS on a connection.
#[derive(Clone)]
pub(crate) enum TlsMode {
    /// Clear text only.
    None,
    /// STARTTLS when offered, any certificate; clear text otherwise.
    Opportunistic(Arc<ClientConfig>),
    /// STARTTLS required with this (verifying) configuration.
    Require(Arc<ClientConfig>),
    /// TLS from the first byte.
    Implicit(Arc<ClientConfig>),
}

/// Everything about a conversation except the stream and the message.
#[derive(Clone)]
pub(crate) struct Peer<'a> {
    /// SMTP or LMTP.
    pub(crate) protocol: Protocol,
    /// The peer's name: for the certificate check and log lines.
    pub(crate) host: &'a str,
    /// Our name for `EHLO`/`LHLO`.
    pub(crate) helo: &'a str,
    /// TLS on this connection.
    pub(crate) tls: TlsMode,
    /// The login, sent only over TLS.
    pub(crate) credentials: Option<&'a SmtpCredentials>,
    /// Time limits.
    pub(crate) timeouts: &'a Timeouts,
}

impl<'a> Peer<'a> {
    /// The same settings for the host `host`.
    pub(crate) fn for_host<'h>(&self, host: &'h str) -> Peer<'h>
    where
        'a: 'h,
    {
        Peer {
            host,
            ..self.clone()
        }
    }
}

/// Whether the session is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// Clear text.
    Clear,
    /// TLS, implicit or after STARTTLS.
    Tls,
}

/// How a conversation ended.
pub(crate) enum Attempt {
    /// This host takes no mail now (no greeting, `EHLO` refused, TLS or
    /// `AUTH` failed): the next host may; the outcome is the deferral if
    /// none does.
    NextHost(Outcome),
    /// Opportunistic TLS failed in the handshake: the same host may take
    /// the mail over a new connection in clear text, as RFC 7435 wants
    /// rather than no delivery; the outcome is the deferral if not.
    PlainRetry(Outcome),
    /// The transaction ran: one outcome per recipient, and whether the
    /// host offered `DSN`.
    Done(Vec<Outcome>, bool),
}

/// Where a connection goes after a clean transaction: the cache and the
/// host's key in it (`None`: it is closed with `QUIT`).
pub(crate) type Keep<'a> = Option<(&'a Arc<Cache>, &'a str)>;

/// Runs the transaction on a cached connection; `None` when the peer had
/// closed it (nothing was sent; the caller connects anew).
pub(crate) async fn reuse(
    mut idle: Idle,
    peer: &Peer<'_>,
    envelope: &Envelope,
    message: &[u8],
    keep: Keep<'_>,
) -> Option<Attempt> {
    tracing::debug!(host = peer.host, "reusing a connection");
    let Some(outcomes) =
        transaction::on_reused(&mut idle.conn, peer, &idle.caps, envelope, message).await
    else {
        tracing::debug!(host = peer.host, "cached connection gone; connecting anew");
        return None;
    };
    release(idle.conn, peer, &idle.caps, idle.channel, &outcomes, keep).await;
    Some(Attempt::Done(outcomes, idle.caps.dsn))
}

/// After a transaction: keeps the connection when every recipient got an
/// answer from the host (the session is in a known state), else `QUIT`.
/// The connection comes boxed as the cache keeps it: a kept connection goes
/// back as it came, not wrapped in one more box at every message.
async fn release(
    mut conn: Connection<Box<dyn Stream>>,
    peer: &Peer<'_>,
    caps: &Capabilities,
    channel: Channel,
    outcomes: &[Outcome],
    keep: Keep<'_>,
) {
    let answered = outcomes.iter().all(|o| match o {
        Outcome::Delivered { .. } => true,
        Outcome::Deferred(f) | Outcome::Failed(f) => f.reply.is_some(),
    });
    match keep {
        Some((cache, key)) if answered => {
            cache.put(key, Idle::new(conn, caps.clone(), channel));
        }
        _ => quit(&mut conn, peer).await,
    }
}

/// Runs a conversation over a connected socket.
pub(crate) async fn run(
    tcp: TcpStream,
    peer: &Peer<'_>,
    envelope: &Envelope,
    message: &[u8],
    keep: Keep<'_>,
) -> Attempt {
    match &peer.tls {
        TlsMode::Implicit(config) => match tls::handshake(config.clone(), peer.host, tcp).await {
            Ok(stream) => {
                let mut conn = Connection::new(stream, peer.host);
                match open(&mut conn, peer).await {
                    Ok(caps) => {
                        authenticated(conn, peer, &caps, Channel::Tls, envelope, message, keep)
                            .await
                    }
                    Err(attempt) => attempt,
                }
            }
            Err(e) => Attempt::NextHost(connection_failure(peer.host, "in the TLS handshake", &e)),
        },
        TlsMode::None | TlsMode::Opportunistic(_) | TlsMode::Require(_) => {
            let mut conn = Connection::new(tcp, peer.host);
            let caps = match open(&mut conn, peer).await {
                Ok(caps) => caps,
                Err(attempt) => return attempt,
            };
            match starttls(conn, peer, &caps).await {
                Upgrade::Plain(conn) => {
                    authenticated(conn, peer, &caps, Channel::Clear, envelope, message, keep).await
                }
                Upgrade::Tls(mut conn) => match hello(&mut conn, peer).await {
                    Ok(caps) => {
                        authenticated(*conn, peer, &caps, Channel::Tls, envelope, message, keep)
                            .await
                    }
                    Err(attempt) => attempt,
                },
                Upgrade::Failed(attempt) => attempt,
            }
        }
    }
}

/// Where STARTTLS left the connection.
enum Upgrade<S> {
    /// No TLS: the policy does not want it, or an opportunistic peer does
    /// not offer it or refused it.
    Plain(Connection<S>),
    /// TLS is up; `EHLO` must be sent again.
    Tls(Box<Connection<tokio_rustls::client::TlsStream<S>>>),
    /// The conversation cannot go on.
    Failed(Attempt),
}

async fn starttls<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: Connection<S>,
    peer: &Peer<'_>,
    caps: &Capabilities,
) -> Upgrade<S> {
    let (config, required) = match &peer.tls {
        TlsMode::Require(config) => (config.clone(), true),
        TlsMode::Opportunistic(config) if caps.starttls => (config.clone(), false),
        _ => return Upgrade::Plain(conn),
    };
    if !caps.starttls {
        tracing::warn!(host = peer.host, "TLS required but STARTTLS not offered");
        quit(&mut conn, peer).await;
        return Upgrade::Failed(Attempt::NextHost(Outcome::deferred(
            Status::new(4, 7, 4),
            format!(
                "TLS is required, but host {} does not offer STARTTLS",
                peer.host
            ),
        )));
    }
    let t = peer.timeouts;
    let reply = match conn
        .send(b"STARTTLS\r\n", t.command, "sending STARTTLS")
        .await
    {
        Ok(()) => conn.reply(t.command, "after STARTTLS").await,
        Err(e) => Err(e),
    };
    match reply {
        Ok(reply) if reply.code == 220 => {}
        Ok(reply) if !required => {
            tracing::info!(
                host = peer.host,
                code = reply.code,
                "STARTTLS refused; going on in clear text"
            );
            return Upgrade::Plain(conn);
        }
        Ok(reply) => {
            quit(&mut conn, peer).await;
            return Upgrade::Failed(Attempt::NextHost(Outcome::deferred(
                Status::new(4, 7, 4),
                format!(
                    "TLS is required, but host {} refused STARTTLS: {reply}",
                    peer.host
                ),
            )));
        }
        Err(e) => {
            return Upgrade::Failed(Attempt::NextHost(connection_failure(
                peer.host,
                "at STARTTLS",
                &e,
            )))
        }
    }
    match tls::handshake(config, peer.host, conn.into_inner()).await {
        Ok(stream) => {
            tracing::debug!(host = peer.host, "TLS established");
            Upgrade::Tls(Box::new(Connection::new(stream, peer.host)))
        }
        Err(e) => {
            let outcome = connection_failure(peer.host, "in the TLS handshake", &e);
            Upgrade::Failed(if required {
                Attempt::NextHost(outcome)
            } else {
                Attempt::PlainRetry(outcome)
            })
        }
    }
}

/// Reads the greeting and says hello.
async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
) -> Result<Capabilities, Attempt> {
    match conn
        .reply(peer.timeouts.greeting, "waiting for the greeting")
        .await
    {
        Ok(reply) if reply.code == 220 => {}
        Ok(reply) => {
            quit(conn, peer).await;
            return Err(Attempt::NextHost(refused(
                peer.host,
                "greeted with",
                &reply,
            )));
        }
        Err(e) => {
            return Err(Attempt::NextHost(connection_failure(
                peer.host,
                "waiting for the greeting",
                &e,
            )))
        }
    }
    hello(conn, peer).await
}

/// `EHLO` (falling back to `HELO` on a 5xx) or `LHLO`.
async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
) -> Result<Capabilities, Attempt> {
    let verb = match peer.protocol {
        Protocol::Smtp => "EHLO",
        Protocol::Lmtp => "LHLO",
    };
    let t = peer.timeouts.command;
    let fail = |e: ConnError| Attempt::NextHost(connection_failure(peer.host, "after EHLO", &e));
    conn.send(
        format!("{verb} {}\r\n", peer.helo).as_bytes(),
        t,
        "sending EHLO",
    )
    .await
    .map_err(fail)?;
    let reply = conn.reply(t, "after EHLO").await.map_err(fail)?;
    if reply.is_positive() {
        let caps = Capabilities::parse(&reply);
        tracing::debug!(host = peer.host, ?caps, "capabilities");
        return Ok(caps);
    }
    if peer.protocol == Protocol::Smtp && reply.is_permanent() {
        conn.send(
            format!("HELO {}\r\n", peer.helo).as_bytes(),
            t,
            "sending HELO",
        )
        .await
        .map_err(fail)?;
        let reply = conn.reply(t, "after HELO").await.map_err(fail)?;
        if reply.is_positive() {
            return Ok(Capabilities::default());
        }
        quit(conn, peer).await;
        return Err(Attempt::NextHost(refused(
            peer.host,
            "answered HELO with",
            &reply,
        )));
    }
    quit(conn, peer).await;
    Err(Attempt::NextHost(refused(
        peer.host,
        "answered EHLO with",
        &reply,
    )))
}

/// Logs in when there are credentials, then runs the transaction.
async fn authenticated<S: Stream + 'static>(
    mut conn: Connection<S>,
    peer: &Peer<'_>,
    caps: &Capabilities,
    channel: Channel,
    envelope: &Envelope,
    message: &[u8],
    keep: Keep<'_>,
) -> Attempt {
    if let Some(credentials) = peer.credentials {
        if channel == Channel::Clear {
            quit(&mut conn, peer).await;
            return Attempt::NextHost(Outcome::deferred(
                Status::new(4, 7, 10),
                format!(
                    "credentials for host {} are never sent without TLS",
                    peer.host
                ),
            ));
        }
        if let Err(outcome) = login(&mut conn, peer, caps, credentials).await {
            quit(&mut conn, peer).await;
            return Attempt::NextHost(outcome);
        }
    }
    let outcomes = transaction::transaction(&mut conn, peer, caps, envelope, message).await;
    release(conn.boxed(), peer, caps, channel, &outcomes, keep).await;
    Attempt::Done(outcomes, caps.dsn)
}

/// `AUTH PLAIN`, or `AUTH LOGIN` when the peer lacks PLAIN. The payloads
/// are never logged.
async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
    caps: &Capabilities,
    credentials: &SmtpCredentials,
) -> Result<(), Outcome> {
    let t = peer.timeouts.command;
    let fail = |e: ConnError| connection_failure(peer.host, "during AUTH", &e);
    let password = credentials.password.expose();
    let reply = if caps.has_auth("PLAIN") {
        let token = encode_base64(format!("\0{}\0{password}", credentials.user).as_bytes());
        conn.send(
            format!("AUTH PLAIN {token}\r\n").as_bytes(),
            t,
            "sending AUTH",
        )
        .await
        .map_err(fail)?;
        conn.reply(t, "after AUTH").await.map_err(fail)?
    } else if caps.has_auth("LOGIN") {
        let mut reply = None;
        for step in [
            "AUTH LOGIN\r\n".to_owned(),
            format!("{}\r\n", encode_base64(credentials.user.as_bytes())),
            format!("{}\r\n", encode_base64(password.as_bytes())),
        ] {
            if reply.as_ref().is_some_and(|r: &Reply| r.code != 334) {
                break;
            }
            conn.send(step.as_bytes(), t, "sending AUTH")
                .await
                .map_err(fail)?;
            reply = Some(conn.reply(t, "after AUTH").await.map_err(fail)?);
        }
        reply.ok_or_else(|| Outcome::deferred(Status::new(4, 5, 0), "no AUTH reply"))?
    } else {
        return Err(Outcome::deferred(
            Status::new(4, 7, 0),
            format!(
                "host {} offers neither AUTH PLAIN nor AUTH LOGIN",
                peer.host
            ),
        ));
    };
    if reply.code == 235 {
        tracing::debug!(host = peer.host, "authenticated");
        return Ok(());
    }
    tracing::warn!(host = peer.host, code = reply.code, "authentication failed");
    // A refused login is a configuration problem: retrying later, after
    // it is fixed, is better than bouncing the mail.
    Err(Outcome::deferred(
        Status::new(4, 7, 8),
        format!("host {} refused the login: {reply}", peer.host),
    ))
}

/// `QUIT`, best effort: the outcomes are known already.
async fn quit<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Connection<S>, peer: &Peer<'_>) {
    let t = peer.timeouts.command;
    if conn.send(b"QUIT\r\n", t, "sending QUIT").await.is_ok() {
        let _ = conn.reply(t, "after QUIT").await;
    }
}

/// The deferral for a connection that failed `when`.
pub(crate) fn connection_failure(host: &str, when: &str, e: &ConnError) -> Outcome {
    let status = match e {
        ConnError::Io(_) | ConnError::Timeout(_) => Status::new(4, 4, 2),
        ConnError::Protocol(_) => Status::new(4, 5, 0),
        ConnError::Tls(_) => Status::new(4, 7, 5),
    };
    tracing::info!(host, when, error = %e, "connection failed");
    let reason = match e {
        ConnError::Timeout(_) => format!("host {host}: {e}"),
        _ => format!("host {host}: {e} {when}"),
    };
    Outcome::deferred(status, reason)
}

/// The deferral for a host that refused the session (greeting, `EHLO`):
/// whatever its code, the next host may take the mail.
fn refused(host: &str, what: &str, reply: &Reply) -> Outcome {
    tracing::info!(host, code = reply.code, "{what}");
    let status = reply.status_or_generic();
    Outcome::Deferred(Failure {
        status: Status::new(4, status.subject, status.detail),
        reason: format!("host {host} {what} {reply}"),
        reply: Some(reply.clone()),
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::super::envelope::Recipient;
    use super::*;
    use crate::spool::BodyType;

    /// A host that takes every pipelined transaction: `250` to `MAIL` and
    /// `RCPT`, `354` to `DATA`, `250` after the dot.
    async fn accepting_host(stream: tokio::io::DuplexStream) {
        let mut lines = BufReader::new(stream);
        let mut line = String::new();
        let mut in_data = false;
        loop {
            line.clear();
            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let reply: &[u8] = match (in_data, line.as_str()) {
                (true, ".\r\n") => {
                    in_data = false;
                    b"250 2.0.0 queued\r\n"
                }
                (true, _) => continue,
                (false, "DATA\r\n") => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                (false, _) => b"250 2.1.0 ok\r\n",
            };
            if lines.get_mut().write_all(reply).await.is_err() {
                return;
            }
        }
    }

    #[tokio::test]
    async fn a_kept_connection_goes_back_to_the_cache_unwrapped() {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(accepting_host(theirs));
        let timeouts = Timeouts::default();
        let peer = Peer {
            protocol: Protocol::Smtp,
            host: "sink.example",
            helo: "gw.example",
            tls: TlsMode::None,
            credentials: None,
            timeouts: &timeouts,
        };
        let caps = Capabilities {
            pipelining: true,
            ..Capabilities::default()
        };
        let envelope = Envelope {
            sender: Some("a@example.org".into()),
            ret: None,
            envid: None,
            body: BodyType::SevenBit,
            smtputf8: false,
            recipients: vec![Recipient::new("b@example.net")],
        };
        let cache = Arc::new(Cache::default());
        let conn = Connection::new(ours, peer.host).boxed();
        let first = conn.stream_address();
        cache.put("sink", Idle::new(conn, caps, Channel::Clear));
        for n in 0..3 {
            let idle = cache.take("sink").expect("kept");
            assert_eq!(idle.conn.stream_address(), first, "message {n}");
            let message = b"Subject: t\r\n\r\nbody\r\n";
            let attempt = reuse(idle, &peer, &envelope, message, Some((&cache, "sink"))).await;
            assert!(
                matches!(attempt, Some(Attempt::Done(ref o, _)) if matches!(o[..], [Outcome::Delivered { .. }])),
                "message {n} delivered"
            );
        }
        let idle = cache.take("sink").expect("kept after three messages");
        assert_eq!(idle.conn.stream_address(), first);
    }
}
