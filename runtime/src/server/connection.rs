//! One connection: runs the SMTP [`Session`] over a TCP or TLS stream.
//!
//! The driver keeps no input buffer of its own: every byte read is given to
//! the session at once, and the session drops what follows `STARTTLS`, so
//! nothing sent in cleartext survives the upgrade. Replies are buffered and
//! flushed before every read, sleep or handshake (PIPELINING).
//!
//! Every wait is bounded by the plan's limits: the greeting, command and
//! data timeouts per read, the minimum data rate, and the session
//! deadline; each ends the session with `421 4.4.2`. At a graceful
//! shutdown an idle session gets `421 4.3.0` when it next waits for a
//! command; one in a transaction finishes it first.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailgw_plan::{Listener, Plan, TlsMode};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsAcceptor;

use super::deliver::spool_message;
use crate::auth::{Authenticator, Verdict};
use crate::queue::admin::{Answer, Command, Request};
use crate::queue::intake::MemberAddresses;
use crate::smtp::{AuthOutcome, Session, SessionConfig, Step, Waiting};
use crate::spool::Spool;

/// Size of one read while waiting for a command: an idle session holds
/// no more than this.
const COMMAND_READ: usize = 2 * 1024;
/// Size of one read during message data; the session bounds what it keeps.
const DATA_READ: usize = 32 * 1024;
/// Replies buffered beyond this are written out without waiting for a read.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;
/// Time allowed for a TLS handshake, within the session deadline.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A data transfer is checked against the minimum rate only after this long.
const RATE_GRACE: Duration = Duration::from_secs(10);

/// Everything a connection needs, fixed when it is accepted: a reload does
/// not change a session in flight.
pub struct Context {
    /// The plan the session runs with.
    pub plan: Arc<Plan>,
    /// The listener it came in on.
    pub listener: Arc<Listener>,
    /// The listener's TLS configuration, if it has one.
    pub tls: Option<Arc<ServerConfig>>,
    /// Where accepted messages go.
    pub spool: Spool,
    /// The queue manager (for `ETRN`).
    pub queue: super::QueueLink,
    /// Verifies AUTH credentials.
    pub authenticator: Arc<Authenticator>,
    /// Group members' addresses, for expansion at queueing.
    pub members: Arc<MemberAddresses>,
    /// Becomes `true` at a graceful shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Dropped when the connection ends; the server waits for all of them
    /// to drain.
    pub _drain: mpsc::Sender<()>,
}

/// How a run of the session over one stream ended.
enum Ended<S> {
    /// The connection is done.
    Closed,
    /// The session asked for TLS: handshake over this stream, then go on.
    StartTls(S),
}

/// Why the driver stopped early; logged, never sent.
#[derive(Debug)]
enum Failure {
    /// The client's side failed (reset, broken TLS).
    Client(std::io::Error),
}

static SESSION_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A session id unique in this process and unlikely to repeat across
/// restarts: start second of the process, then a counter.
pub(crate) fn session_id() -> String {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let n = SESSION_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{n:x}", start & 0xffff_ffff)
}

/// Serves one accepted connection to its end.
pub async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Context) {
    let id = session_id();
    let config = SessionConfig {
        previous_auth_failures: ctx.authenticator.failures(peer.ip()),
        ..SessionConfig::new(&ctx.plan, &ctx.listener, peer.ip(), id.clone())
    };
    tracing::info!(session = %id, client = %peer, listener = %ctx.listener.name, "connected");
    let limits = ctx.listener.limits;
    let deadline = Instant::now() + secs(limits.session_deadline_s);
    let mut session = Session::new(config, Arc::clone(&ctx.plan));
    let mut driver = Driver {
        ctx,
        deadline,
        greeted: false,
        id: id.clone(),
        client: peer.ip(),
    };
    let result = driver.run(&mut session, stream).await;
    match result {
        Ok(()) => tracing::info!(session = %id, client = %peer, "closed"),
        Err(Failure::Client(e)) => {
            tracing::info!(session = %id, client = %peer, side = "client", error = %e, "connection lost")
        }
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s.max(1)))
}

struct Driver {
    ctx: Context,
    deadline: Instant,
    /// Whether the client sent its first command (the greeting timeout
    /// applies before).
    greeted: bool,
    id: String,
    client: std::net::IpAddr,
}

