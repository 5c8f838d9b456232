//! One connection to a next hop: bounded reply reading and writes, each
//! under its own timeout.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::reply::{Reply, ReplyParser};

/// Longest reply line read from a peer.
const MAX_LINE: usize = 8192;
/// Room made in the buffer for each read.
const READ_CHUNK: usize = 4096;

/// Why a connection cannot go on.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// Connecting, reading or writing failed, or the peer closed.
    Io(io::Error),
    /// The peer did not answer, or did not take the bytes, in time.
    Timeout(&'static str),
    /// The peer's bytes are not SMTP.
    Protocol(String),
    /// TLS could not be set up or the certificate is not trusted.
    Tls(String),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "{e}"),
            ConnError::Timeout(stage) => write!(f, "timed out {stage}"),
            ConnError::Protocol(e) => write!(f, "protocol error: {e}"),
            ConnError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> ConnError {
        ConnError::Io(e)
    }
}

/// A stream to the peer and the bytes read from it but not yet used.
pub(crate) struct Connection<S> {
    stream: S,
    buf: Vec<u8>,
    /// The peer's name, for log lines.
    host: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a connected stream.
    pub(crate) fn new(stream: S, host: &str) -> Connection<S> {
        Connection {
            stream,
            buf: Vec::new(),
            host: host.to_owned(),
        }
    }

    /// The same connection over a boxed stream (for the cache).
    pub(crate) fn boxed(self) -> Connection<Box<dyn super::cache::Stream>>
    where
        S: Send + 'static,
    {
        Connection {
            stream: Box::new(self.stream),
            buf: self.buf,
            host: self.host,
        }
    }

    /// The stream for a TLS handshake. Whatever the peer sent after its
    /// `220` to `STARTTLS` came in clear text and is dropped unread.
    pub(crate) fn into_inner(self) -> S {
        if !self.buf.is_empty() {
            tracing::warn!(
                host = %self.host,
                bytes = self.buf.len(),
                "discarding clear-text bytes sent before the TLS handshake"
            );
        }
        self.stream
    }

    /// Writes `bytes` and flushes, within `limit`.
    pub(crate) async fn send(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        stage: &'static str,
    ) -> Result<(), ConnError> {
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ConnError::Timeout(stage)),
        }
    }

    /// Reads one complete reply; the whole reply must come within `limit`.
    pub(crate) async fn reply(
        &mut self,
        limit: Duration,
        stage: &'static str,
    ) -> Result<Reply, ConnError> {
        let reply = match tokio::time::timeout(limit, self.read_reply()).await {
            Ok(reply) => reply?,
            Err(_) => return Err(ConnError::Timeout(stage)),
        };
        tracing::debug!(host = %self.host, stage, code = reply.code, "reply");
        Ok(reply)
    }

    async fn read_reply(&mut self) -> Result<Reply, ConnError> {
        let mut parser = ReplyParser::default();
        loop {
            let line = self.line().await?;
            if let Some(reply) = parser.line(&line).map_err(|e| ConnError::Protocol(e.0))? {
                return Ok(reply);
            }
        }
    }

    /// One line without its CRLF (or bare LF).
    async fn line(&mut self) -> Result<Vec<u8>, ConnError> {
        let mut searched = 0;
        loop {
            if let Some(end) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + end;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            searched = self.buf.len();
            if self.buf.len() > MAX_LINE {
                return Err(ConnError::Protocol(format!(
                    "reply line longer than {MAX_LINE} bytes"
                )));
            }
            // Straight into the buffer's spare room: nothing zeroed, and no
            // read buffer held in the future across the wait.
            self.buf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(ConnError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the peer",
                )));
            }
        }
    }
}

#[cfg(test)]
impl Connection<Box<dyn super::cache::Stream>> {
    /// Where the boxed stream lives: a test checks that a kept connection is
    /// not wrapped again on its way back to the cache.
    pub(crate) fn stream_address(&self) -> *const () {
        std::ptr::from_ref::<dyn super::cache::Stream>(&*self.stream).cast()
    }
}
