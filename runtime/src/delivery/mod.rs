//! Delivery: outbound SMTP through connectors (to a smarthost or the
//! recipient domain's MX hosts) and LMTP to the mailbox backends.
//!
//! The queue manager hands [`Client::deliver`] one spooled message for the
//! recipients that share a [`NextHop`] and gets back a [`Report`]: one
//! [`Outcome`] per recipient — delivered, deferred or failed, with the
//! peer's reply — and the host that answered (the DSN's `Remote-MTA`).
//! Retries, DSNs and the queue itself are not here.
//!
//! The hosts of a hop are tried in order (MX preference, then each address
//! of a host) until one runs the mail transaction; a host that cannot be
//! reached, greets with an error, refuses `EHLO`, fails TLS or the login,
//! only moves delivery to the next. Once a host has run the transaction its
//! replies decide: 2xx delivered, 4xx deferred, 5xx failed, per recipient
//! for `RCPT` (and LMTP's replies after the data), for all for `MAIL` and
//! `DATA`.
//!
//! The message goes with CRLF line ends — a bare CR or LF becomes CRLF
//! (RFC 5321 2.3.8) — and dot-stuffed; otherwise it is never altered. A
//! message the peer cannot take is failed before `MAIL`:
//! larger than its `SIZE` (5.3.4), 8-bit to a peer without `8BITMIME`
//! (5.6.3, which RFC 6152 allows instead of a conversion), needing
//! `SMTPUTF8` the peer lacks (5.6.7). Credentials go only over TLS, and
//! neither they nor the `AUTH` exchange are ever logged.
//!
//! ```no_run
//! use mailgw_runtime::delivery::{Client, Envelope, NextHop, Outcome};
//! # async fn example(plan: &mailgw_plan::Plan, spooled: &mailgw_runtime::spool::Envelope,
//! #                  message: &[u8]) -> Result<(), String> {
//! let client = Client::new(plan)?;
//! // Recipients 0 and 2 of the spooled message go out through connector 0.
//! let envelope = Envelope::from_spool(spooled, &[0, 2]);
//! let hop = NextHop::connector(&plan.connectors[0], "example.net")?;
//! let report = client.deliver(&hop, &envelope, message).await;
//! for (recipient, outcome) in envelope.recipients.iter().zip(&report.outcomes) {
//!     match outcome {
//!         Outcome::Delivered { reply } => println!("{}: {reply}", recipient.address),
//!         Outcome::Deferred(why) => println!("{}: later, {}", recipient.address, why.reason),
//!         Outcome::Failed(why) => println!("{}: bounce {} {}", recipient.address, why.status, why.reason),
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod cache;
mod capabilities;
mod connection;
mod data;
mod envelope;
mod hop;
mod mx;
mod outcome;
mod params;
mod reply;
mod session;
mod tls;
mod transaction;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailgw_plan::{EndpointTls, Plan, TlsPolicy};
use tokio::net::TcpStream;

pub use envelope::{Envelope, Recipient};
pub use hop::{LmtpHop, NextHop, SmtpCredentials, SmtpHop, Target};
pub use mx::Resolver;
pub use outcome::{Failure, Outcome, RemoteMta, Report};
pub use reply::{Reply, Status};

use cache::Cache;
use connection::ConnError;
use session::{Attempt, Peer, Protocol, TlsMode};

/// Time limits of a conversation. The defaults are RFC 5321 4.5.3.2's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP connection (30 s).
    pub connect: Duration,
    /// The greeting (5 min).
    pub greeting: Duration,
    /// The reply to `EHLO`, `STARTTLS`, `AUTH`, `MAIL`, `RCPT` and `QUIT`
    /// (5 min).
    pub command: Duration,
    /// The reply to `DATA` (2 min).
    pub data_init: Duration,
    /// Sending each block of the data (3 min).
    pub data_block: Duration,
    /// The reply after the final dot (10 min).
    pub data_term: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(5 * 60),
            command: Duration::from_secs(5 * 60),
            data_init: Duration::from_secs(2 * 60),
            data_block: Duration::from_secs(3 * 60),
            data_term: Duration::from_secs(10 * 60),
        }
    }
}

/// Delivers messages: the gateway's name, the resolver and the timeouts.
#[derive(Debug, Clone)]
pub struct Client {
    helo: String,
    resolver: Resolver,
    timeouts: Timeouts,
    /// Connections kept between messages, shared by the clones; `None`:
    /// a connection per delivery.
    cache: Option<Arc<Cache>>,
}

impl Client {
    /// A client that says `EHLO` with the gateway's host name and resolves
    /// with the plan's name servers (the system's when it names none).
    pub fn new(plan: &Plan) -> Result<Client, String> {
        Ok(Client::with_parts(
            &plan.gateway.hostname,
            Resolver::new(&plan.dns)?,
            Timeouts::default(),
        )
        .reusing_connections())
    }

    /// The same client, keeping each connection whose transaction ended
    /// cleanly open for up to two seconds for the next message to the same
    /// host (closed with `QUIT` when unused; one the peer closed meanwhile
    /// is replaced by a new connection), as Postfix's connection cache
    /// does. [`Client::new`] does this.
    pub fn reusing_connections(mut self) -> Client {
        self.cache = Some(Arc::default());
        self
    }

