//! Verifying logins: the answer to [`crate::smtp::Step::Authenticate`].
//!
//! The [`Authenticator`] holds the plan and a per-client count of failed
//! attempts, and checks a user name (mailbox name or any of its addresses)
//! and password the way the plan's [`mailgw_plan::Verify`] says:
//!
//! - `Directory`: against the mailbox's stored hash (`hash`: argon2id and
//!   argon2i PHC strings, SHA512-CRYPT and SHA256-CRYPT, bcrypt; bare or with
//!   Dovecot's `{SCHEME}` prefix), on a blocking thread. Unknown users,
//!   missing hashes and unknown schemes cost one argon2 check, like a real
//!   login, so timing does not reveal who exists.
//! - `BackendImap`: by logging in to the mailbox's backend (`imap`), the
//!   credentials sent as IMAP literals; no answer within 10 s is
//!   [`Verdict::Unavailable`].
//!
//! Passwords are never logged; each attempt logs user, client and outcome.
//! Failed attempts ([`Verdict::Rejected`], not `Unavailable`) count against
//! the client for 15 minutes; a success clears its count.
//!
//! Known limits: with `BackendImap` an unknown user is rejected without a
//! round trip to any backend, so timing can tell such users apart; and
//! passwords are plain `String`s, not wiped from memory after use.

mod authenticator;
mod failures;
mod hash;
mod imap;

pub use authenticator::{Authenticator, Verdict};
