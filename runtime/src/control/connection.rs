//! One admin connection: who it is, then request lines until it ends.

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::line::{read_line, Read};
use super::{IDLE_TIMEOUT, MAX_LINE};
use crate::queue::admin::{Answer, Command, Request};

/// An accepted connection and what it needs to be served.
pub(super) struct Connection {
    /// The client.
    pub(super) stream: UnixStream,
    /// The only uid served.
    pub(super) owner: u32,
    /// The queue manager.
    pub(super) requests: mpsc::Sender<Request>,
}

/// What to do after a line.
enum Next {
    /// Read the next request.
    Continue,
    /// Close the connection.
    Close,
}

impl Connection {
    /// Serves the connection to its end. Errors end it; they are the
    /// client's (it went away) and logged at debug.
    pub(super) async fn run(self) {
        let Connection {
            stream,
            owner,
            requests,
        } = self;
        let uid = match stream.peer_cred() {
            Ok(cred) => cred.uid(),
            Err(e) => {
                tracing::warn!(error = %e, "control socket: cannot read the peer's credentials");
                return;
            }
        };
        let (read, mut write) = stream.into_split();
        if uid != owner {
            tracing::warn!(uid, owner, "control socket: connection refused");
            let answer = error(format!(
                "permission denied: only uid {owner} may use the control socket"
            ));
            let _ = send(&mut write, &answer).await;
            return;
        }
        let mut reader = BufReader::new(read);
        let mut line = Vec::new();
        loop {
            let read =
                tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader, &mut line, MAX_LINE));
            let next = match read.await {
                Err(_) => {
                    tracing::debug!(uid, "control socket: idle connection closed");
                    Next::Close
                }
                Ok(Err(e)) => {
                    tracing::debug!(uid, error = %e, "control socket: read failed");
                    Next::Close
                }
                Ok(Ok(Read::Eof)) => Next::Close,
                Ok(Ok(Read::TooLong)) => {
                    tracing::warn!(uid, max = MAX_LINE, "control socket: request line too long");
                    let answer = error(format!(
                        "request line longer than {MAX_LINE} bytes; closing the connection"
                    ));
                    let _ = send(&mut write, &answer).await;
                    Next::Close
                }
                Ok(Ok(Read::Line)) if line.trim_ascii().is_empty() => Next::Continue,
                Ok(Ok(Read::Line)) => {
                    let answer = answer(&requests, uid, &line).await;
                    match send(&mut write, &answer).await {
                        Ok(()) => Next::Continue,
                        Err(e) => {
                            tracing::debug!(uid, error = %e, "control socket: write failed");
                            Next::Close
                        }
                    }
                }
            };
            if let Next::Close = next {
                return;
            }
        }
    }
}

/// The answer to one request line.
async fn answer(requests: &mpsc::Sender<Request>, uid: u32, line: &[u8]) -> Answer {
    let command = match serde_json::from_slice::<Command>(line) {
        Ok(c) => normalize(c),
        Err(e) => return error(format!("malformed request: {e}")),
    };
    let (name, argument) = describe(&command);
    tracing::info!(uid, command = name, argument, "admin command");
    let (reply, answer) = oneshot::channel();
    if requests.send(Request { command, reply }).await.is_err() {
        return error("the queue manager is not running".into());
    }
    answer
        .await
        .unwrap_or_else(|_| error("the queue manager did not answer".into()))
}

/// The domain of `flush` in lowercase, as the manager expects it.
fn normalize(command: Command) -> Command {
    match command {
        Command::Flush { domain } => Command::Flush {
            domain: domain.to_ascii_lowercase(),
        },
        other => other,
    }
}

/// A command's name and argument, for the log.
fn describe(command: &Command) -> (&'static str, &str) {
    match command {
        Command::List => ("list", ""),
        Command::Show { id } => ("show", id),
        Command::Retry { id: Some(id) } => ("retry", id),
        Command::Retry { id: None } => ("retry", "all"),
        Command::Delete { id } => ("delete", id),
        Command::Hold { id } => ("hold", id),
        Command::Release { id } => ("release", id),
        Command::Flush { domain } => ("flush", domain),
    }
}

fn error(message: String) -> Answer {
    Answer::Error { message }
}

/// Writes `answer` as one JSON line; a client that does not take it within
/// [`IDLE_TIMEOUT`] is given up.
async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    answer: &Answer,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    tokio::time::timeout(IDLE_TIMEOUT, write.write_all(&bytes))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}
