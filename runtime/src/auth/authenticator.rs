//! The [`Authenticator`]: one per process, shared by every session.

use std::net::IpAddr;
use std::sync::Arc;

use mailgw_plan::Plan;

/// The answer to a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right for this mailbox (an index into
    /// [`Plan::mailboxes`]).
    Accepted {
        /// Index into [`Plan::mailboxes`].
        mailbox: u32,
    },
    /// Unknown user or wrong password; the two are never told apart.
    Rejected,
    /// No decision could be made (backend down, timeout): `454 4.7.0`.
    Unavailable,
}

/// Checks logins against the plan and counts failures per client.
#[derive(Debug)]
pub struct Authenticator {
    /// The plan: mailboxes, backends and the verification method.
    plan: Arc<Plan>,
}

impl Authenticator {
    /// An authenticator for `plan`.
    pub fn new(plan: Arc<Plan>) -> Authenticator {
        Authenticator { plan }
    }

    /// Checks a login. `username` may be the mailbox name or any of its
    /// addresses.
    pub async fn verify(&self, username: &str, password: &str, client: IpAddr) -> Verdict {
        let _ = (username, password, client, &self.plan);
        Verdict::Unavailable
    }

    /// Failed attempts recorded for this client in the current window (for
    /// the session's per-client limit).
    pub fn failures(&self, client: IpAddr) -> u32 {
        let _ = client;
        0
    }
}
