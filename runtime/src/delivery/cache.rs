//! Delivery connections kept open between messages to the same host, as
//! Postfix's connection cache does: a connection whose transaction ended
//! cleanly waits here up to [`MAX_IDLE`] for the next message to the same
//! host (same address, name, protocol, TLS policy and login). The next
//! transaction starts on it at once, with no `RSET` round trip: a peer that
//! closed it meanwhile shows at the first command, before anything of the
//! message was sent, and the message goes over a new connection
//! (`transaction::on_reused`). Idle connections are closed with `QUIT` by a
//! sweeper that runs while the cache holds any.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::capabilities::Capabilities;
use super::connection::Connection;
use super::session::Channel;

/// How long a connection may wait for its next message.
pub(crate) const MAX_IDLE: Duration = Duration::from_secs(2);

/// Connections kept per host: enough for a host's concurrency.
const MAX_PER_KEY: usize = 64;

/// A stream of any kind (TCP, TLS over TCP).
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A connection waiting for its next message.
pub(crate) struct Idle {
    /// The session, after a complete transaction.
    pub(crate) conn: Connection<Box<dyn Stream>>,
    /// What the host offered after the last `EHLO`.
    pub(crate) caps: Capabilities,
    /// Whether it is encrypted.
    pub(crate) channel: Channel,
    since: Instant,
}

impl Idle {
    /// A connection to keep.
    pub(crate) fn new(
        conn: Connection<Box<dyn Stream>>,
        caps: Capabilities,
        channel: Channel,
    ) -> Idle {
        Idle {
            conn,
            caps,
            channel,
            since: Instant::now(),
        }
    }
}

/// The idle connections, by host key.
#[derive(Default)]
pub(crate) struct Cache {
    idle: Mutex<BTreeMap<String, Vec<Idle>>>,
    sweeping: AtomicBool,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count: usize = self.lock().values().map(Vec::len).sum();
        f.debug_struct("Cache").field("idle", &count).finish()
    }
}

impl Cache {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<Idle>>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently used connection for `key` that has not waited too
    /// long.
    pub(crate) fn take(&self, key: &str) -> Option<Idle> {
        let mut idle = self.lock();
        let list = idle.get_mut(key)?;
        let fresh = list.pop().filter(|i| i.since.elapsed() < MAX_IDLE);
        if list.is_empty() {
            idle.remove(key);
        }
        fresh
    }

    /// Keeps `conn` for the next message to `key`; starts the sweeper when
    /// none runs.
    pub(crate) fn put(self: &Arc<Self>, key: &str, conn: Idle) {
        {
            let mut idle = self.lock();
            let list = idle.entry(key.to_owned()).or_default();
            if list.len() >= MAX_PER_KEY {
                return;
            }
            list.push(conn);
        }
        if !self.sweeping.swap(true, Ordering::AcqRel) {
            let cache = Arc::clone(self);
            tokio::spawn(async move { cache.sweep().await });
        }
    }

    /// Closes connections that waited too long, until none is left.
    async fn sweep(self: Arc<Self>) {
        loop {
            tokio::time::sleep(MAX_IDLE / 2).await;
            let stale: Vec<Idle> = {
                let mut idle = self.lock();
                let mut stale = Vec::new();
                for list in idle.values_mut() {
                    let (old, keep): (Vec<Idle>, Vec<Idle>) =
                        list.drain(..).partition(|i| i.since.elapsed() >= MAX_IDLE);
                    *list = keep;
                    stale.extend(old);
                }
                idle.retain(|_, list| !list.is_empty());
                if idle.is_empty() {
                    self.sweeping.store(false, Ordering::Release);
                }
                stale
            };
            for mut old in stale {
                let limit = Duration::from_secs(1);
                if old
                    .conn
                    .send(b"QUIT\r\n", limit, "sending QUIT")
                    .await
                    .is_ok()
                {
                    let _ = old.conn.reply(limit, "after QUIT").await;
                }
            }
            if !self.sweeping.load(Ordering::Acquire) {
                return;
            }
        }
    }
}
