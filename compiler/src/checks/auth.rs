//! Listener authentication: `mailgw::auth::cleartext` and
//! `mailgw::listener::unreachable`.
//!
//! **`mailgw::auth::cleartext`** (error): a listener where clients log in
//! while TLS is not enforced: an SMTP listener with `auth offer` or `auth
//! require`, or any IMAP or POP3 listener (they always log in), whose `tls`
//! is `none` (or missing) or `starttls offer`. A client that does not start
//! TLS, or an attacker who strips the STARTTLS offer, sends the password in
//! clear text. Listeners bound only to loopback addresses get no diagnostic:
//! traffic that never leaves the machine cannot be sniffed on the network,
//! and a local content filter or webmail often talks to such a port.
//!
//! **`mailgw::listener::unreachable`** (error): a listener nobody can use.
//! - An SMTP listener with `auth require` bound to port 25: mail servers on the
//!   internet never authenticate, so every inbound message would be refused.
//!   (Loopback-only listeners are exempt: no internet server reaches them.)
//! - An SMTP listener with `auth require`, or an IMAP or POP3 listener, while
//!   no password can be verified: `auth { verify directory }` (the default
//!   when there is no `auth` block or no `verify`) with no mailbox that has a
//!   `password`, or `verify backend imap` with no backend that has `imap`.

use super::exposure;
use super::Context;
use crate::ast::{AuthMode, Listener, Protocol, TlsMode, Verify};
use crate::diagnostic::{Code, Diagnostic, Label};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    for listener in &cx.config.listeners {
        let Some(protocol) = &listener.protocol else {
            continue;
        };
        let auth = listener.auth.as_ref().map_or(AuthMode::Off, |a| a.value);
        let logs_in = match protocol.value {
            Protocol::Smtp => auth != AuthMode::Off,
            Protocol::Imap | Protocol::Pop3 => true,
        };
        if logs_in {
            cleartext(cx, listener);
        }
        let requires = protocol.value != Protocol::Smtp || auth == AuthMode::Require;
        if requires {
            no_mechanism(cx, listener);
        }
        if protocol.value == Protocol::Smtp && auth == AuthMode::Require {
            port_25(cx, listener);
        }
    }
}

/// Reports a login without enforced TLS.
fn cleartext(cx: &mut Context<'_>, listener: &Listener) {
    if listener.binds.is_empty() || exposure::loopback_only(listener) {
        return;
    }
    let mode = listener
        .tls
        .as_ref()
        .map_or(TlsMode::None, |t| t.value.mode);
    let why = match mode {
        TlsMode::None => "without TLS",
        TlsMode::StartTlsOffer => "where STARTTLS is only offered",
        TlsMode::StartTlsRequire | TlsMode::Implicit => return,
    };
    let Some(protocol) = &listener.protocol else {
        return;
    };
    let login = match (protocol.value, &listener.auth) {
        (Protocol::Smtp, Some(auth)) => Label::new(auth.span, "clients log in here"),
        (Protocol::Smtp, None) => return,
        (Protocol::Imap, _) => Label::new(protocol.span, "IMAP clients always log in"),
        (Protocol::Pop3, _) => Label::new(protocol.span, "POP3 clients always log in"),
    };
    let tls_label = match &listener.tls {
        Some(tls) => Label::new(tls.span, "TLS is not required"),
        None => Label::new(listener.name.span, "no `tls` statement: clear text only"),
    };
    let profile = listener
        .tls
        .as_ref()
        .and_then(|t| t.value.profile.as_ref())
        .map_or("PROFILE", |p| p.value.as_str());
    cx.report(
        Diagnostic::error(
            Code::CleartextCredentials,
            format!(
                "listener `{}` takes passwords {why}: they may cross the network in clear text",
                listener.name.value
            ),
            login,
        )
        .with_label(tls_label)
        .with_help(format!(
            "require TLS before the login: `tls starttls require \"{profile}\"` or `tls implicit \"{profile}\"`"
        )),
    );
}

/// Reports `auth require` on an internet-facing port 25.
fn port_25(cx: &mut Context<'_>, listener: &Listener) {
    let Some(bind) = listener
        .binds
        .iter()
        .find(|b| b.value.port() == 25 && !exposure::is_loopback(b.value.ip()))
    else {
        return;
    };
    let Some(auth) = &listener.auth else {
        return;
    };
    cx.report(
        Diagnostic::error(
            Code::UnreachableListener,
            format!(
                "listener `{}` requires authentication on port 25, but mail servers on the internet never \
                 authenticate: all inbound mail would be refused",
                listener.name.value
            ),
            Label::new(auth.span, "requires authentication"),
        )
        .with_label(Label::new(bind.span, "the port internet mail arrives on"))
        .with_help(
            "use `auth off` on port 25 and let clients submit with `auth require` on port 587 \
             (relay rules decide who may send out)",
        ),
    );
}

