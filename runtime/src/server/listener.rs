//! The accept loop of one bound address, and the per-listener limits.
//!
//! A connection takes a permit of the listener's semaphore
//! (`max-connections`) and a slot of its client address
//! (`max-per-client`); over either it is answered `421 4.7.0` and closed.
//! Both are released when the connection ends. SMTP connections go to
//! [`connection::serve`], IMAP and POP3 ones to the proxy, which lets them
//! wait for their first command in the loop's waiting room.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailgw_plan::{Limits, Protocol};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::connection::{self, Context};
use super::Generation;
use super::QueueLink;
use crate::proxy::driver::{self, ProxyContext, ProxyRoom};
use crate::spool::Spool;

/// The connection limits of one listener, shared by its bound addresses.
pub struct ListenerState {
    /// The listener's name in the plan.
    pub name: String,
    /// The protocol it speaks (for the words of a refusal).
    protocol: Protocol,
    /// One permit per open connection (`max-connections`).
    connections: Arc<Semaphore>,
    /// Open connections per client address (`max-per-client`); an entry
    /// is removed when its count drops to zero, so the map is bounded by
    /// the connection limit.
    per_client: Mutex<HashMap<IpAddr, u32>>,
    /// The most connections from one address.
    max_per_client: u32,
}

impl ListenerState {
    /// Limits for a listener.
    pub fn new(name: &str, protocol: Protocol, limits: &Limits) -> Arc<ListenerState> {
        Arc::new(ListenerState {
            name: name.to_owned(),
            protocol,
            connections: Arc::new(Semaphore::new(limits.max_connections.max(1) as usize)),
            per_client: Mutex::new(HashMap::new()),
            max_per_client: limits.max_per_client.max(1),
        })
    }

    /// A slot for a connection from `ip`, or `None` over a limit.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admission> {
        let permit = Arc::clone(&self.connections).try_acquire_owned().ok()?;
        let mut map = self.per_client.lock().ok()?;
        let count = map.entry(ip).or_insert(0);
        if *count >= self.max_per_client {
            return None;
        }
        *count += 1;
        Some(Admission {
            state: Arc::clone(self),
            ip,
            _permit: permit,
        })
    }
}

/// An admitted connection's hold on the limits; released on drop.
pub struct Admission {
    state: Arc<ListenerState>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut map) = self.state.per_client.lock() {
            if let Some(count) = map.get_mut(&self.ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

/// What an accept loop shares with the server.
pub struct Shared {
    /// The current plan, TLS configurations and verifier.
    pub generation: watch::Receiver<Arc<Generation>>,
    /// The spool.
    pub spool: Spool,
    /// The queue manager, once it runs (for `ETRN`).
    pub queue: QueueLink,
    /// Becomes `true` at a graceful shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Cloned into every connection; the server waits until all are gone.
    pub drain: mpsc::Sender<()>,
}

/// Accepts connections on `tcp` until the task is aborted or shutdown
/// starts.
pub async fn accept_loop(tcp: TcpListener, state: Arc<ListenerState>, shared: Shared) {
    let mut shutdown = shared.shutdown.clone();
    let addr = tcp.local_addr().ok();
    let mut room: Option<ProxyRoom> = None;
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::warn!(listener = %state.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(admission) = state.admit(peer.ip()) else {
            tracing::info!(listener = %state.name, client = %peer, decision = "refused", "too many connections");
            tokio::spawn(refuse(stream, state.protocol));
            continue;
        };
        let generation = Arc::clone(&shared.generation.borrow());
        let Some(listener) = generation
            .listeners
            .iter()
            .find(|l| l.name == state.name)
            .map(Arc::clone)
        else {
            continue;
        };
        let tls = generation.listener_tls(&listener);
        if listener.protocol != Protocol::Smtp {
            let ctx = ProxyContext {
                listener,
                tls,
                generation: shared.generation.clone(),
                shutdown: shared.shutdown.clone(),
                _drain: shared.drain.clone(),
                _admission: admission,
            };
            let room = room.get_or_insert_with(|| ProxyRoom::open(shared.shutdown.clone()));
            driver::accept(stream, peer, ctx, room);
            continue;
        }
        let ctx = Context {
            plan: Arc::clone(&generation.plan),
            listener,
            tls,
            spool: shared.spool.clone(),
            queue: Arc::clone(&shared.queue),
            authenticator: Arc::clone(&generation.authenticator),
            members: Arc::clone(&generation.members),
            shutdown: shared.shutdown.clone(),
            _drain: shared.drain.clone(),
        };
        tokio::spawn(async move {
            connection::serve(stream, peer, ctx).await;
            drop(admission);
        });
    }
    tracing::info!(listener = %state.name, address = ?addr, "stopped accepting");
}

/// Answers a connection over a limit in its protocol and closes it.
async fn refuse(mut stream: TcpStream, protocol: Protocol) {
    let reply: &[u8] = match protocol {
        Protocol::Smtp => b"421 4.7.0 Too many connections, try again later\r\n",
        Protocol::Imap => b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
        Protocol::Pop3 => b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        stream.write_all(reply).await?;
        stream.shutdown().await
    })
    .await;
}

/// Binds `addr` for a listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
