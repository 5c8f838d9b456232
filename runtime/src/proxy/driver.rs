//! One proxied connection: the greeting, the wait for the client's first
//! bytes in the [`WaitingRoom`], then the pre-login session over a TCP or
//! TLS stream, the login at the backend, and the splice.
//!
//! A cleartext connection is greeted as it is accepted, by a write that
//! the fresh socket's send buffer takes whole, and an implicit-TLS one
//! waits for the client's hello; either way it waits in the listener's
//! room, a slot rather than a task, until the client sends something.
//! Only then are the session and its task made. The wait ends, as the
//! first read would, at the greeting timeout (with `* BYE` or `-ERR`) or,
//! before a TLS handshake, at the handshake timeout (closed); both within
//! the session deadline.
//!
//! Before login every read is bounded by the greeting or command timeout
//! and the whole phase by the session deadline; afterwards only the idle
//! timeout applies. At a graceful shutdown a session that has not logged
//! in is told so and closed; proxied sessions go on until the grace period
//! ends.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailgw_plan::{Listener, Protocol, TlsMode};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsAcceptor;
use tracing::info;

use super::imap_session::ImapSession;
use super::login::{login, LoggedIn};
use super::pop3_session::Pop3Session;
use super::splice::{splice, Ended};
use super::waiting_room::{Guest, Leave, WaitingRoom};
use super::{PreLogin, PreLoginLimits, Step};
use crate::server::connection::session_id;
use crate::server::listener::Admission;
use crate::server::Generation;

/// Time allowed for a TLS handshake, within the pre-login deadline.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Input buffers larger than this are freed after use, before login.
const READ: usize = 1024;

/// Everything a proxied connection needs.
pub struct ProxyContext {
    /// The listener it came in on.
    pub listener: Arc<Listener>,
    /// The listener's TLS configuration, if it has one.
    pub tls: Option<Arc<ServerConfig>>,
    /// The current generation: the login uses the plan current at the
    /// time of the login, so a mailbox moved by a reload is found on its
    /// new backend.
    pub generation: watch::Receiver<Arc<Generation>>,
    /// Becomes `true` at a graceful shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Dropped when the connection ends.
    pub _drain: mpsc::Sender<()>,
    /// The connection's place under the listener's limits, given back
    /// when it ends.
    pub _admission: Admission,
}

/// The waiting room of one listener's connections.
pub type ProxyRoom = WaitingRoom<Waiting>;

/// A connection waiting for the client's first bytes: all it holds in the
/// [`ProxyRoom`].
pub struct Waiting {
    stream: TcpStream,
    peer: SocketAddr,
    ctx: ProxyContext,
    id: String,
    /// The end of the pre-login phase.
    deadline: Instant,
    /// The end of the wait.
    until: Instant,
}

impl Guest for Waiting {
    fn socket(&self) -> &TcpStream {
        &self.stream
    }

    fn until(&self) -> Instant {
        self.until
    }

    fn leave(self, why: Leave) {
        tokio::spawn(self.resume(why));
    }
}

/// Takes an accepted IMAP or POP3 connection: greets it (cleartext) and
/// lets it wait in `room` for the client.
pub fn accept(stream: TcpStream, peer: SocketAddr, ctx: ProxyContext, room: &ProxyRoom) {
    let id = session_id();
    info!(session = %id, client = %peer, listener = %ctx.listener.name, protocol = ?ctx.listener.protocol, "connected");
    let now = Instant::now();
    let limits = ctx.listener.limits;
    let deadline = now + secs(limits.session_deadline_s);
    // An implicit-TLS client speaks first, with its TLS hello; the
    // others are greeted now.
    let implicit = ctx.listener.tls.mode == TlsMode::Implicit;
    let (greeting, wait) = if implicit {
        (Vec::new(), HANDSHAKE_TIMEOUT)
    } else {
        (greeting(&ctx, false), secs(limits.greeting_timeout_s))
    };
    let written = if greeting.is_empty() {
        Ok(0)
    } else {
        stream.try_write(&greeting)
    };
    let sent = match written {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => {
            info!(session = %id, side = "client", error = %e, "connection lost");
            return;
        }
    };
    let waiting = Waiting {
        stream,
        peer,
        ctx,
        id,
        deadline,
        until: (now + wait).min(deadline),
    };
    if sent == greeting.len() {
        room.park(waiting);
    } else {
        // A client with no room to receive: its own task writes the rest,
        // under the command timeout.
        let rest = greeting[sent..].to_vec();
        tokio::spawn(waiting.serve(rest));
    }
}

