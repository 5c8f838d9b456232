//! The mail transaction on an open session: what is refused before
//! `MAIL`, then `MAIL`, the `RCPT`s, `DATA` and the message — pipelined
//! when the peer offers it — and which reply decides for which recipient.

use tokio::io::{AsyncRead, AsyncWrite};

use super::capabilities::Capabilities;
use super::connection::{ConnError, Connection};
use super::data;
use super::envelope::Envelope;
use super::outcome::Outcome;
use super::params;
use super::reply::{Reply, Status};
use super::session::{connection_failure, Peer, Protocol};

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

/// `MAIL`, `RCPT`s, `DATA` and the message on a new session: one outcome
/// per recipient.
pub(crate) async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
    caps: &Capabilities,
    envelope: &Envelope,
    message: &[u8],
) -> Vec<Outcome> {
    match run(conn, peer, caps, envelope, message, false).await {
        Ok(outcomes) => outcomes,
        Err(Gone) => {
            let e = ConnError::Protocol("the session ended before MAIL was answered".into());
            vec![
                connection_failure(peer.host, "during the transaction", &e);
                envelope.recipients.len()
            ]
        }
    }
}

/// The transaction on a session kept from an earlier one, without a
/// round trip to check it first: after a completed transaction the session
/// is ready for `MAIL` (RFC 5321 4.1.4). `None` when the peer had closed
/// it meanwhile (the first command found the connection gone, or a `421`):
/// nothing of the message was sent, and the caller connects anew.
pub(crate) async fn on_reused<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
    caps: &Capabilities,
    envelope: &Envelope,
    message: &[u8],
) -> Option<Vec<Outcome>> {
    run(conn, peer, caps, envelope, message, true).await.ok()
}

/// A kept session turned out closed before its first reply.
struct Gone;

/// Why the commands and replies stopped.
enum Stop {
    /// The connection failed.
    Conn(ConnError),
    /// A kept session was gone before `MAIL` was answered.
    Gone,
}

impl From<ConnError> for Stop {
    fn from(e: ConnError) -> Stop {
        Stop::Conn(e)
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    peer: &Peer<'_>,
    caps: &Capabilities,
    envelope: &Envelope,
    message: &[u8],
    reused: bool,
) -> Result<Vec<Outcome>, Gone> {
    let n = envelope.recipients.len();
    if let Some(outcome) = refuse_before_mail(caps, peer, envelope, message) {
        tracing::info!(host = peer.host, reason = %outcome_reason(&outcome), "not sent");
        return Ok(vec![outcome; n]);
    }
    if !envelope
        .sender
        .as_deref()
        .is_none_or(params::is_safe_address)
    {
        let outcome = Outcome::failed(
            Status::new(5, 1, 7),
            "the sender address holds characters no SMTP command may carry",
        );
        return Ok(vec![outcome; n]);
    }
    let mut outcomes: Vec<Option<Outcome>> = envelope
        .recipients
        .iter()
        .map(|r| {
            (!params::is_safe_address(&r.address)).then(|| {
                Outcome::failed(
                    Status::new(5, 1, 3),
                    "the recipient address holds characters no SMTP command may carry",
                )
            })
        })
        .collect();
    if outcomes.iter().all(Option::is_some) {
        return Ok(outcomes.into_iter().flatten().collect());
    }
    match exchange(conn, peer, caps, envelope, message, &mut outcomes, reused).await {
        Ok(()) => {}
        Err(Stop::Gone) => return Err(Gone),
        Err(Stop::Conn(e)) => {
            tracing::info!(host = peer.host, error = %e, "transaction broken off");
            let outcome = connection_failure(peer.host, "during the transaction", &e);
            for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
                *slot = Some(outcome.clone());
            }
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Outcome::deferred(Status::new(4, 5, 0), "no reply for this recipient")
            })
        })
        .collect())
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
    reused: bool,
) -> Result<(), Stop> {
    let mail = params::mail(envelope, caps, message.len(), data::is_8bit(message));
    let rcpts: Vec<(usize, String)> = (0..outcomes.len())
        .filter(|&i| outcomes[i].is_none())
        .map(|i| (i, params::rcpt(&envelope.recipients[i], caps)))
        .collect();
    let opened = if caps.pipelining {
        pipelined(conn, peer, &mail, &rcpts, outcomes, reused).await?
    } else {
        lockstep(conn, peer, &mail, &rcpts, outcomes, reused).await?
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
    reused: bool,
) -> Result<Option<(Vec<usize>, Reply)>, Stop> {
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
        if n == 0 {
            mail_reply = Some(first(conn, &batch, peer, reused).await?);
        } else {
            conn.send(&batch, t.command, "sending RCPT and DATA")
                .await?;
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
    reused: bool,
) -> Result<Option<(Vec<usize>, Reply)>, Stop> {
    let (t, host) = (peer.timeouts, peer.host);
    let mail_reply = first(conn, mail.as_bytes(), peer, reused).await?;
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

/// Sends the first commands of the transaction (`MAIL`, and with
/// pipelining the `RCPT`s and `DATA`) and reads the reply to `MAIL`. On a
/// kept session, a failure before that reply, or a `421` (the peer closing
/// an idle session), means the session was gone before the transaction:
/// [`Stop::Gone`].
async fn first<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    commands: &[u8],
    peer: &Peer<'_>,
    reused: bool,
) -> Result<Reply, Stop> {
    let t = peer.timeouts.command;
    let reply = match conn.send(commands, t, "sending MAIL").await {
        Ok(()) => conn.reply(t, "after MAIL").await,
        Err(e) => Err(e),
    };
    match reply {
        Ok(r) if reused && r.code == 421 => Err(Stop::Gone),
        Err(ConnError::Io(_) | ConnError::Protocol(_)) if reused => Err(Stop::Gone),
        Ok(r) => Ok(r),
        Err(e) => Err(Stop::Conn(e)),
    }
}
