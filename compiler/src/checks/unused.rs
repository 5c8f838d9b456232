//! `mailgw::unused` (warning): a TLS profile or backend that nothing uses.
//!
//! - **A TLS profile no listener uses**: listeners are the only users of TLS
//!   profiles, so its certificate would never be offered. Often a leftover,
//!   or a listener meant to use it names another profile.
//! - **A backend no mailbox lives on** (from the `.mailgw` files or a
//!   directory): nothing is ever delivered to it or proxied to it.
//!
//! Only the first definition of a name is considered; a second one is a
//! `mailgw::name::duplicate` error already. Connectors that can never be
//! chosen are `mailgw::connector::shadowed`, not this check.

use std::collections::BTreeSet;

use super::Context;
use crate::diagnostic::{Code, Diagnostic, Label};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let config = cx.config;
    let used_profiles: BTreeSet<&str> = config
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref()?.value.profile.as_ref())
        .map(|p| p.value.as_str())
        .collect();
    for (i, profile) in config.tls.iter().enumerate() {
        let name = profile.name.value.as_str();
        if cx.names.tls.get(name) != Some(&i) || used_profiles.contains(name) {
            continue;
        }
        cx.report(
            Diagnostic::warning(
                Code::Unused,
                format!(
                    "TLS profile `{name}` is used by no listener: its certificate is never offered"
                ),
                Label::new(profile.name.span, "not used"),
            )
            .with_help(format!(
                "use it in a listener (`tls starttls require \"{name}\"`) or remove it"
            )),
        );
    }
    // Backends (first definitions) that hold a mailbox; the mailboxes are
    // looked at only until every backend has one.
    let mut used = vec![false; config.backends.len()];
    let mut unused = cx.names.backends.len();
    for mailbox in &config.mailboxes {
        if unused == 0 {
            break;
        }
        let backend = cx.names.backends.get(cx.db.text(&mailbox.backend));
        if let Some(slot) = backend.and_then(|&i| used.get_mut(i)) {
            if !*slot {
                *slot = true;
                unused -= 1;
            }
        }
    }
    for (i, backend) in config.backends.iter().enumerate() {
        let name = backend.name.value.as_str();
        if cx.names.backends.get(name) != Some(&i) || used[i] {
            continue;
        }
        cx.report(
            Diagnostic::warning(
                Code::Unused,
                format!("backend `{name}` holds no mailbox: no mail is delivered to it and no client reaches it"),
                Label::new(backend.name.span, "no mailbox lives here"),
            )
            .with_help(format!(
                "put mailboxes on it (`mailbox \"NAME\" on \"{name}\"`, or `backend = \"{name}\"` in a directory) or remove it"
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::at;
    use crate::checks::testing::with_code;
    use crate::diagnostic::Severity;

    #[test]
    fn unused_profile_and_backend() {
        let t = "tls \"public\" { self-signed }\ntls \"old\" { self-signed }\n\
                 listener \"mx\" { protocol smtp; bind 0.0.0.0:25; tls starttls offer \"public\" }\n\
                 backend \"mbx1\" { host \"10.0.0.11\"; lmtp 24 }\n\
                 backend \"mbx2\" { host \"10.0.0.12\"; lmtp 24 }\n\
                 mailbox \"alice\" on \"mbx1\"\n";
        let found = with_code(t, Code::Unused);
        let spans: Vec<String> = found.iter().map(|d| at(t, d)).collect();
        assert_eq!(spans, ["\"old\"", "\"mbx2\""], "{found:?}");
        assert!(found.iter().all(|d| d.severity == Severity::Warning));
    }

    #[test]
    fn everything_used() {
        let t = "tls \"public\" { self-signed }\n\
                 listener \"imaps\" { protocol imap; bind 0.0.0.0:993; tls implicit \"public\" }\n\
                 backend \"mbx1\" { host \"10.0.0.11\"; lmtp 24 }\n\
                 mailbox \"alice\" on \"mbx1\"\n";
        assert!(with_code(t, Code::Unused).is_empty());
    }

    #[test]
    fn duplicates_are_not_also_unused() {
        let t = "tls \"public\" { self-signed }\ntls \"public\" { self-signed }\n\
                 listener \"mx\" { protocol smtp; bind 0.0.0.0:25; tls starttls offer \"public\" }\n";
        assert!(with_code(t, Code::Unused).is_empty());
        assert_eq!(with_code(t, Code::DuplicateName).len(), 1);
    }
}