/// The greeting of the context's listener and protocol.
fn greeting(ctx: &ProxyContext, tls_active: bool) -> Vec<u8> {
    let generation = ctx.generation.borrow();
    let hostname = &generation.plan.gateway.hostname;
    let mode = ctx.listener.tls.mode;
    match ctx.listener.protocol {
        Protocol::Pop3 => Pop3Session::greeting(hostname, mode, tls_active),
        Protocol::Imap | Protocol::Smtp => ImapSession::greeting(hostname, mode, tls_active),
    }
}

impl Waiting {
    /// Goes on after the wait.
    async fn resume(self, why: Leave) {
        let implicit = self.ctx.listener.tls.mode == TlsMode::Implicit;
        match (why, implicit) {
            (Leave::Readable, _) | (Leave::Shutdown, false) => self.serve(Vec::new()).await,
            (Leave::Expired, false) => {
                info!(session = %self.id, side = "client", "timeout before login");
                self.serve_expired().await;
            }
            // Nothing was said yet, and nothing can be said before TLS.
            (Leave::Expired, true) => {
                info!(session = %self.id, side = "client", "TLS handshake timed out");
            }
            (Leave::Shutdown, true) => {
                info!(session = %self.id, "shutting down; closing a session before login");
            }
        }
    }

    /// Runs the session, sending `out` first: what is left of the
    /// greeting, if anything.
    async fn serve(self, out: Vec<u8>) {
        let (mut driver, stream) = self.driver();
        match driver.ctx.listener.protocol {
            Protocol::Pop3 => {
                let session = driver.session(Pop3Session::new);
                driver.run(session, stream, out).await;
            }
            Protocol::Imap | Protocol::Smtp => {
                let session = driver.session(ImapSession::new);
                driver.run(session, stream, out).await;
            }
        }
    }

    /// Says the protocol's last words for a client that said nothing.
    async fn serve_expired(self) {
        let (driver, stream) = self.driver();
        let last: &[u8] = match driver.ctx.listener.protocol {
            Protocol::Pop3 => driver.session(Pop3Session::new).timeout_reply(),
            Protocol::Imap | Protocol::Smtp => driver.session(ImapSession::new).timeout_reply(),
        };
        driver.close(stream, last.to_vec()).await;
    }

    fn driver(self) -> (Driver, TcpStream) {
        let Waiting {
            stream,
            peer,
            ctx,
            id,
            deadline,
            until,
        } = self;
        let driver = Driver {
            ctx,
            id,
            peer,
            deadline,
            until,
            greeted: false,
            input: Vec::new(),
        };
        (driver, stream)
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s.max(1)))
}

struct Driver {
    ctx: ProxyContext,
    id: String,
    peer: SocketAddr,
    deadline: Instant,
    /// The end of the wait for the client's first bytes, which bounds an
    /// implicit-TLS handshake.
    until: Instant,
    greeted: bool,
    /// The last bytes read before login.
    input: Vec<u8>,
}

/// How the pre-login phase over one stream ended.
enum Outcome<S> {
    Closed,
    StartTls(S),
    LoggedIn(S, Box<LoggedIn>, Vec<u8>, Option<String>),
}

impl Driver {
    /// A pre-login session, made by `new`, for this connection.
    fn session<P: PreLogin>(&self, new: fn(TlsMode, bool, PreLoginLimits) -> P) -> P {
        let generation = self.ctx.generation.borrow();
        let plan = &generation.plan;
        let limits = PreLoginLimits {
            max_failures: plan.auth.max_failures,
            failure_delay: Duration::from_millis(plan.auth.failure_delay_ms),
            previous_failures: generation.authenticator.failures(self.peer.ip()),
        };
        let mode = self.ctx.listener.tls.mode;
        new(mode, mode == TlsMode::Implicit, limits)
    }

