//! The mailgw runtime: it loads a plan and executes it.
//!
//! The runtime never sees configuration source text, only the plan. Its
//! protocol cores are I/O-free state machines ([`smtp`]); durable state lives
//! in the [`spool`].

pub mod auth;
pub mod delivery;
pub mod server;
pub mod smtp;
pub mod spool;
pub mod tls;
