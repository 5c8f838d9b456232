//! The network layer: listeners, connections, reload and shutdown.
//!
//! - [`Generation`]: one loaded plan with its TLS configurations and
//!   verifier; a reload makes a new one, sessions in flight keep theirs;
//! - [`listener`]: one accept loop per bound address, with the
//!   per-listener and per-client limits;
//! - [`connection`]: the driver that runs an SMTP session over a socket;
//! - [`deliver`]: spooling an accepted message.
//!
//! Shutdown has two stages (STYLE 16): stop accepting and tell idle
//! sessions `421 4.3.0`, then wait for the rest under a grace period.

pub mod connection;
pub mod deliver;
pub mod listener;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mailgw_plan::{AuthMode, Limits, Listener, ListenerTls, Plan, Protocol, TlsMode, TlsSource};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::queue::admin::Request;
use crate::queue::intake::MemberAddresses;
use crate::spool::Spool;
use crate::tls::{self, TlsError};
use listener::{ListenerState, Shared};

/// A loaded plan and what the runtime made of it.
pub struct Generation {
    /// The plan.
    pub plan: Arc<Plan>,
    /// Server configuration of each TLS profile, by index.
    pub tls: Vec<Arc<ServerConfig>>,
    /// The credential verifier for this plan.
    pub authenticator: Arc<Authenticator>,
    /// The plan's listeners, shared by their connections.
    pub listeners: Vec<Arc<Listener>>,
    /// An address for each mailbox that is a group member, for expansion
    /// when a message is queued.
    pub members: Arc<MemberAddresses>,
    /// For implicit-TLS IMAP and POP3 listeners: their profile's
    /// configuration with the protocol's ALPN identifier (RFC 7301), by
    /// profile index and protocol.
    alpn: Vec<(u32, Protocol, Arc<ServerConfig>)>,
}

impl Generation {
    /// Loads the TLS profiles of `plan` (making self-signed certificates).
    pub fn new(plan: Plan) -> Result<Generation, TlsError> {
        let tls = tls::load_profiles(&plan)?;
        let mut alpn = Vec::new();
        for l in &plan.listeners {
            let id: &[u8] = match l.protocol {
                Protocol::Imap => b"imap",
                Protocol::Pop3 => b"pop3",
                Protocol::Smtp => continue,
            };
            let Some(profile) = l.tls.profile.filter(|_| l.tls.mode == TlsMode::Implicit) else {
                continue;
            };
            let Some(config) = tls.get(profile as usize) else {
                continue;
            };
            if !alpn
                .iter()
                .any(|(p, proto, _)| *p == profile && *proto == l.protocol)
            {
                let mut config = (**config).clone();
                config.alpn_protocols = vec![id.to_vec()];
                alpn.push((profile, l.protocol, Arc::new(config)));
            }
        }
        let plan = Arc::new(plan);
        Ok(Generation {
            authenticator: Arc::new(Authenticator::new(Arc::clone(&plan))),
            members: Arc::new(MemberAddresses::of(&plan)),
            listeners: plan.listeners.iter().cloned().map(Arc::new).collect(),
            plan,
            tls,
            alpn,
        })
    }

    /// The TLS configuration for connections on `listener`.
    pub fn listener_tls(&self, listener: &Listener) -> Option<Arc<ServerConfig>> {
        let profile = listener.tls.profile?;
        let special = self
            .alpn
            .iter()
            .find(|(p, proto, _)| *p == profile && *proto == listener.protocol);
        match special {
            Some((_, _, config)) => Some(Arc::clone(config)),
            None => self.tls.get(profile as usize).cloned(),
        }
    }
}

/// Where sessions find the queue manager; empty until it is attached.
pub type QueueLink = Arc<OnceLock<mpsc::Sender<Request>>>;

