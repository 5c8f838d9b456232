//! Messages the gateway writes or changes, I/O-free (bytes in, bytes out):
//! delivery status notifications, journal reports and disclaimers.

pub mod disclaimer;
pub mod dsn;
pub mod journal;
mod mime;