/// Reports a listener that needs a login while no password can be verified.
fn no_mechanism(cx: &mut Context<'_>, listener: &Listener) {
    let verify = cx.config.auth.as_ref().and_then(|a| a.verify.as_ref());
    let how = verify.map_or(Verify::Directory, |v| v.value);
    let (reason, help) = match how {
        Verify::Directory if cx.config.mailboxes.iter().all(|m| m.password.is_none()) => (
            "passwords are verified against the directory, and no mailbox has a `password`",
            "give the mailboxes a `password` hash, or verify against the mailbox servers: \
             `auth { verify backend imap }`",
        ),
        Verify::BackendImap if cx.config.backends.iter().all(|b| b.imap.is_none()) => (
            "passwords are verified by an IMAP login on the backend, and no backend has `imap`",
            "add `imap 143 tls starttls` to the backends, or use `auth { verify directory }` with \
             password hashes",
        ),
        _ => return,
    };
    let at = match (&listener.auth, &listener.protocol) {
        (Some(auth), Some(p)) if p.value == Protocol::Smtp => {
            Label::new(auth.span, "requires a login")
        }
        (_, Some(p)) => Label::new(p.span, "clients must log in"),
        (_, None) => return,
    };
    let mut diagnostic = Diagnostic::error(
        Code::UnreachableListener,
        format!(
            "nobody can log in on listener `{}`: {reason}",
            listener.name.value
        ),
        at,
    )
    .with_help(help);
    if let Some(verify) = verify {
        diagnostic = diagnostic.with_label(Label::new(verify.span, "how passwords are verified"));
    }
    cx.report(diagnostic);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::at;
    use crate::checks::testing::{findings, with_code};

    const USERS: &str = "backend \"b\" { host \"10.0.0.1\"; imap 143; lmtp 24 }\n\
                         auth { verify backend imap }\n";

    #[test]
    fn smtp_auth_without_required_tls() {
        let t = format!(
            "{USERS}tls \"p\" {{ self-signed }}\n\
             listener \"sub\" {{ protocol smtp; bind 0.0.0.0:587; tls starttls offer \"p\"; auth require }}\n\
             listener \"plain\" {{ protocol smtp; bind 0.0.0.0:588; auth offer }}"
        );
        let found = with_code(&t, Code::CleartextCredentials);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found
            .iter()
            .all(|d| at(&t, d) == "require" || at(&t, d) == "offer"));
        assert!(found[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("\"p\"")));
    }

    #[test]
    fn imap_and_pop3_without_tls() {
        let t = format!(
            "{USERS}listener \"imap\" {{ protocol imap; bind 0.0.0.0:143 }}\n\
             listener \"pop\" {{ protocol pop3; bind [::]:110; tls none }}"
        );
        let found = with_code(&t, Code::CleartextCredentials);
        let spans: Vec<String> = found.iter().map(|d| at(&t, d)).collect();
        assert_eq!(spans, ["imap", "pop3"]);
    }

    #[test]
    fn tls_required_or_loopback_is_fine() {
        let t = format!(
            "{USERS}tls \"p\" {{ self-signed }}\n\
             listener \"sub\" {{ protocol smtp; bind 0.0.0.0:587; tls starttls require \"p\"; auth require }}\n\
             listener \"imaps\" {{ protocol imap; bind 0.0.0.0:993; tls implicit \"p\" }}\n\
             listener \"webmail\" {{ protocol imap; bind 127.0.0.1:143, [::1]:143 }}\n\
             listener \"mx\" {{ protocol smtp; bind 0.0.0.0:25; auth off }}"
        );
        assert!(
            with_code(&t, Code::CleartextCredentials).is_empty(),
            "{:?}",
            findings(&t)
        );
        assert!(
            with_code(&t, Code::UnreachableListener).is_empty(),
            "{:?}",
            findings(&t)
        );
    }

    #[test]
    fn auth_require_on_port_25() {
        let t = format!(
            "{USERS}tls \"p\" {{ self-signed }}\n\
             listener \"mx\" {{ protocol smtp; bind 0.0.0.0:25; tls starttls require \"p\"; auth require }}"
        );
        let found = with_code(&t, Code::UnreachableListener);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(&t, &found[0]), "require");
        let second = found[0]
            .secondary
            .first()
            .map(|l| l.span)
            .expect("the bind");
        assert_eq!(&t[second.start as usize..second.end as usize], "0.0.0.0:25");
    }

    #[test]
    fn no_password_for_directory_verification() {
        let t = "backend \"b\" { host \"10.0.0.1\"; lmtp 24 }\n\
                 mailbox \"alice\" on \"b\" { address \"alice@example.com\" }\n\
                 tls \"p\" { self-signed }\n\
                 listener \"imaps\" { protocol imap; bind 0.0.0.0:993; tls implicit \"p\" }";
        let found = with_code(t, Code::UnreachableListener);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(t, &found[0]), "imap");
        let with_password = t.replace(
            "address \"alice@example.com\" }",
            "address \"alice@example.com\"; password \"$argon2id$x\" }",
        );
        assert!(with_code(&with_password, Code::UnreachableListener).is_empty());
    }

    #[test]
    fn no_imap_backend_for_backend_verification() {
        let t = "backend \"b\" { host \"10.0.0.1\"; lmtp 24 }\n\
                 auth { verify backend imap }\n\
                 tls \"p\" { self-signed }\n\
                 listener \"smtps\" { protocol smtp; bind 0.0.0.0:465; tls implicit \"p\"; auth require }";
        let found = with_code(t, Code::UnreachableListener);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(t, &found[0]), "require");
        let verify = found[0]
            .secondary
            .first()
            .map(|l| l.span)
            .expect("the verify statement");
        assert_eq!(
            &t[verify.start as usize..verify.end as usize],
            "verify backend imap"
        );
    }
}
