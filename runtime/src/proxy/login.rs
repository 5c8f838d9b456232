//! A proxied login: who the user is, which backend holds the mailbox, and
//! the login there, following login referrals between declared backends.
//!
//! With `auth { verify directory }` the gateway checks the password itself
//! first, so a wrong password never reaches a backend; with
//! `verify backend imap` the backend's answer to the proxied login is the
//! check. Either way the failure is counted against the client and an
//! unknown user is answered exactly like a wrong password.

use std::net::SocketAddr;

use mailgw_plan::{Backend, Endpoint, Protocol, Verify};
use tracing::{info, warn};

use super::backend::{self, Answer, BackendConn, BackendError, Credentials};
use super::{LoginFailure, LoginRequest};
use crate::auth::Verdict;
use crate::server::Generation;

/// Most login referrals followed for one login.
pub const MAX_REFERRALS: u32 = 3;

/// A login the backend accepted.
pub struct LoggedIn {
    /// The connection, ready to splice.
    pub conn: BackendConn,
    /// Untagged lines (IMAP) to pass to the client before the final line.
    pub untagged: Vec<u8>,
    /// The backend's final line, without an IMAP tag.
    pub text: String,
    /// The backend that holds the session.
    pub backend: String,
}

/// Logs `request` in for `client` at the backend of the user's mailbox,
/// per the current generation's plan.
pub async fn login(
    generation: &Generation,
    protocol: Protocol,
    request: &LoginRequest,
    client: SocketAddr,
    session: &str,
) -> Result<LoggedIn, LoginFailure> {
    let plan = &generation.plan;
    let auth = &generation.authenticator;
    let password = request.password.expose();
    let index = match plan.auth.verify {
        Verify::Directory => match auth.verify(&request.user, password, client.ip()).await {
            Verdict::Accepted { mailbox } => mailbox,
            Verdict::Rejected => return Err(LoginFailure::Rejected),
            Verdict::Unavailable => return Err(LoginFailure::Unavailable),
        },
        Verify::BackendImap => match auth.mailbox(&request.user) {
            Some(index) => index,
            None => {
                auth.record(client.ip(), false);
                info!(%session, %client, user = ?request.user, outcome = "rejected", "login");
                return Err(LoginFailure::Rejected);
            }
        },
    };
    let mailbox = usize::try_from(index)
        .ok()
        .and_then(|i| plan.mailboxes.get(i))
        .ok_or(LoginFailure::Unavailable)?;
    let mut backend = usize::try_from(mailbox.backend)
        .ok()
        .and_then(|i| plan.backends.get(i))
        .ok_or(LoginFailure::Unavailable)?;
    let mut user = mailbox.name.to_owned();
    let mut hops = 0;
    loop {
        let Some(endpoint) = endpoint(backend, protocol) else {
            warn!(%session, side = "gateway", backend = %backend.name, ?protocol, "the mailbox's backend has no endpoint for this protocol");
            return Err(LoginFailure::Unavailable);
        };
        let creds = Credentials {
            user: &user,
            password,
            client,
        };
        let answer = match protocol {
            Protocol::Pop3 => backend::pop3_login(backend, endpoint, &creds).await,
            Protocol::Imap | Protocol::Smtp => backend::imap_login(backend, endpoint, &creds).await,
        };
        match answer {
            Ok(Answer::Ok {
                conn,
                untagged,
                text,
            }) => {
                if plan.auth.verify == Verify::BackendImap {
                    auth.record(client.ip(), true);
                }
                info!(%session, %client, mailbox = %user, backend = %backend.name, method = request.method, "logged in; proxying");
                return Ok(LoggedIn {
                    conn,
                    untagged,
                    text,
                    backend: backend.name.clone(),
                });
            }
            Ok(Answer::No {
                referral: Some(url),
            }) if protocol == Protocol::Imap => {
                let target = backend::parse_referral(&url).and_then(|(host, port, referred)| {
                    let next = plan.backends.iter().find(|b| {
                        b.host.eq_ignore_ascii_case(&host) && b.imap.is_some_and(|e| e.port == port)
                    })?;
                    Some((next, referred))
                });
                match target {
                    Some((next, referred)) if hops < MAX_REFERRALS => {
                        hops += 1;
                        info!(%session, side = "backend", from = %backend.name, to = %next.name, "following a login referral");
                        backend = next;
                        if let Some(referred) = referred {
                            user = referred;
                        }
                    }
                    Some(_) => {
                        warn!(%session, side = "backend", backend = %backend.name, "too many login referrals");
                        return Err(LoginFailure::Unavailable);
                    }
                    None => {
                        warn!(%session, side = "backend", backend = %backend.name, referral = ?url, "login referral to a server not declared in the plan; not followed");
                        return Err(LoginFailure::Unavailable);
                    }
                }
            }
            Ok(Answer::No { .. }) => {
                if plan.auth.verify == Verify::BackendImap {
                    auth.record(client.ip(), false);
                    info!(%session, %client, user = ?request.user, outcome = "rejected", "login");
                } else {
                    warn!(%session, side = "backend", backend = %backend.name, mailbox = %user, "the backend refused a login the directory accepted");
                }
                return Err(LoginFailure::Rejected);
            }
            Err(e) => {
                log_backend_error(session, backend, &e);
                return Err(LoginFailure::Unavailable);
            }
        }
    }
}

fn endpoint(backend: &Backend, protocol: Protocol) -> Option<Endpoint> {
    match protocol {
        Protocol::Imap => backend.imap,
        Protocol::Pop3 => backend.pop3,
        Protocol::Smtp => None,
    }
}

fn log_backend_error(session: &str, backend: &Backend, error: &BackendError) {
    warn!(%session, side = "backend", backend = %backend.name, %error, "backend login failed");
}
