//! Loopback ports for the peers and gateways the tests start.
//!
//! A port bound to port 0 comes from the kernel's ephemeral range, the
//! same range outgoing connections take their local ports from: between
//! the moment a test releases such a port and the moment the gateway
//! binds it, a client connection of a test running alongside may take it
//! ("Address already in use"). The ports handed out here lie below that
//! range, are never handed out twice by one test process, and are checked
//! free before they are returned.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The first port of the range handed out.
const FIRST: u32 = 20_000;

/// Where the range ends when the kernel does not say where its ephemeral
/// range starts (Linux's default start).
const DEFAULT_EPHEMERAL_START: u32 = 32_768;

/// The fewest ports the range holds, even on a host whose ephemeral range
/// starts lower (its ports may then collide again, rarely).
const MIN_SPAN: u32 = 2_000;

/// How many ports were handed out (or skipped) by this process; `u32::MAX`
/// until the first call picks a starting point.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// The first port of the kernel's ephemeral range.
pub fn ephemeral_start() -> u32 {
    static START: OnceLock<u32> = OnceLock::new();
    *START.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(DEFAULT_EPHEMERAL_START)
    })
}

/// A TCP port on 127.0.0.1 that is free now and that no other caller in
/// this process gets.
pub fn free_port() -> u16 {
    let span = ephemeral_start().saturating_sub(FIRST).max(MIN_SPAN);
    // Test binaries run one after another; starting each at a point of its
    // own keeps a port a previous binary left in TIME_WAIT out of the way.
    let start = std::process::id().wrapping_mul(7_919) % span;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(FIRST + n % span).expect("the range fits in a port number");
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + span)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ports_are_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        if ephemeral_start() >= FIRST + MIN_SPAN {
            for port in &ports {
                assert!(
                    u32::from(*port) >= FIRST && u32::from(*port) < ephemeral_start(),
                    "port {port} is outside {FIRST}..{}",
                    ephemeral_start()
                );
            }
        }
    }
}
