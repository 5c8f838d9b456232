//! `mailgw::postmaster::missing`: inbound mail with nowhere to send reports from.
//!
//! - **No postmaster** (error): the gateway accepts inbound mail — some SMTP
//!   listener takes mail without requiring authentication (`auth off` or
//!   `auth offer`) and at least one domain is `local` — but `gateway { ... }`
//!   has no `postmaster`. Delivery status notifications (RFC 3464) are sent
//!   from the postmaster address, and RFC 5321 requires every mail domain to
//!   have one.
//! - **A postmaster nobody reads** (warning): the postmaster address is in a
//!   local domain but no mailbox or group has it, so replies to delivery
//!   reports and mail to the postmaster would be rejected. Not reported when
//!   `unknown-recipients forward to ...` passes such mail on.

use super::addresses::{domain_of, forwards_unknown, is_local, is_recipient};
use super::Context;
use crate::ast::{AuthMode, Protocol};
use crate::diagnostic::{Code, Diagnostic, Label};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let config = cx.config;
    let gateway = config.gateway.as_ref();
    match gateway.and_then(|g| g.postmaster.as_ref()) {
        Some(postmaster) => {
            let address = &postmaster.value;
            let local = domain_of(address).is_some_and(|d| is_local(config, d));
            if local && !is_recipient(cx.db, config, address) && !forwards_unknown(config) {
                cx.report(
                    Diagnostic::warning(
                        Code::NoPostmaster,
                        format!(
                            "the postmaster `{address}` is in a local domain, but no mailbox or group has it: \
                             replies to delivery reports and mail to the postmaster would be rejected"
                        ),
                        Label::new(postmaster.span, "no recipient has this address"),
                    )
                    .with_help(format!(
                        "add `{address}` to the addresses of the administrators' mailbox or group"
                    )),
                );
            }
        }
        None => {
            let Some(first_domain) = config.domains.first() else {
                return;
            };
            let Some(listener) = config.listeners.iter().find(|l| {
                l.protocol
                    .as_ref()
                    .is_some_and(|p| p.value == Protocol::Smtp)
                    && l.auth.as_ref().map_or(AuthMode::Off, |a| a.value) != AuthMode::Require
            }) else {
                return;
            };
            let accepts = Label::new(listener.name.span, "accepts mail without authentication");
            let message =
                "inbound mail is accepted for local domains, but there is no postmaster: \
                           delivery reports have no sender and problems no one to go to";
            let help = format!(
                "set the address reports come from: `postmaster \"postmaster@{}\"` in `gateway {{ ... }}`",
                first_domain.name.value
            );
            let diagnostic = match gateway {
                Some(gateway) => Diagnostic::error(
                    Code::NoPostmaster,
                    message,
                    Label::new(gateway.span, "no `postmaster` in here"),
                )
                .with_label(accepts),
                None => Diagnostic::error(Code::NoPostmaster, message, accepts),
            };
            cx.report(diagnostic.with_help(help));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::at;
    use crate::checks::testing::with_code;
    use crate::diagnostic::Severity;

    const MX: &str = "listener \"mx\" { protocol smtp; bind 0.0.0.0:25; auth off }\n\
                      backend \"mbx1\" { host \"10.0.0.11\"; lmtp 24 }\n\
                      domain \"example.com\" local\n\
                      mailbox \"admin\" on \"mbx1\" { address \"admin@example.com\", \"postmaster@example.com\" }\n";

    #[test]
    fn missing_postmaster() {
        let t = format!("{MX}gateway {{ hostname \"mail.example.com\" }}\n");
        let found = with_code(&t, Code::NoPostmaster);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Error);
        assert_eq!(at(&t, &found[0]), "gateway");
        assert_eq!(found[0].secondary.len(), 1);
        assert!(found[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("postmaster@example.com")));

        let found = with_code(MX, Code::NoPostmaster);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(MX, &found[0]), "\"mx\"");
    }

    #[test]
    fn no_inbound_mail_no_postmaster_needed() {
        let submission_only =
            "listener \"sub\" { protocol smtp; bind 0.0.0.0:587; auth require }\n\
                               domain \"example.com\" local\n";
        assert!(with_code(submission_only, Code::NoPostmaster).is_empty());
        let no_domain = "listener \"mx\" { protocol smtp; bind 0.0.0.0:25; auth off }\n";
        assert!(with_code(no_domain, Code::NoPostmaster).is_empty());
        let imap =
            "listener \"imap\" { protocol imap; bind 0.0.0.0:143 }\ndomain \"example.com\" local\n";
        assert!(with_code(imap, Code::NoPostmaster).is_empty());
    }

    #[test]
    fn postmaster_that_is_a_recipient() {
        let t = format!("{MX}gateway {{ postmaster \"postmaster@example.com\" }}\n");
        assert!(with_code(&t, Code::NoPostmaster).is_empty());
        let t = format!("{MX}gateway {{ postmaster \"hostmaster@isp.example\" }}\n");
        assert!(with_code(&t, Code::NoPostmaster).is_empty());
    }

    #[test]
    fn postmaster_nobody_reads() {
        let t = format!("{MX}gateway {{ postmaster \"reports@example.com\" }}\n");
        let found = with_code(&t, Code::NoPostmaster);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(at(&t, &found[0]), "\"reports@example.com\"");
        let t = format!(
            "{MX}gateway {{ postmaster \"reports@example.com\" }}\nunknown-recipients forward to old.example.com:25\n"
        );
        assert!(with_code(&t, Code::NoPostmaster).is_empty());
    }
}