    /// Runs `session` over `tcp`; `out` is what to send first in cleartext.
    async fn run<P: PreLogin>(&mut self, mut session: P, tcp: TcpStream, out: Vec<u8>) {
        // Everything after the cleartext pre-login phase is boxed, so a
        // session waiting for a command holds only that small state, not
        // room for TLS or a backend login.
        if self.ctx.listener.tls.mode == TlsMode::Implicit {
            Box::pin(self.over_tls(session, tcp, self.until, false)).await;
            return;
        }
        match self.prelogin(&mut session, tcp, out).await {
            Outcome::Closed => {}
            Outcome::StartTls(tcp) => {
                let limit = (Instant::now() + HANDSHAKE_TIMEOUT).min(self.deadline);
                Box::pin(self.over_tls(session, tcp, limit, true)).await;
            }
            Outcome::LoggedIn(stream, logged, pending, tag) => {
                Box::pin(self.proxy(stream, *logged, pending, tag)).await;
            }
        }
    }

    /// The TLS handshake, done by `limit`, then the rest of the session
    /// over TLS; `upgraded` after STARTTLS, else the greeting comes first.
    async fn over_tls<P: PreLogin>(
        &mut self,
        mut session: P,
        tcp: TcpStream,
        limit: Instant,
        upgraded: bool,
    ) {
        let Some(tls) = self.handshake(tcp, limit).await else {
            return;
        };
        let out = if upgraded {
            session.tls_established();
            info!(session = %self.id, "TLS established");
            Vec::new()
        } else {
            greeting(&self.ctx, true)
        };
        match self.prelogin(&mut session, tls, out).await {
            Outcome::Closed | Outcome::StartTls(_) => {}
            Outcome::LoggedIn(stream, logged, pending, tag) => {
                self.proxy(stream, *logged, pending, tag).await;
            }
        }
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        limit: Instant,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let Some(config) = &self.ctx.tls else {
            tracing::error!(session = %self.id, side = "gateway", "listener has no TLS configuration");
            return None;
        };
        let acceptor = TlsAcceptor::from(Arc::clone(config));
        match timeout_at(limit, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                info!(session = %self.id, side = "client", error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                info!(session = %self.id, side = "client", "TLS handshake timed out");
                None
            }
        }
    }