    /// A client from its parts.
    pub fn with_parts(helo: &str, resolver: Resolver, timeouts: Timeouts) -> Client {
        Client {
            helo: helo.to_owned(),
            resolver,
            timeouts,
            cache: None,
        }
    }

    /// Delivers `message` (the spooled bytes, header and body, CRLF line
    /// ends expected but not required) for `envelope` to `hop`.
    pub async fn deliver(&self, hop: &NextHop, envelope: &Envelope, message: &[u8]) -> Report {
        let report = self.deliver_inner(hop, envelope, message).await;
        let count = |f: fn(&Outcome) -> bool| report.outcomes.iter().filter(|o| f(o)).count();
        tracing::info!(
            remote = report.remote.as_ref().map(|r| r.name.as_str()),
            delivered = count(|o| matches!(o, Outcome::Delivered { .. })),
            deferred = count(|o| matches!(o, Outcome::Deferred(_))),
            failed = count(|o| matches!(o, Outcome::Failed(_))),
            "delivery"
        );
        report
    }

    async fn deliver_inner(&self, hop: &NextHop, envelope: &Envelope, message: &[u8]) -> Report {
        let all = |outcome: Outcome| Report {
            remote: None,
            outcomes: vec![outcome; envelope.recipients.len()],
            dsn: false,
        };
        if envelope.recipients.is_empty() {
            return all(Outcome::deferred(Status::new(4, 0, 0), "no recipients"));
        }
        let tls_failure = |e: ConnError| Outcome::deferred(Status::new(4, 7, 5), e.to_string());
        match hop {
            NextHop::Smtp(smtp) => {
                let tls = match smtp.tls {
                    TlsPolicy::None => Ok(TlsMode::None),
                    TlsPolicy::Opportunistic => tls::opportunistic().map(TlsMode::Opportunistic),
                    TlsPolicy::Require => tls::verifying(smtp.ca.as_deref()).map(TlsMode::Require),
                };
                let tls = match tls {
                    Ok(tls) => tls,
                    Err(e) => return all(tls_failure(e)),
                };
                let hosts = match &smtp.target {
                    Target::Host { host, port } => Hosts::Named(vec![host.clone()], *port),
                    Target::Mx { domain, port } => {
                        match Box::pin(self.resolver.mail_hosts(domain)).await {
                            Ok((hosts, implicit)) => Hosts::Mx {
                                hosts,
                                port: *port,
                                implicit,
                                domain,
                            },
                            Err(outcome) => return all(outcome),
                        }
                    }
                };
                let peer = Peer {
                    protocol: Protocol::Smtp,
                    host: "",
                    helo: &self.helo,
                    tls,
                    credentials: smtp.credentials.as_ref(),
                    timeouts: &self.timeouts,
                };
                self.try_hosts(hosts, peer, envelope, message).await
            }
            NextHop::Lmtp(lmtp) => {
                let tls = match lmtp.endpoint.tls {
                    EndpointTls::None => Ok(TlsMode::None),
                    EndpointTls::StartTls => {
                        tls::verifying(lmtp.ca.as_deref()).map(TlsMode::Require)
                    }
                    EndpointTls::Implicit => {
                        tls::verifying(lmtp.ca.as_deref()).map(TlsMode::Implicit)
                    }
                };
                let tls = match tls {
                    Ok(tls) => tls,
                    Err(e) => return all(tls_failure(e)),
                };
                let peer = Peer {
                    protocol: Protocol::Lmtp,
                    host: "",
                    helo: &self.helo,
                    tls,
                    credentials: None,
                    timeouts: &self.timeouts,
                };
                let hosts = Hosts::Named(vec![lmtp.host.clone()], lmtp.endpoint.port);
                self.try_hosts(hosts, peer, envelope, message).await
            }
        }
    }

