//! The control channel: a Unix socket in the spool directory through which
//! `mailgw queue` asks the running gateway's queue manager.
//!
//! The gateway is the only writer of its spool; the admin never touches the
//! spool files. Every admin command becomes a [`Request`] on an mpsc channel
//! whose other end is the queue manager, and the manager's
//! [`Answer`](crate::queue::admin::Answer) goes back over the socket.
//!
//! # Protocol
//!
//! JSON lines both ways: the client writes one
//! [`Command`](crate::queue::admin::Command) per line
//! (`{"command":"show","id":"..."}`), the server writes one answer per
//! line (`{"answer":"messages","messages":[...]}`), in order. A connection
//! may carry any number of requests. Blank lines are ignored.
//!
//! - A line that is not a command is answered
//!   `{"answer":"error","message":"..."}`; the connection stays open.
//! - A line longer than [`MAX_LINE`] bytes is answered with an error and the
//!   connection is closed.
//! - A connection silent for [`IDLE_TIMEOUT`], or that does not take an
//!   answer within it, is closed.
//! - Only the uid the gateway runs as may connect (the socket is mode 0600,
//!   and the peer's credentials are checked): anyone else gets an error
//!   answer and the connection is closed.
//! - At most [`MAX_CONNECTIONS`] connections are served at once; more wait
//!   to be accepted.
//!
//! # Files
//!
//! The socket is [`socket_path`]: `<spool>/control.sock`. [`Control::bind`]
//! replaces a stale socket file (one nobody answers on) and refuses when a
//! live gateway answers on it; the socket file is removed when the
//! [`Control`] is dropped (after [`Control::run`] returns, or when its task
//! is cancelled).
//!
//! The client side is [`client`].

pub mod client;
mod connection;
mod line;
mod socket;

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::queue::admin::Request;
use connection::Connection;
use socket::SocketFile;

/// The socket's file name in the spool directory.
pub const SOCKET_NAME: &str = "control.sock";

/// The longest request line, in bytes (without its newline).
pub const MAX_LINE: usize = 64 * 1024;

/// How long a connection may stay silent between requests, and how long
/// writing an answer may take.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// Where the control socket of the spool at `spool` is.
pub fn socket_path(spool: &Path) -> PathBuf {
    spool.join(SOCKET_NAME)
}

/// A bound control socket, ready to [`run`](Control::run).
///
/// Binding is separate from running so that the gateway can refuse to start
/// when the socket cannot be made, before it announces itself ready.
pub struct Control {
    /// The listening socket.
    listener: UnixListener,
    /// The socket file; removed on drop.
    file: SocketFile,
    /// The uid allowed to connect: the gateway's own.
    owner: u32,
}

impl Control {
    /// Binds the control socket at `path` with mode 0600.
    ///
    /// An existing socket file nobody answers on (left by a gateway that
    /// crashed) is removed first. Fails with [`io::ErrorKind::AddrInUse`]
    /// when something answers on it (another gateway on the same spool),
    /// and with [`io::ErrorKind::AlreadyExists`] when `path` is not a
    /// socket (it is then left alone).
    pub async fn bind(path: &Path) -> io::Result<Control> {
        let (listener, file) = socket::bind(path).await?;
        Ok(Control {
            listener,
            file,
            owner: rustix::process::geteuid().as_raw(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Serves connections until `shutdown` completes, sending each command
    /// to `requests` (the queue manager) and its answer back to the client.
    ///
    /// At shutdown it stops accepting, drops the connections (a request
    /// already with the manager is still carried out; its answer is lost)
    /// and removes the socket file. When the manager's end of `requests` is
    /// closed, clients get an error answer.
    pub async fn run(self, requests: mpsc::Sender<Request>, shutdown: impl Future<Output = ()>) {
        tracing::info!(socket = %self.path().display(), "control socket listening");
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = accept(&self.listener, &permits) => {
                    let Some((stream, permit)) = accepted else { break };
                    let connection = Connection {
                        stream,
                        owner: self.owner,
                        requests: requests.clone(),
                    };
                    connections.spawn(async move {
                        connection.run().await;
                        drop(permit);
                    });
                }
                // Reap finished connections so the set stays small.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
        tracing::info!(socket = %self.path().display(), "control socket closed");
    }
}

/// Binds the control socket at `path` and serves it until `shutdown`:
/// [`Control::bind`] then [`Control::run`]. Errors are those of the bind.
pub async fn serve(
    path: &Path,
    requests: mpsc::Sender<Request>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Control::bind(path).await?.run(requests, shutdown).await;
    Ok(())
}

/// Takes a connection permit, then accepts. Accept errors (out of file
/// descriptors) are logged and retried after a pause; `None` only when the
/// semaphore is closed, which it never is.
async fn accept(
    listener: &UnixListener,
    permits: &Arc<Semaphore>,
) -> Option<(tokio::net::UnixStream, tokio::sync::OwnedSemaphorePermit)> {
    let permit = Arc::clone(permits).acquire_owned().await.ok()?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return Some((stream, permit)),
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