impl Driver {
    async fn run(&mut self, session: &mut Session, tcp: TcpStream) -> Result<(), Failure> {
        if self.ctx.listener.tls.mode == TlsMode::Implicit {
            return Box::pin(self.over_tls(session, tcp, Some(session.greeting()))).await;
        }
        let greeting = session.greeting();
        match self.drive(session, tcp, Some(greeting)).await? {
            Ended::Closed => Ok(()),
            Ended::StartTls(tcp) => Box::pin(self.over_tls(session, tcp, None)).await,
        }
    }

    /// The TLS handshake, then the session over TLS: from the start with
    /// `greeting` (implicit TLS), or after `STARTTLS` when `greeting` is
    /// `None`. Boxed by the caller: its state is large (rustls, the session
    /// loop over a TLS stream) and a plain-text connection never needs it.
    async fn over_tls(
        &mut self,
        session: &mut Session,
        tcp: TcpStream,
        greeting: Option<crate::smtp::Reply>,
    ) -> Result<(), Failure> {
        let Some(tls) = self.handshake(tcp).await? else {
            return Ok(());
        };
        if greeting.is_none() {
            session.tls_established();
            tracing::info!(session = %self.id, "TLS established");
        }
        match self.drive(session, tls, greeting).await? {
            Ended::Closed | Ended::StartTls(_) => Ok(()),
        }
    }

    /// The server side of a TLS handshake; `None` when the listener has no
    /// TLS configuration or the handshake timed out.
    async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<Option<tokio_rustls::server::TlsStream<TcpStream>>, Failure> {
        let Some(config) = &self.ctx.tls else {
            tracing::error!(session = %self.id, "listener has no TLS configuration");
            return Ok(None);
        };
        let acceptor = TlsAcceptor::from(Arc::clone(config));
        let limit = (Instant::now() + HANDSHAKE_TIMEOUT).min(self.deadline);
        match timeout_at(limit, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Ok(Some(tls)),
            Ok(Err(e)) => Err(Failure::Client(e)),
            Err(_) => {
                tracing::info!(session = %self.id, "TLS handshake timed out");
                Ok(None)
            }
        }
    }

