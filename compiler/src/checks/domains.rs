//! `mailgw::domain::empty` (warning): a local domain with no recipient in it.
//!
//! The gateway accepts mail for a `local` domain only for the addresses of its
//! mailboxes and groups and rejects the rest with `550 5.1.1`. A local domain
//! where no mailbox or group has an address rejects every message: usually a
//! typo in the domain, or addresses written in another domain. Not reported
//! when `unknown-recipients forward to ...` is set: then mail for the domain
//! is accepted and passed on to that host.

use std::collections::BTreeMap;

use super::addresses::{domain_of, forwards_unknown};
use super::Context;
use crate::diagnostic::{Code, Diagnostic, Label};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let (db, config) = (cx.db, cx.config);
    if config.domains.is_empty() || forwards_unknown(config) {
        return;
    }
    // Local domain (first statement per name) → whether a recipient has an address in it.
    let mut used: BTreeMap<String, bool> = BTreeMap::new();
    for domain in &config.domains {
        used.entry(domain.name.value.to_ascii_lowercase())
            .or_insert(false);
    }
    let addresses = config
        .mailboxes
        .iter()
        .flat_map(|m| &m.addresses)
        .chain(config.groups.iter().flat_map(|g| &g.addresses));
    let mut unused = used.len();
    for address in addresses {
        let Some(domain) = domain_of(db.text(address)) else {
            continue;
        };
        // Addresses come with lowercase domains from the reader.
        if let Some(seen) = used.get_mut(domain) {
            if !*seen {
                *seen = true;
                unused -= 1;
                if unused == 0 {
                    return;
                }
            }
        }
    }
    let mut reported = std::collections::BTreeSet::new();
    for domain in &config.domains {
        let name = domain.name.value.to_ascii_lowercase();
        if used.get(&name) != Some(&false) || !reported.insert(name) {
            continue;
        }
        let name = &domain.name.value;
        cx.report(
            Diagnostic::warning(
                Code::EmptyDomain,
                format!("no mailbox or group has an address in the local domain `{name}`: all mail for it is rejected"),
                Label::new(domain.name.span, "no recipient in this domain"),
            )
            .with_help(format!(
                "give a mailbox or group an address like `someone@{name}`, forward unknown recipients \
                 (`unknown-recipients forward to HOST:PORT`), or remove the domain"
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::with_code;
    use crate::diagnostic::Severity;

    const HEAD: &str = "backend \"mbx1\" { host \"10.0.0.11\"; lmtp 24 }\n\
                        domain \"example.com\" local\ndomain \"example.org\" local\n";

    #[test]
    fn empty_local_domain() {
        let t =
            format!("{HEAD}mailbox \"alice\" on \"mbx1\" {{ address \"alice@example.com\" }}\n");
        let found = with_code(&t, Code::EmptyDomain);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        let span = found[0].primary.span;
        assert_eq!(
            &t[span.start as usize..span.end as usize],
            "\"example.org\""
        );
    }

    #[test]
    fn group_addresses_count_and_forwarding_excuses() {
        let t = format!(
            "{HEAD}mailbox \"alice\" on \"mbx1\" {{ address \"alice@example.com\" }}\n\
             group \"g\" {{ address \"g@EXAMPLE.ORG\"; member \"alice\" }}\n"
        );
        assert!(with_code(&t, Code::EmptyDomain).is_empty());
        let t = format!("{HEAD}unknown-recipients forward to old.example.com:25\n");
        assert!(with_code(&t, Code::EmptyDomain).is_empty());
    }
}
