//! One SMTP or LMTP conversation with one host: greeting, `EHLO`/`LHLO`,
//! STARTTLS, `AUTH`, the mail transaction and `QUIT`.

use std::sync::Arc;

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::capabilities::Capabilities;
use super::connection::{ConnError, Connection};
use super::data;
use super::envelope::Envelope;
use super::hop::SmtpCredentials;
use super::outcome::{Failure, Outcome};
use super::params;
use super::reply::{Reply, Status};
use super::tls;
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

/// How a conversation ended.
pub(crate) enum Attempt {
    /// This host takes no mail now (no greeting, `EHLO` refused, TLS or
    /// `AUTH` failed): the next host may; the outcome is the deferral if
    /// none does.
    NextHost(Outcome),
    /// The transaction ran: one outcome per recipient.
    Done(Vec<Outcome>),
}

/// Runs a conversation over a connected socket.
pub(crate) async fn run(
    tcp: TcpStream,
    peer: &Peer<'_>,
    envelope: &Envelope,
    message: &[u8],
) -> Attempt {
    match &peer.tls {
        TlsMode::Implicit(config) => match tls::handshake(config.clone(), peer.host, tcp).await {
            Ok(stream) => {
                let mut conn = Connection::new(stream, peer.host);
                match open(&mut conn, peer).await {
                    Ok(caps) => authenticated(conn, peer, &caps, true, envelope, message).await,
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
                    authenticated(conn, peer, &caps, false, envelope, message).await
                }
                Upgrade::Tls(mut conn) => match hello(&mut conn, peer).await {
                    Ok(caps) => authenticated(*conn, peer, &caps, true, envelope, message).await,
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
        Err(e) => Upgrade::Failed(Attempt::NextHost(connection_failure(
            peer.host,
            "in the TLS handshake",
            &e,
        ))),
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
        return Ok(Capabilities::parse(&reply));
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
async fn authenticated<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: Connection<S>,
    peer: &Peer<'_>,
    caps: &Capabilities,
    encrypted: bool,
    envelope: &Envelope,
    message: &[u8],
) -> Attempt {
    if let Some(credentials) = peer.credentials {
        if !encrypted {
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
    let outcomes = transaction(&mut conn, peer, caps, envelope, message).await;
    quit(&mut conn, peer).await;
    Attempt::Done(outcomes)
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

/// Checks what must be refused before `MAIL`: a message too large for the
/// peer, 8-bit for a peer without `8BITMIME`, internationalized for one
/// without `SMTPUTF8`.
fn refuse_before_mail(
    caps: &Capabilities,
    peer: &Peer<'_>,
    envelope: &Envelope,
    message: &[u8],
) -> Option<Outcome> {
    let host = peer.host;
    if let Some(limit) = caps.size.filter(|&l| l > 0) {
        if message.len() as u64 > limit {
            return Some(Outcome::failed(
                Status::new(5, 3, 4),
                format!(
                    "the message ({} bytes) is larger than host {host} takes ({limit} bytes)",
                    message.len()
                ),
            ));
        }
    }
    let addresses = envelope
        .sender
        .iter()
        .chain(envelope.recipients.iter().map(|r| &r.address));
    if envelope.smtputf8
        && !caps.smtputf8
        && (addresses.clone().any(|a| !a.is_ascii()) || data::header_is_8bit(message))
    {
        return Some(Outcome::failed(
            Status::new(5, 6, 7),
            format!("the message needs SMTPUTF8, which host {host} does not offer"),
        ));
    }
    if data::is_8bit(message) && !caps.eight_bit_mime {
        return Some(Outcome::failed(
            Status::new(5, 6, 3),
            format!("the message is 8-bit and host {host} does not offer 8BITMIME"),
        ));
    }
    None
}

/// `MAIL`, `RCPT`s, `DATA` and the message: one outcome per recipient.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
    caps: &Capabilities,
    envelope: &Envelope,
    message: &[u8],
) -> Vec<Outcome> {
    let n = envelope.recipients.len();
    if let Some(outcome) = refuse_before_mail(caps, peer, envelope, message) {
        tracing::info!(host = peer.host, reason = %outcome_reason(&outcome), "not sent");
        return vec![outcome; n];
    }
    if !envelope
        .sender
        .as_deref()
        .is_none_or(params::is_safe_address)
    {
        let outcome = Outcome::failed(
            Status::new(5, 1, 7),
            "the sender address holds control characters",
        );
        return vec![outcome; n];
    }
    let mut outcomes: Vec<Option<Outcome>> = envelope
        .recipients
        .iter()
        .map(|r| {
            (!params::is_safe_address(&r.address)).then(|| {
                Outcome::failed(
                    Status::new(5, 1, 3),
                    "the recipient address holds control characters",
                )
            })
        })
        .collect();
    if outcomes.iter().all(Option::is_some) {
        return outcomes.into_iter().flatten().collect();
    }
    if let Err(e) = exchange(conn, peer, caps, envelope, message, &mut outcomes).await {
        tracing::info!(host = peer.host, error = %e, "transaction broken off");
        let outcome = connection_failure(peer.host, "during the transaction", &e);
        for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
            *slot = Some(outcome.clone());
        }
    }
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Outcome::deferred(Status::new(4, 5, 0), "no reply for this recipient")
            })
        })
        .collect()
}

fn outcome_reason(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Delivered { .. } => "delivered",
        Outcome::Deferred(f) | Outcome::Failed(f) => &f.reason,
    }
}

