//! Messages the gateway writes or rewrites: delivery status notifications
//! ([`dsn`]), envelope journal reports ([`journal`]) and MIME-aware
//! disclaimers ([`disclaimer`]).
//!
//! Everything here is I/O-free: bytes in, bytes out. The queue manager
//! decides when to build what and does the spooling. Output has CRLF line
//! ends and no line over 998 octets, except inside an original message that
//! is carried along unchanged.

pub mod disclaimer;
pub mod dsn;
mod encoding;
mod header;
pub mod journal;
mod mime;

pub use header::headers_of;