/// What decides whether a bound address must be bound again on reload:
/// everything of its listener except the source reference and the
/// certificates (those are picked up from the new generation per
/// connection).
#[derive(Debug, Clone, PartialEq)]
struct ListenerKey {
    name: String,
    protocol: Protocol,
    tls: ListenerTls,
    auth: AuthMode,
    limits: Limits,
    filter_return: bool,
    certificate: Option<TlsSource>,
}

impl ListenerKey {
    fn of(plan: &Plan, listener: &Listener) -> ListenerKey {
        ListenerKey {
            name: listener.name.clone(),
            protocol: listener.protocol,
            tls: listener.tls,
            auth: listener.auth,
            limits: listener.limits,
            filter_return: listener.filter_return,
            certificate: listener
                .tls
                .profile
                .and_then(|i| plan.tls.get(i as usize))
                .map(|p| p.certificate.clone()),
        }
    }
}

/// One bound address and its accept loop.
struct Bound {
    key: ListenerKey,
    state: Arc<ListenerState>,
    task: JoinHandle<()>,
}

/// The running gateway's network side.
pub struct Server {
    /// The current generation, read by the accept loops per connection.
    generation: watch::Sender<Arc<Generation>>,
    /// The spool, shared by every connection.
    spool: Spool,
    /// The queue manager's request channel, once attached.
    queue: QueueLink,
    /// Graceful shutdown: `true` once it started.
    shutdown: watch::Sender<bool>,
    /// Cloned into every connection; see [`Server::shutdown`].
    drain_tx: mpsc::Sender<()>,
    /// Yields `None` once every connection has ended.
    drain_rx: mpsc::Receiver<()>,
    /// The accept loops, by address (ordered, for stable logs).
    bound: BTreeMap<SocketAddr, Bound>,
}