/// The commands and replies of the transaction. Recipients whose slot is
/// already filled are not sent.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
    caps: &Capabilities,
    envelope: &Envelope,
    message: &[u8],
    outcomes: &mut [Option<Outcome>],
) -> Result<(), ConnError> {
    let mail = params::mail(envelope, caps, message.len(), data::is_8bit(message));
    let rcpts: Vec<(usize, String)> = (0..outcomes.len())
        .filter(|&i| outcomes[i].is_none())
        .map(|i| (i, params::rcpt(&envelope.recipients[i], caps)))
        .collect();
    let opened = if caps.pipelining {
        pipelined(conn, peer, &mail, &rcpts, outcomes).await?
    } else {
        lockstep(conn, peer, &mail, &rcpts, outcomes).await?
    };
    let Some((accepted, data_reply)) = opened else {
        return Ok(());
    };
    let (t, host) = (peer.timeouts, peer.host);
    if data_reply.code != 354 {
        let outcome = if data_reply.is_positive() {
            Outcome::deferred(
                Status::new(4, 5, 0),
                format!("host {host} answered DATA with {data_reply}"),
            )
        } else {
            Outcome::from_reply(&data_reply, host)
        };
        for &i in &accepted {
            outcomes[i] = Some(outcome.clone());
        }
        return Ok(());
    }
    if accepted.is_empty() {
        // A pipelining peer took DATA without a recipient (RFC 2920 says it
        // must not); an empty message ends it and delivers nothing.
        conn.send(b".\r\n", t.data_block, "ending empty data")
            .await?;
        if peer.protocol == Protocol::Smtp {
            conn.reply(t.data_term, "after the data").await?;
        }
        return Ok(());
    }
    let stuffed = data::stuff(message);
    for chunk in stuffed.chunks(64 * 1024) {
        conn.send(chunk, t.data_block, "sending the data").await?;
    }
    match peer.protocol {
        Protocol::Smtp => {
            let reply = conn.reply(t.data_term, "after the data").await?;
            tracing::info!(
                host,
                code = reply.code,
                recipients = accepted.len(),
                "data sent"
            );
            for &i in &accepted {
                outcomes[i] = Some(Outcome::from_reply(&reply, host));
            }
        }
        Protocol::Lmtp => {
            for &i in &accepted {
                let reply = conn.reply(t.data_term, "after the data").await?;
                tracing::info!(host, code = reply.code, "LMTP recipient");
                outcomes[i] = Some(Outcome::from_reply(&reply, host));
            }
        }
    }
    Ok(())
}

