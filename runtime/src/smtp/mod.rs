//! The SMTP server side as an I/O-free state machine.
//!
//! Peer bytes are hostile: nothing here panics on input, every buffer is
//! bounded (a command line, the size limit for a message) and every limit
//! maps to a reply. The I/O layer reads and writes, runs TLS, verifies
//! passwords and spools messages; the [`Session`] decides everything else.
//!
//! - [`line`]: the input buffer and CRLF-only command lines;
//! - [`command`]: one command line to a typed [`Command`];
//! - [`data`]: the `DATA` decoder and the content checks (size, bare CR/LF,
//!   NUL, line length, hop count);
//! - [`auth`]: base64 and the SASL `PLAIN` and `LOGIN` responses;
//! - [`envelope`]: what the spool stores, and the `Received:` header;
//! - [`session`]: the state machine the I/O layer drives.

pub mod auth;
pub mod command;
pub mod data;
pub mod envelope;
pub mod line;
pub mod reply;
pub mod session;

pub use auth::{Credentials, Password};
pub use command::{Body, Command, Mechanism, Notify, Orcpt, Ret, Utf8};
pub use envelope::{Disposition, Envelope, RecipientEntry, TlsState};
pub use reply::{Enhanced, Reply};
pub use session::{AuthOutcome, Delivery, Session, SessionConfig, SpoolResult, Step, Waiting};
