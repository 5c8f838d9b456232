//! The mailgw runtime: it loads a plan and executes it.
//!
//! The runtime never sees configuration source text, only the plan. Its
//! protocol cores are I/O-free state machines ([`smtp`], the pre-login
//! sessions of the [`proxy`]); durable state lives in the [`spool`]; the
//! [`delivery`] clients take mail out over SMTP and LMTP; the admin reaches
//! the queue through the [`control`] socket.

pub mod auth;
pub mod control;
pub mod delivery;
pub mod message;
pub mod proxy;
pub mod queue;
pub mod server;
pub mod smtp;
pub mod spool;
pub mod tls;
