//! Copying bytes both ways between a logged-in client and its backend.
//!
//! The proxy no longer reads the protocol: IMAP `IDLE`, large `FETCH`es
//! and POP3 `RETR` pass through as bytes. When either side closes, the
//! other is closed too — never with a command of our own, so a POP3 client
//! that drops the connection without `QUIT` leaves its messages on the
//! backend (RFC 1939 6: no UPDATE state without `QUIT`).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};

/// Size of each direction's buffer.
const BUFFER: usize = 16 * 1024;

/// How a proxied session ended.
#[derive(Debug)]
pub enum Ended {
    /// The client closed the connection.
    ClientClosed,
    /// The backend closed the connection.
    BackendClosed,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// Reading from or writing to the client failed.
    ClientError(io::Error),
    /// Reading from or writing to the backend failed.
    BackendError(io::Error),
}

/// Byte counts of a proxied session.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    /// Octets from the client to the backend.
    pub up: u64,
    /// Octets from the backend to the client.
    pub down: u64,
}

/// Sends `to_backend` and `to_client` first (bytes each side sent before
/// the splice began), then copies until a side closes or `idle` passes
/// with no traffic.
pub async fn splice<C, B>(
    mut client: C,
    mut backend: B,
    to_backend: Vec<u8>,
    to_client: Vec<u8>,
    idle: Duration,
) -> (Ended, Traffic)
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut traffic = Traffic::default();
    if let Err(e) = send(&mut client, &to_client).await {
        return (Ended::ClientError(e), traffic);
    }
    if let Err(e) = send(&mut backend, &to_backend).await {
        return (Ended::BackendError(e), traffic);
    }
    traffic.up = to_backend.len() as u64;
    traffic.down = to_client.len() as u64;
    // Read into spare capacity, never zeroed; each round starts empty.
    let mut up = Vec::with_capacity(BUFFER);
    let mut down = Vec::with_capacity(BUFFER);
    // One timer for the session, moved only when it fires: a round of
    // traffic just notes the time.
    let mut last = Instant::now();
    let timer = sleep_until(last + idle);
    tokio::pin!(timer);
    let ended = loop {
        up.clear();
        down.clear();
        tokio::select! {
            read = client.read_buf(&mut up) => match read {
                Ok(0) => break Ended::ClientClosed,
                Ok(n) => {
                    if let Err(e) = send(&mut backend, &up).await {
                        break Ended::BackendError(e);
                    }
                    traffic.up += n as u64;
                }
                Err(e) => break Ended::ClientError(e),
            },
            read = backend.read_buf(&mut down) => match read {
                Ok(0) => break Ended::BackendClosed,
                Ok(n) => {
                    if let Err(e) = send(&mut client, &down).await {
                        break Ended::ClientError(e);
                    }
                    traffic.down += n as u64;
                }
                Err(e) => break Ended::BackendError(e),
            },
            () = &mut timer => {
                let until = last + idle;
                if until <= Instant::now() {
                    break Ended::Idle;
                }
                timer.as_mut().reset(until);
                continue;
            }
        }
        last = Instant::now();
    };
    // Best effort: a side that is gone cannot be told more.
    let close = async {
        let _ = client.shutdown().await;
        let _ = backend.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
    (ended, traffic)
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    stream.write_all(bytes).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn copies_both_ways_and_stops_at_a_close() {
        let (client_side, mut client) = tokio::io::duplex(64);
        let (backend_side, mut backend) = tokio::io::duplex(64);
        let task = tokio::spawn(splice(
            client_side,
            backend_side,
            b"pending ".to_vec(),
            b"welcome ".to_vec(),
            Duration::from_secs(60),
        ));
        client.write_all(b"up").await.expect("write");
        backend.write_all(b"down").await.expect("write");
        let mut got = [0u8; 10];
        backend.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"pending up");
        let mut got = [0u8; 12];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"welcome down");
        drop(client);
        let (ended, traffic) = task.await.expect("join");
        assert!(matches!(ended, Ended::ClientClosed), "{ended:?}");
        assert_eq!((traffic.up, traffic.down), (10, 12));
        // The backend sees the close, and nothing else.
        let mut rest = Vec::new();
        backend.read_to_end(&mut rest).await.expect("read");
        assert!(rest.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_puts_the_idle_timeout_off() {
        let (client_side, mut client) = tokio::io::duplex(64);
        let (backend_side, mut backend) = tokio::io::duplex(64);
        let start = Instant::now();
        let task = tokio::spawn(splice(
            client_side,
            backend_side,
            Vec::new(),
            Vec::new(),
            Duration::from_secs(30),
        ));
        tokio::time::sleep(Duration::from_secs(20)).await;
        client.write_all(b"x").await.expect("write");
        let mut got = [0u8; 1];
        backend.read_exact(&mut got).await.expect("read");
        // Idle from 20 s on: the session ends 30 s later, not at 30 s.
        let (ended, _) = task.await.expect("join");
        assert!(matches!(ended, Ended::Idle), "{ended:?}");
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(50), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(51), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_end() {
        let (client_side, _client) = tokio::io::duplex(64);
        let (backend_side, _backend) = tokio::io::duplex(64);
        let (ended, _) = splice(
            client_side,
            backend_side,
            Vec::new(),
            Vec::new(),
            Duration::from_secs(30),
        )
        .await;
        assert!(matches!(ended, Ended::Idle), "{ended:?}");
    }
}
