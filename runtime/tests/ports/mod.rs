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

/// The first port of the range handed out.
const FIRST: u32 = 20_000;

/// How many ports the range holds (it ends below 32768, where Linux's
/// default ephemeral range starts).
const SPAN: u32 = 12_000;

/// How many ports were handed out (or skipped) by this process; `u32::MAX`
/// until the first call picks a starting point.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A TCP port on 127.0.0.1 that is free now and that no other caller in
/// this process gets.
pub fn free_port() -> u16 {
    // Test binaries run one after another; starting each at a point of its
    // own keeps a port a previous binary left in TIME_WAIT out of the way.
    let start = std::process::id().wrapping_mul(7_919) % SPAN;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(FIRST + n % SPAN).expect("the range fits in a port number");
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}
