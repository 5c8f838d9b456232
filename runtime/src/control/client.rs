//! The client side of the control channel, for `mailgw queue`: blocking,
//! one request at a time.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::queue::admin::{Answer, Command};

/// How long the client waits for an answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to a running gateway's control socket.
pub struct Client {
    /// The socket's path, for errors.
    socket: PathBuf,
    /// The socket, read through a buffer.
    reader: BufReader<UnixStream>,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens on the socket: no gateway runs on this spool.
    NotRunning {
        /// The socket's path.
        socket: PathBuf,
        /// Why the connection failed.
        source: io::Error,
    },
    /// The connection failed or broke (permission denied, timeout).
    Io {
        /// The socket's path.
        socket: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The gateway closed the connection before answering.
    Closed,
    /// The gateway's answer is not an [`Answer`].
    Malformed(serde_json::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotRunning { socket, source } => {
                write!(f, "cannot connect to {}: {source}", socket.display())
            }
            ClientError::Io { socket, source } => write!(f, "{}: {source}", socket.display()),
            ClientError::Closed => {
                f.write_str("the gateway closed the connection without answering")
            }
            ClientError::Malformed(e) => write!(f, "the gateway's answer is malformed: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::NotRunning { source, .. } | ClientError::Io { source, .. } => Some(source),
            ClientError::Closed => None,
            ClientError::Malformed(e) => Some(e),
        }
    }
}

impl Client {
    /// Connects to the control socket at `socket`.
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                socket: socket.to_owned(),
                source,
            },
            _ => ClientError::Io {
                socket: socket.to_owned(),
                source,
            },
        })?;
        let io = |source| ClientError::Io {
            socket: socket.to_owned(),
            source,
        };
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
        Ok(Client {
            socket: socket.to_owned(),
            reader: BufReader::new(stream),
        })
    }

    /// Sends `command` and waits for its answer.
    pub fn request(&mut self, command: &Command) -> Result<Answer, ClientError> {
        let mut line = serde_json::to_vec(command).map_err(ClientError::Malformed)?;
        line.push(b'\n');
        // A gateway that refuses the connection answers and closes at once,
        // perhaps before this write: its answer is read all the same.
        let written = self.reader.get_mut().write_all(&line);
        let mut answer = Vec::new();
        match (self.reader.read_until(b'\n', &mut answer), written) {
            (Ok(n), _) if n > 0 => serde_json::from_slice(&answer).map_err(ClientError::Malformed),
            (Ok(_), Ok(())) => Err(ClientError::Closed),
            (Ok(_), Err(source)) | (Err(_), Err(source)) | (Err(source), Ok(())) => {
                Err(ClientError::Io {
                    socket: self.socket.clone(),
                    source,
                })
            }
        }
    }
}
