//! Verifying logins: the answer to [`crate::smtp::Step::Authenticate`].
//!
//! The [`Authenticator`] holds the plan and a per-client count of failed
//! attempts. It checks a user name and password the way the plan's
//! [`mailgw_plan::Verify`] says and answers with a [`Verdict`].

mod authenticator;

pub use authenticator::{Authenticator, Verdict};
