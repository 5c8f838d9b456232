//! The [`Authenticator`]: one per process, shared by every session.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mailgw_plan::{normalize_address, Plan, Target, Verify};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::failures::FailureTable;
use super::hash::{self, Check};
use super::imap::{self, Login};

/// The answer to a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right for this mailbox.
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
    /// Mailbox names to indexes, for logins by name.
    names: HashMap<String, u32>,
    /// Failed logins per client.
    failures: Mutex<FailureTable>,
    /// Mailboxes whose stored hashes (in a known scheme) stand in for the
    /// hash an unknown user lacks (at most [`Self::DECOYS`], spread over
    /// the directory), so that a login for nobody costs what a real user's
    /// does.
    decoys: Vec<u32>,
    /// Permits for concurrent hash checks: an argon2 check takes its
    /// memory cost (19 MiB for the quickstart's hashes), so a burst of
    /// logins must not run one per blocking thread.
    hashing: Semaphore,
}

impl Authenticator {
    /// How long a failed login counts against its client.
    pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
    /// Most clients whose failures are remembered; the oldest go first.
    pub const MAX_TRACKED_CLIENTS: usize = 65_536;
    /// Most mailboxes kept as decoys.
    const DECOYS: usize = 64;

    /// An authenticator for `plan`.
    pub fn new(plan: Arc<Plan>) -> Authenticator {
        let mut names = HashMap::with_capacity(plan.mailboxes.len());
        let mut hashed = Vec::new();
        for (index, mailbox) in plan.mailboxes.iter().enumerate() {
            if let Ok(index) = u32::try_from(index) {
                names.entry(mailbox.name.to_owned()).or_insert(index);
                if mailbox.password_hash.is_some_and(hash::is_supported) {
                    hashed.push(index);
                }
            }
        }
        let step = hashed.len().div_ceil(Self::DECOYS).max(1);
        let decoys = hashed.into_iter().step_by(step).collect();
        Authenticator {
            plan,
            names,
            decoys,
            failures: Mutex::new(FailureTable::new(
                Self::FAILURE_WINDOW,
                Self::MAX_TRACKED_CLIENTS,
            )),
            hashing: Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()) * 2,
            ),
        }
    }

    /// Checks a login. `username` may be the mailbox name or any of its
    /// addresses.
    pub async fn verify(&self, username: &str, password: &str, client: IpAddr) -> Verdict {
        let mailbox = self.mailbox(username);
        let verdict = match self.plan.auth.verify {
            Verify::Directory => self.verify_directory(username, mailbox, password).await,
            Verify::BackendImap => self.verify_imap(mailbox, password, client).await,
        };
        let outcome = match verdict {
            Verdict::Accepted { .. } => {
                self.table().clear(client);
                "accepted"
            }
            Verdict::Rejected => {
                self.table().record(client, Instant::now());
                "rejected"
            }
            Verdict::Unavailable => "unavailable",
        };
        // Debug formatting escapes control characters: the name is the
        // client's and must not forge log lines.
        info!(user = ?username, %client, outcome, "login");
        verdict
    }

    /// Failed attempts recorded for this client in the current window (for
    /// the session's per-client limit).
    pub fn failures(&self, client: IpAddr) -> u32 {
        self.table().count(client, Instant::now())
    }

    /// The failure table; a panic elsewhere while holding the lock leaves
    /// counts that are still usable.
    fn table(&self) -> std::sync::MutexGuard<'_, FailureTable> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the outcome of a login checked elsewhere (by the proxy's own
    /// backend login): a failure counts against the client, a success
    /// clears its count.
    pub fn record(&self, client: IpAddr, accepted: bool) {
        if accepted {
            self.table().clear(client);
        } else {
            self.table().record(client, Instant::now());
        }
    }

    /// The mailbox `username` names: a mailbox name, or an address of one
    /// (index into [`Plan::mailboxes`]).
    pub fn mailbox(&self, username: &str) -> Option<u32> {
        if let Some(&index) = self.names.get(username) {
            return Some(index);
        }
        if !username.contains('@') {
            return None;
        }
        match self.plan.recipients.lookup(&normalize_address(username))? {
            Target::Mailbox(index) => Some(index),
            Target::Group(_) => None,
        }
    }

    /// Checks the password against the mailbox's stored hash. Every way to
    /// fail costs one argon2 check at least, so timing does not tell which
    /// users exist.
    async fn verify_directory(
        &self,
        username: &str,
        mailbox: Option<u32>,
        password: &str,
    ) -> Verdict {
        let stored = mailbox.and_then(|index| Some((index, self.stored_hash(index)?.to_owned())));
        let decoy = self.decoy(username).map(str::to_owned);
        let Ok(_permit) = self.hashing.acquire().await else {
            return Verdict::Unavailable;
        };
        let password = password.to_owned();
        let task = tokio::task::spawn_blocking(move || match stored {
            Some((index, stored)) => match hash::check(&stored, &password) {
                Check::Match => Verdict::Accepted { mailbox: index },
                Check::Mismatch => Verdict::Rejected,
                Check::Unsupported => {
                    warn!(mailbox = index, "password hash in an unknown scheme");
                    hash::spend(decoy.as_deref(), &password);
                    Verdict::Rejected
                }
            },
            None => {
                hash::spend(decoy.as_deref(), &password);
                Verdict::Rejected
            }
        });
        task.await.unwrap_or(Verdict::Unavailable)
    }

    /// The stored password hash of mailbox `index`.
    fn stored_hash(&self, index: u32) -> Option<&str> {
        self.plan
            .mailboxes
            .get(usize::try_from(index).ok()?)?
            .password_hash
    }

    /// The decoy hash for `username`: the same one every time for one name,
    /// so that repeating a name shows no difference either.
    fn decoy(&self, username: &str) -> Option<&str> {
        if self.decoys.is_empty() {
            return None;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(username, &mut hasher);
        let pick = std::hash::Hasher::finish(&hasher) % self.decoys.len() as u64;
        self.stored_hash(self.decoys[usize::try_from(pick).ok()?])
    }

    /// Logs in to the mailbox's backend over IMAP as the mailbox.
    async fn verify_imap(&self, mailbox: Option<u32>, password: &str, client: IpAddr) -> Verdict {
        let Some(index) = mailbox else {
            return Verdict::Rejected;
        };
        let Some(entry) = usize::try_from(index)
            .ok()
            .and_then(|i| self.plan.mailboxes.get(i))
        else {
            return Verdict::Rejected;
        };
        let backend = usize::try_from(entry.backend)
            .ok()
            .and_then(|i| self.plan.backends.get(i));
        let Some((backend, endpoint)) = backend.and_then(|b| Some((b, b.imap?))) else {
            warn!(mailbox = %entry.name, "its backend has no IMAP endpoint to verify against");
            return Verdict::Unavailable;
        };
        let attempt = imap::Attempt {
            user: entry.name,
            password,
            client,
        };
        match imap::login(backend, endpoint, &attempt).await {
            Ok(Login::Ok) => Verdict::Accepted { mailbox: index },
            Ok(Login::No) => Verdict::Rejected,
            Err(e) => {
                warn!(backend = %backend.name, %client, error = %e, "backend IMAP login failed");
                Verdict::Unavailable
            }
        }
    }
}