/// Recipients sent in one pipelined group: enough to save round trips,
/// few enough that the peer's replies never fill the socket buffers while
/// we are still writing (RFC 2920 3.1).
const PIPELINE_GROUP: usize = 100;

/// `MAIL`, the `RCPT`s and `DATA` in pipelined groups. The accepted
/// recipients and the reply to `DATA`, or `None` when `MAIL` was refused
/// (its reply is every recipient's outcome).
async fn pipelined<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
    mail: &str,
    rcpts: &[(usize, String)],
    outcomes: &mut [Option<Outcome>],
) -> Result<Option<(Vec<usize>, Reply)>, ConnError> {
    let (t, host) = (peer.timeouts, peer.host);
    let groups: Vec<&[(usize, String)]> = rcpts.chunks(PIPELINE_GROUP).collect();
    let mut mail_reply: Option<Reply> = None;
    let mut accepted = Vec::new();
    for (n, group) in groups.iter().enumerate() {
        let mut batch = Vec::new();
        if n == 0 {
            batch.extend_from_slice(mail.as_bytes());
        }
        for (_, rcpt) in *group {
            batch.extend_from_slice(rcpt.as_bytes());
        }
        if n + 1 == groups.len() {
            batch.extend_from_slice(b"DATA\r\n");
        }
        conn.send(&batch, t.command, "sending MAIL, RCPT and DATA")
            .await?;
        if n == 0 {
            mail_reply = Some(conn.reply(t.command, "after MAIL").await?);
        }
        let mail_ok = mail_reply.as_ref().is_some_and(Reply::is_positive);
        for (i, _) in *group {
            let reply = conn.reply(t.command, "after RCPT").await?;
            if !mail_ok {
                continue;
            }
            if reply.is_positive() {
                accepted.push(*i);
            } else {
                outcomes[*i] = Some(Outcome::from_reply(&reply, host));
            }
        }
    }
    let data_reply = conn.reply(t.data_init, "after DATA").await?;
    match mail_reply {
        Some(reply) if !reply.is_positive() => {
            for (i, _) in rcpts {
                outcomes[*i] = Some(Outcome::from_reply(&reply, host));
            }
            if data_reply.code == 354 {
                conn.send(b".\r\n", t.data_block, "ending empty data")
                    .await?;
                if peer.protocol == Protocol::Smtp {
                    conn.reply(t.data_term, "after the data").await?;
                }
            }
            Ok(None)
        }
        _ => Ok(Some((accepted, data_reply))),
    }
}

/// `MAIL`, each `RCPT` and `DATA`, each waiting for its reply. Like
/// [`pipelined`]; `None` also when no recipient was accepted.
async fn lockstep<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
    mail: &str,
    rcpts: &[(usize, String)],
    outcomes: &mut [Option<Outcome>],
) -> Result<Option<(Vec<usize>, Reply)>, ConnError> {
    let (t, host) = (peer.timeouts, peer.host);
    conn.send(mail.as_bytes(), t.command, "sending MAIL")
        .await?;
    let mail_reply = conn.reply(t.command, "after MAIL").await?;
    if !mail_reply.is_positive() {
        for (i, _) in rcpts {
            outcomes[*i] = Some(Outcome::from_reply(&mail_reply, host));
        }
        return Ok(None);
    }
    let mut accepted = Vec::new();
    for (i, rcpt) in rcpts {
        conn.send(rcpt.as_bytes(), t.command, "sending RCPT")
            .await?;
        let reply = conn.reply(t.command, "after RCPT").await?;
        if reply.is_positive() {
            accepted.push(*i);
        } else {
            outcomes[*i] = Some(Outcome::from_reply(&reply, host));
        }
    }
    if accepted.is_empty() {
        return Ok(None);
    }
    conn.send(b"DATA\r\n", t.command, "sending DATA").await?;
    let data_reply = conn.reply(t.data_init, "after DATA").await?;
    Ok(Some((accepted, data_reply)))
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