    /// Tries each address of each host until one runs the transaction.
    async fn try_hosts(
        &self,
        hosts: Hosts<'_>,
        template: Peer<'_>,
        envelope: &Envelope,
        message: &[u8],
    ) -> Report {
        let n = envelope.recipients.len();
        let mut remote = None;
        let mut last: Option<Outcome> = None;
        let names = hosts.names();
        for name in names {
            let addrs = match Box::pin(self.addresses(&hosts, name)).await {
                Ok(addrs) => addrs,
                Err(outcome) => {
                    last = Some(outcome);
                    continue;
                }
            };
            if addrs.is_empty() {
                if let Hosts::Mx {
                    implicit: true,
                    domain,
                    ..
                } = &hosts
                {
                    let outcome = Outcome::failed(
                        Status::new(5, 1, 2),
                        format!("{domain} has neither MX nor address records"),
                    );
                    return Report {
                        remote: None,
                        outcomes: vec![outcome; n],
                        dsn: false,
                    };
                }
                last = Some(Outcome::deferred(
                    Status::new(4, 4, 4),
                    format!("mail host {name} has no address"),
                ));
                continue;
            }
            for addr in addrs {
                let peer = template.for_host(name);
                let mut attempt = self.attempt(addr, &peer, envelope, message).await;
                if let Ok(Attempt::PlainRetry(outcome)) = attempt {
                    tracing::info!(host = name, %addr, "opportunistic TLS failed; trying again in clear text");
                    let plain = Peer {
                        tls: TlsMode::None,
                        ..peer.clone()
                    };
                    attempt = match self.attempt(addr, &plain, envelope, message).await {
                        Ok(Attempt::PlainRetry(_)) => Ok(Attempt::NextHost(outcome)),
                        other => other,
                    };
                }
                match attempt {
                    Ok(Attempt::Done(outcomes, dsn)) => {
                        let remote = Some(remote_mta(name, addr));
                        return Report {
                            remote,
                            outcomes,
                            dsn,
                        };
                    }
                    Ok(Attempt::NextHost(outcome) | Attempt::PlainRetry(outcome)) => {
                        remote = Some(remote_mta(name, addr));
                        last = Some(outcome);
                    }
                    Err(outcome) => last = Some(outcome),
                }
            }
        }
        let outcome =
            last.unwrap_or_else(|| Outcome::deferred(Status::new(4, 4, 4), "no mail host to try"));
        Report {
            remote,
            outcomes: vec![outcome; n],
            dsn: false,
        }
    }

    /// Connects to `addr` and runs a session; `Err` when the connection
    /// cannot be made.
    async fn attempt(
        &self,
        addr: SocketAddr,
        peer: &Peer<'_>,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Attempt, Outcome> {
        let host = peer.host;
        let key = cache_key(addr, peer);
        let keep = self.cache.as_ref().map(|cache| (cache, key.as_str()));
        if let Some(idle) = keep.and_then(|(cache, key)| cache.take(key)) {
            if let Some(attempt) = session::reuse(idle, peer, envelope, message, keep).await {
                return Ok(attempt);
            }
        }
        let connect = tokio::time::timeout(self.timeouts.connect, TcpStream::connect(addr));
        let tcp = match Box::pin(connect).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                tracing::info!(host, %addr, error = %e, "cannot connect");
                return Err(Outcome::deferred(
                    Status::new(4, 4, 1),
                    format!("cannot connect to {host} [{addr}]: {e}"),
                ));
            }
            Err(_) => {
                tracing::info!(host, %addr, "connection timed out");
                return Err(Outcome::deferred(
                    Status::new(4, 4, 1),
                    format!("connection to {host} [{addr}] timed out"),
                ));
            }
        };
        tracing::debug!(host, %addr, "connected");
        Ok(Box::pin(session::run(tcp, peer, envelope, message, keep)).await)
    }

    /// The socket addresses of `name`: through the DNS resolver for MX
    /// hosts, through the system (with `/etc/hosts`) for named hosts.
    async fn addresses(&self, hosts: &Hosts<'_>, name: &str) -> Result<Vec<SocketAddr>, Outcome> {
        match hosts {
            Hosts::Named(_, port) => match tokio::net::lookup_host((name, *port)).await {
                Ok(addrs) => Ok(addrs.collect()),
                Err(e) => Err(Outcome::deferred(
                    Status::new(4, 4, 3),
                    format!("cannot resolve {name}: {e}"),
                )),
            },
            Hosts::Mx { port, .. } => match self.resolver.addresses(name).await {
                Ok(ips) => Ok(ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, *port))
                    .collect()),
                Err(reason) => Err(Outcome::deferred(Status::new(4, 4, 3), reason)),
            },
        }
    }
}

/// The `Remote-MTA` for host `name` at `addr`.
fn remote_mta(name: &str, addr: SocketAddr) -> RemoteMta {
    RemoteMta {
        name: name.trim_end_matches('.').to_owned(),
        addr,
    }
}

/// The hosts of a hop.
enum Hosts<'d> {
    /// Named hosts (a smarthost, a backend) resolved by the system.
    Named(Vec<String>, u16),
    /// A domain's mail hosts.
    Mx {
        /// In the order to try.
        hosts: Vec<String>,
        /// TCP port.
        port: u16,
        /// Whether the domain has no MX and is its own mail host.
        implicit: bool,
        /// The domain.
        domain: &'d str,
    },
}

impl Hosts<'_> {
    fn names(&self) -> &[String] {
        match self {
            Hosts::Named(names, _) => names,
            Hosts::Mx { hosts, .. } => hosts,
        }
    }
}

/// What makes a cached connection usable for another message: the same
/// address and name, protocol, TLS policy and login.
fn cache_key(addr: SocketAddr, peer: &Peer<'_>) -> String {
    let tls = match peer.tls {
        TlsMode::None => "none",
        TlsMode::Opportunistic(_) => "opportunistic",
        TlsMode::Require(_) => "require",
        TlsMode::Implicit(_) => "implicit",
    };
    let user = peer.credentials.map_or("", |c| c.user.as_str());
    format!("{:?} {addr} {} {tls} {user}", peer.protocol, peer.host)
}
