//! The queue manager: takes spooled messages to their next hops, retries,
//! and reports what became of them.

pub mod admin;