impl Server {
    /// Binds every address of every SMTP listener of the plan. An address
    /// that cannot be bound is an error: nothing is served then.
    pub async fn start(generation: Generation, spool: Spool) -> std::io::Result<Server> {
        let (drain_tx, drain_rx) = mpsc::channel(1);
        let (shutdown, _) = watch::channel(false);
        let mut server = Server {
            generation: watch::channel(Arc::new(generation)).0,
            spool,
            queue: Arc::new(OnceLock::new()),
            shutdown,
            drain_tx,
            drain_rx,
            bound: BTreeMap::new(),
        };
        let failures = server.apply(BTreeMap::new()).await;
        if let Some((addr, e)) = failures.into_iter().next() {
            server.stop_accepting().await;
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr}: {e}"),
            ));
        }
        Ok(server)
    }

    /// Connects the sessions to the queue manager (for `ETRN`); before, an
    /// `ETRN` is answered `458`.
    pub fn attach_queue(&self, requests: mpsc::Sender<Request>) {
        let _ = self.queue.set(requests);
    }

    /// The plan of the current generation, read anew at each call (for
    /// the queue manager, which follows reloads).
    pub fn plans(&self) -> crate::queue::PlanSource {
        let generation = self.generation.subscribe();
        Arc::new(move || Arc::clone(&generation.borrow().plan))
    }

    /// The addresses accepted on now.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.bound.keys().copied().collect()
    }

    /// Switches to a new generation: new sessions use it, sessions in
    /// flight keep theirs. Listeners that are new or changed are bound,
    /// those removed or changed stop accepting.
    ///
    /// The addresses the new plan adds are bound first: when one cannot
    /// be, nothing changes and they are the error (the running plan
    /// stays). Otherwise the result lists the changed listeners' addresses
    /// that could not be bound again (rare: the address was ours a moment
    /// before); all are logged.
    pub async fn reload(
        &mut self,
        generation: Generation,
    ) -> Result<Vec<(SocketAddr, std::io::Error)>, Vec<(SocketAddr, std::io::Error)>> {
        let mut added = BTreeMap::new();
        let mut failures = Vec::new();
        for l in &generation.plan.listeners {
            for &addr in &l.binds {
                if self.bound.contains_key(&addr) || added.contains_key(&addr) {
                    continue;
                }
                match listener::bind(addr).await {
                    Ok(tcp) => {
                        added.insert(addr, tcp);
                    }
                    Err(e) => {
                        tracing::error!(listener = %l.name, address = %addr, error = %e, "cannot listen");
                        failures.push((addr, e));
                    }
                }
            }
        }
        if !failures.is_empty() {
            return Err(failures);
        }
        self.generation.send_replace(Arc::new(generation));
        Ok(self.apply(added).await)
    }

    /// Makes the bound addresses match the current generation, using the
    /// sockets in `bound_already` for their addresses.
    async fn apply(
        &mut self,
        mut bound_already: BTreeMap<SocketAddr, TcpListener>,
    ) -> Vec<(SocketAddr, std::io::Error)> {
        let generation = Arc::clone(&self.generation.borrow());
        let plan = &generation.plan;
        let mut wanted: BTreeMap<SocketAddr, (ListenerKey, &Listener)> = BTreeMap::new();
        for l in &plan.listeners {
            for addr in &l.binds {
                wanted.insert(*addr, (ListenerKey::of(plan, l), l));
            }
        }
        // Stop what is gone or changed, first, so that a changed listener
        // can bind its address again.
        let stale: Vec<SocketAddr> = self
            .bound
            .iter()
            .filter(|(addr, b)| wanted.get(addr).is_none_or(|(key, _)| *key != b.key))
            .map(|(addr, _)| *addr)
            .collect();
        for addr in stale {
            if let Some(b) = self.bound.remove(&addr) {
                b.task.abort();
                let _ = b.task.await;
                tracing::info!(listener = %b.key.name, address = %addr, "listener stopped");
            }
        }
        let mut failures = Vec::new();
        let mut states: BTreeMap<String, Arc<ListenerState>> = self
            .bound
            .values()
            .map(|b| (b.key.name.clone(), Arc::clone(&b.state)))
            .collect();
        for (addr, (key, l)) in wanted {
            if self.bound.contains_key(&addr) {
                continue;
            }
            let bound = match bound_already.remove(&addr) {
                Some(tcp) => Ok(tcp),
                None => listener::bind(addr).await,
            };
            let tcp = match bound {
                Ok(tcp) => tcp,
                Err(e) => {
                    tracing::error!(listener = %l.name, address = %addr, error = %e, "cannot listen");
                    failures.push((addr, e));
                    continue;
                }
            };
            let state = Arc::clone(
                states
                    .entry(l.name.clone())
                    .or_insert_with(|| ListenerState::new(&l.name, l.protocol, &l.limits)),
            );
            let shared = Shared {
                generation: self.generation.subscribe(),
                spool: self.spool.clone(),
                queue: Arc::clone(&self.queue),
                shutdown: self.shutdown.subscribe(),
                drain: self.drain_tx.clone(),
            };
            let bound_addr = tcp.local_addr().unwrap_or(addr);
            tracing::info!(listener = %l.name, address = %bound_addr, tls = ?l.tls.mode, auth = ?l.auth, "listening");
            let task = tokio::spawn(listener::accept_loop(tcp, Arc::clone(&state), shared));
            self.bound.insert(addr, Bound { key, state, task });
        }
        failures
    }

    async fn stop_accepting(&mut self) {
        for (addr, b) in std::mem::take(&mut self.bound) {
            b.task.abort();
            let _ = b.task.await;
            tracing::info!(listener = %b.key.name, address = %addr, "stopped accepting");
        }
    }

    /// Graceful shutdown: stops accepting, tells idle sessions
    /// `421 4.3.0`, lets transactions in flight finish, and returns once
    /// every session ended or `grace` passed. Returns whether every
    /// session ended in time.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        self.stop_accepting().await;
        self.shutdown.send_replace(true);
        let Server {
            drain_tx,
            mut drain_rx,
            ..
        } = self;
        drop(drain_tx);
        tokio::time::timeout(grace, drain_rx.recv()).await.is_ok()
    }
}