    /// Runs the session over `stream` until it closes or asks for TLS.
    async fn drive<S>(
        &mut self,
        session: &mut Session,
        mut stream: S,
        greeting: Option<crate::smtp::Reply>,
    ) -> Result<Ended<S>, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let limits = self.ctx.listener.limits;
        let mut out: Vec<u8> = Vec::new();
        if let Some(g) = greeting {
            g.write_to(&mut out);
        }
        // Read into spare capacity: a buffer is never zeroed.
        let mut buf: Vec<u8> = Vec::with_capacity(COMMAND_READ);
        // Start of the current data transfer and the octets received in it.
        let mut transfer: Option<(Instant, u64)> = None;
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            match session.step() {
                Step::Reply(r) => {
                    r.write_to(&mut out);
                    if out.len() > MAX_PENDING_OUTPUT {
                        self.flush(&mut stream, &mut out).await?;
                    }
                }
                Step::NeedInput => {
                    if *shutdown.borrow() && !session.in_transaction() {
                        tracing::info!(session = %self.id, "shutting down; closing idle session");
                        session.shutdown_reply().write_to(&mut out);
                        return self.close(stream, out).await;
                    }
                    self.flush(&mut stream, &mut out).await?;
                    let waiting = session.waiting();
                    let per_read = match (waiting, self.greeted) {
                        (Waiting::Data, _) => secs(limits.data_timeout_s),
                        (Waiting::Command, false) => secs(limits.greeting_timeout_s),
                        (Waiting::Command, true) => secs(limits.command_timeout_s),
                    };
                    if waiting == Waiting::Command {
                        transfer = None;
                        if buf.capacity() != COMMAND_READ {
                            buf = Vec::with_capacity(COMMAND_READ);
                        }
                    } else if buf.capacity() < DATA_READ {
                        buf = Vec::with_capacity(DATA_READ);
                    }
                    buf.clear();
                    let limit = (Instant::now() + per_read).min(self.deadline);
                    let read = tokio::select! {
                        read = timeout_at(limit, stream.read_buf(&mut buf)) => read,
                        changed = shutdown.changed(), if !*shutdown.borrow() => {
                            if changed.is_err() {
                                // The server is gone; treat as shutdown.
                                session.shutdown_reply().write_to(&mut out);
                                return self.close(stream, out).await;
                            }
                            continue;
                        }
                    };
                    let n = match read {
                        Err(_) => {
                            tracing::info!(session = %self.id, waiting = ?waiting, "timeout");
                            session.timeout_reply().write_to(&mut out);
                            return self.close(stream, out).await;
                        }
                        Ok(Err(e)) => return Err(Failure::Client(e)),
                        Ok(Ok(n)) => n,
                    };
                    if n == 0 {
                        session.eof();
                        continue;
                    }
                    self.greeted = true;
                    session.feed(&buf[..n]);
                    if waiting == Waiting::Data && limits.min_data_rate > 0 {
                        let (start, octets) = transfer.get_or_insert((Instant::now(), 0));
                        *octets += n as u64;
                        let elapsed = start.elapsed();
                        if elapsed >= RATE_GRACE
                            && *octets < u64::from(limits.min_data_rate) * elapsed.as_secs()
                        {
                            tracing::info!(session = %self.id, octets = *octets, seconds = elapsed.as_secs(), "data rate below the minimum");
                            session.timeout_reply().write_to(&mut out);
                            return self.close(stream, out).await;
                        }
                    }
                }
                Step::Delay(d) => {
                    self.flush(&mut stream, &mut out).await?;
                    tokio::time::sleep_until((Instant::now() + d).min(self.deadline)).await;
                }
                Step::StartTls(r) => {
                    r.write_to(&mut out);
                    self.flush(&mut stream, &mut out).await?;
                    return Ok(Ended::StartTls(stream));
                }
                Step::Authenticate(credentials) => {
                    let verdict = Box::pin(self.ctx.authenticator.verify(
                        &credentials.username,
                        credentials.password.expose(),
                        self.client,
                    ))
                    .await;
                    session.auth_result(match verdict {
                        Verdict::Accepted { .. } => AuthOutcome::Success,
                        Verdict::Rejected => AuthOutcome::Failure,
                        Verdict::Unavailable => AuthOutcome::Unavailable,
                    });
                }
                Step::Deliver(delivery) => {
                    // Boxed, as are the other large, occasional waits: a
                    // session's task then stays small (2.2 KB instead of
                    // 11.4 KB) while it waits for commands.
                    let result = Box::pin(spool_message(&self.ctx, &self.id, *delivery)).await;
                    session.spooled(result);
                }
                Step::Etrn(domain) => {
                    let started = self.flush_domain(domain).await;
                    session.etrn_result(started);
                }
                Step::Close => return self.close(stream, out).await,
            }
        }
    }

    /// Asks the queue manager to try `domain`'s mail now; how many
    /// messages it started, `None` when it could not be asked.
    async fn flush_domain(&self, domain: String) -> Option<usize> {
        let queue = self.ctx.queue.get()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = Request {
            command: Command::Flush { domain },
            reply,
        };
        queue.send(request).await.ok()?;
        match answer.await.ok()? {
            Answer::Done { count } => Some(count),
            _ => None,
        }
    }

    async fn flush<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        let limits = self.ctx.listener.limits;
        let limit = (Instant::now() + secs(limits.command_timeout_s)).min(self.deadline);
        write_out(stream, out, limit).await
    }

    async fn close<S>(&self, mut stream: S, mut out: Vec<u8>) -> Result<Ended<S>, Failure>
    where
        S: AsyncWrite + Unpin,
    {
        // A client that does not read its last reply must not hold the
        // connection open.
        let limit = (Instant::now() + Duration::from_secs(10)).min(self.deadline);
        let _ = timeout_at(limit, async {
            self.flush(&mut stream, &mut out).await?;
            stream.shutdown().await.map_err(Failure::Client)
        })
        .await;
        Ok(Ended::Closed)
    }
}

/// Writes the buffered replies; a client that does not read them within
/// the command timeout (or the session deadline) is dropped.
async fn write_out<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
    limit: Instant,
) -> Result<(), Failure> {
    if out.is_empty() {
        return Ok(());
    }
    let write = async {
        stream.write_all(out).await?;
        stream.flush().await
    };
    match timeout_at(limit, write).await {
        Ok(result) => result.map_err(Failure::Client)?,
        Err(_) => {
            return Err(Failure::Client(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client does not read its replies",
            )))
        }
    }
    out.clear();
    Ok(())
}