    /// Runs the pre-login session until it closes, asks for TLS or logs in;
    /// `out` is sent first.
    async fn prelogin<P, S>(
        &mut self,
        session: &mut P,
        mut stream: S,
        mut out: Vec<u8>,
    ) -> Outcome<S>
    where
        P: PreLogin,
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let limits = self.ctx.listener.limits;
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            match session.step() {
                Step::Reply(bytes) => out.extend_from_slice(&bytes),
                Step::NeedInput => {
                    if *shutdown.borrow() {
                        out.extend_from_slice(session.shutdown_reply());
                        info!(session = %self.id, "shutting down; closing a session before login");
                        return Box::pin(self.close(stream, out)).await;
                    }
                    if !self.flush(&mut stream, &mut out).await {
                        return Outcome::Closed;
                    }
                    let per_read = if self.greeted {
                        secs(limits.command_timeout_s)
                    } else {
                        secs(limits.greeting_timeout_s)
                    };
                    let limit = (Instant::now() + per_read).min(self.deadline);
                    // Read into a heap buffer that grows with what arrives
                    // and is given back when large, so a session waiting
                    // for a command holds next to nothing.
                    if self.input.capacity() > READ {
                        self.input = Vec::new();
                    }
                    self.input.clear();
                    let read = tokio::select! {
                        read = timeout_at(limit, stream.read_buf(&mut self.input)) => read,
                        changed = shutdown.changed(), if !*shutdown.borrow() => {
                            if changed.is_err() {
                                // The server is gone: a shutdown too.
                                out.extend_from_slice(session.shutdown_reply());
                                return Box::pin(self.close(stream, out)).await;
                            }
                            continue;
                        }
                    };
                    match read {
                        Err(_) => {
                            info!(session = %self.id, side = "client", "timeout before login");
                            out.extend_from_slice(session.timeout_reply());
                            return Box::pin(self.close(stream, out)).await;
                        }
                        Ok(Err(e)) => {
                            info!(session = %self.id, side = "client", error = %e, "connection lost");
                            return Outcome::Closed;
                        }
                        Ok(Ok(0)) => session.eof(),
                        Ok(Ok(_)) => {
                            self.greeted = true;
                            session.feed(&self.input);
                        }
                    }
                }
                Step::Delay(d) => {
                    if !self.flush(&mut stream, &mut out).await {
                        return Outcome::Closed;
                    }
                    tokio::time::sleep_until((Instant::now() + d).min(self.deadline)).await;
                }
                Step::StartTls => {
                    if !self.flush(&mut stream, &mut out).await {
                        return Outcome::Closed;
                    }
                    return Outcome::StartTls(stream);
                }
                Step::Login(request) => {
                    if !self.flush(&mut stream, &mut out).await {
                        return Outcome::Closed;
                    }
                    let generation = Arc::clone(&self.ctx.generation.borrow());
                    let protocol = self.ctx.listener.protocol;
                    // Boxed: the login's state (backend connection, TLS)
                    // must not make every waiting session's task larger.
                    let login =
                        Box::pin(login(&generation, protocol, &request, self.peer, &self.id));
                    match login.await {
                        Ok(logged) => {
                            let pending = session.take_pending();
                            return Outcome::LoggedIn(
                                stream,
                                Box::new(logged),
                                pending,
                                request.tag,
                            );
                        }
                        Err(failure) => session.login_failed(failure),
                    }
                }
                Step::Close => return Box::pin(self.close(stream, out)).await,
            }
        }
    }

    /// Answers the client's login with the backend's words, then splices.
    async fn proxy<S>(&self, stream: S, logged: LoggedIn, pending: Vec<u8>, tag: Option<String>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let LoggedIn {
            conn,
            untagged,
            text,
            backend,
        } = logged;
        let mut to_client = untagged;
        if let Some(tag) = &tag {
            to_client.extend_from_slice(tag.as_bytes());
            to_client.push(b' ');
        }
        to_client.extend_from_slice(text.as_bytes());
        to_client.extend_from_slice(b"\r\n");
        let (backend_stream, leftover) = conn.into_parts();
        to_client.extend_from_slice(&leftover);
        let idle = secs(self.ctx.listener.limits.idle_timeout_s);
        let (ended, traffic) = splice(stream, backend_stream, pending, to_client, idle).await;
        let (side, how) = match &ended {
            Ended::ClientClosed => ("client", "closed".to_owned()),
            Ended::BackendClosed => ("backend", "closed".to_owned()),
            Ended::Idle => ("gateway", "idle timeout".to_owned()),
            Ended::ClientError(e) => ("client", e.to_string()),
            Ended::BackendError(e) => ("backend", e.to_string()),
        };
        info!(session = %self.id, client = %self.peer, %backend, side, ended = %how, up = traffic.up, down = traffic.down, "proxied session ended");
    }

    async fn flush<S: AsyncWrite + Unpin>(&self, stream: &mut S, out: &mut Vec<u8>) -> bool {
        if out.is_empty() {
            return true;
        }
        let limits = self.ctx.listener.limits;
        let limit = (Instant::now() + secs(limits.command_timeout_s)).min(self.deadline);
        let write = async {
            stream.write_all(out).await?;
            stream.flush().await
        };
        let ok = matches!(timeout_at(limit, write).await, Ok(Ok(())));
        out.clear();
        if !ok {
            info!(session = %self.id, side = "client", "client does not read its replies");
        }
        ok
    }

    async fn close<S: AsyncWrite + Unpin>(&self, mut stream: S, mut out: Vec<u8>) -> Outcome<S> {
        let limit = (Instant::now() + Duration::from_secs(10)).min(self.deadline);
        let _ = timeout_at(limit, async {
            if self.flush(&mut stream, &mut out).await {
                let _ = stream.shutdown().await;
            }
        })
        .await;
        info!(session = %self.id, client = %self.peer, "closed");
        Outcome::Closed
    }
}
