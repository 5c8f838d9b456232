//! `mailgw::route::unroutable`: mail the gateway would accept but can never deliver.
//!
//! - **A mailbox on a backend without `lmtp` or `smtp`** (error): local mail
//!   is handed to the mailbox's backend over LMTP or SMTP, so a backend with
//!   only `imap`/`pop3` cannot take it. Reported once per backend, pointing at
//!   a few of the mailboxes. Mailboxes that cannot receive mail anyway (no
//!   address and member of no group: proxy-only logins) do not count.
//! - **A group that contains itself** (error), directly or through other
//!   groups — by name or by one of its addresses. Expanding it would never
//!   end. Each cycle is reported once, at the member that closes it, with the
//!   path (`sales → team → sales`).
//! - **A journal to an address that is no recipient** (error): no mailbox or
//!   group has it, so every journal copy would bounce. Fine when the address
//!   is in a domain that is not local and a connector's address space covers
//!   it (the journal lives elsewhere), or when it is in a local domain and
//!   `unknown-recipients forward to ...` passes it on.
//! - **NDR copies to a local address that is no recipient** (warning): the
//!   copies would bounce, unless unknown recipients are forwarded.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::addresses::{domain_of, forwards_unknown, is_local, is_recipient, normalize};
use super::Context;
use crate::ast::Config;
use crate::diagnostic::{Code, Diagnostic, Label};
use crate::source::{SourceDb, Span};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    backends(cx);
    group_cycles(cx);
    journal(cx);
    ndr_copies(cx);
}

/// Mailboxes shown per backend that cannot take mail.
const SHOWN: usize = 3;

fn backends(cx: &mut Context<'_>) {
    let (db, config) = (cx.db, cx.config);
    if config
        .backends
        .iter()
        .all(|b| b.lmtp.is_some() || b.smtp.is_some())
    {
        // Every backend takes mail: no mailbox to look at.
        return;
    }
    let members: BTreeSet<&str> = config
        .groups
        .iter()
        .flat_map(|g| g.members.iter())
        .map(|m| db.text(m))
        .filter(|m| !m.contains('@'))
        .collect();
    // Backend index → the mailboxes on it that receive mail.
    let mut stuck: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, mailbox) in config.mailboxes.iter().enumerate() {
        let Some(&backend) = cx.names.backends.get(db.text(&mailbox.backend)) else {
            continue;
        };
        let b = &config.backends[backend];
        if b.lmtp.is_some() || b.smtp.is_some() {
            continue;
        }
        if mailbox.addresses.is_empty() && !members.contains(db.text(&mailbox.name)) {
            continue;
        }
        stuck.entry(backend).or_default().push(i);
    }
    for (backend, mailboxes) in stuck {
        let b = &config.backends[backend];
        let what = match mailboxes.as_slice() {
            [one] => format!("mailbox `{}`", db.text(&config.mailboxes[*one].name)),
            many => format!("its {} mailboxes", many.len()),
        };
        let mut diagnostic = Diagnostic::error(
            Code::Unroutable,
            format!(
                "backend `{}` has neither `lmtp` nor `smtp`, so mail for {what} can never be delivered",
                b.name.value
            ),
            Label::new(b.name.span, "no `lmtp` or `smtp` here"),
        )
        .with_help("add the port the mailbox server takes mail on, e.g. `lmtp 24`, or move the mailboxes to a backend that has one");
        for &i in mailboxes.iter().take(SHOWN) {
            let mailbox = &config.mailboxes[i];
            diagnostic = diagnostic.with_label(Label::new(
                mailbox.backend.span,
                format!("mailbox `{}` lives here", db.text(&mailbox.name)),
            ));
        }
        cx.report(diagnostic);
    }
}

fn group_cycles(cx: &mut Context<'_>) {
    let (db, config) = (cx.db, cx.config);
    // Group addresses → group, so that a member written as an address counts.
    // Only looked up, never iterated.
    let mut by_address = HashMap::new();
    for (i, group) in config.groups.iter().enumerate() {
        for address in &group.addresses {
            by_address.entry(normalize(db.text(address))).or_insert(i);
        }
    }
    // The member edges between groups: (member span, target group).
    let edges: Vec<Vec<(Span, usize)>> = config
        .groups
        .iter()
        .map(|group| {
            group
                .members
                .iter()
                .filter_map(|member| {
                    let name = db.text(member);
                    let target = if name.contains('@') {
                        by_address.get(&normalize(name)).copied()
                    } else {
                        cx.names.groups.get(name).copied()
                    };
                    target.map(|t| (member.span, t))
                })
                .collect()
        })
        .collect();

    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnPath,
        Done,
    }
    let mut state = vec![State::New; edges.len()];
    let mut found = Vec::new();
    // An iterative depth-first search: a directory's groups may nest deeply.
    for start in 0..edges.len() {
        if state[start] != State::New {
            continue;
        }
        // The path: (group, index of its next edge to follow).
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = State::OnPath;
        while let Some(top) = path.last_mut() {
            let (group, next) = *top;
            let Some(&(span, target)) = edges[group].get(next) else {
                state[group] = State::Done;
                path.pop();
                continue;
            };
            top.1 += 1;
            match state[target] {
                State::New => {
                    state[target] = State::OnPath;
                    path.push((target, 0));
                }
                State::OnPath => found.push(cycle(db, config, &edges, &path, target, span)),
                State::Done => {}
            }
        }
    }
    for diagnostic in found {
        cx.report(diagnostic);
    }
}

/// The finding for the member at `span` that leads back to `target`, which is
/// on `path` (each entry's edge index is one past the edge it followed).
fn cycle(
    db: &SourceDb,
    config: &Config,
    edges: &[Vec<(Span, usize)>],
    path: &[(usize, usize)],
    target: usize,
    span: Span,
) -> Diagnostic {
    let from = path.iter().position(|&(g, _)| g == target).unwrap_or(0);
    let on_cycle = &path[from..];
    let mut names: Vec<&str> = on_cycle
        .iter()
        .map(|&(g, _)| db.text(&config.groups[g].name))
        .collect();
    names.push(db.text(&config.groups[target].name));
    let route = names.join(" → ");
    let name = db.text(&config.groups[target].name);
    let message = if on_cycle.len() == 1 {
        format!("group `{name}` is a member of itself ({route}): expanding it would never end")
    } else {
        format!("group `{name}` contains itself through other groups ({route}): expanding it would never end")
    };
    let mut diagnostic = Diagnostic::error(
        Code::Unroutable,
        message,
        Label::new(span, "this member closes the cycle"),
    )
    .with_help("remove one of the memberships in the cycle");
    // The other memberships on the cycle: every step but the last.
    for window in on_cycle.windows(2) {
        let (group, next) = window[0];
        if let Some(&(member, _)) = edges[group].get(next.wrapping_sub(1)) {
            let label = format!(
                "`{}` contains `{}`",
                db.text(&config.groups[group].name),
                db.text(&config.groups[window[1].0].name)
            );
            diagnostic = diagnostic.with_label(Label::new(member, label));
        }
    }
    diagnostic
}

/// True when some connector's address space covers `domain`.
fn connector_routes(config: &Config, domain: &str) -> bool {
    config
        .connectors
        .iter()
        .flat_map(|c| &c.address_spaces)
        .any(|space| {
            let pattern = space.pattern.value.as_str();
            match pattern.strip_prefix("*.") {
                _ if pattern == "*" => true,
                Some(parent) => domain
                    .strip_suffix(parent)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => pattern.eq_ignore_ascii_case(domain),
            }
        })
}

fn journal(cx: &mut Context<'_>) {
    let config = cx.config;
    let Some(journal) = &config.journal else {
        return;
    };
    let to = &journal.to.value;
    let Some(domain) = domain_of(to) else {
        return;
    };
    if is_recipient(cx.db, config, to) {
        return;
    }
    let diagnostic = if is_local(config, domain) {
        if forwards_unknown(config) {
            return;
        }
        Diagnostic::error(
            Code::Unroutable,
            format!(
                "the journal goes to `{to}`, which no mailbox or group has: every journal copy would bounce"
            ),
            Label::new(journal.to.span, "no recipient has this address"),
        )
        .with_help(format!(
            "add `{to}` to the addresses of the journal mailbox, e.g. `mailbox \"journal\" on \"BACKEND\" {{ address \"{to}\" }}`"
        ))
    } else {
        if connector_routes(config, domain) {
            return;
        }
        Diagnostic::error(
            Code::Unroutable,
            format!(
                "the journal goes to `{to}`, which is no recipient here, and no connector serves `{domain}`: every journal copy would bounce"
            ),
            Label::new(journal.to.span, "nowhere to deliver this"),
        )
        .with_help(format!(
            "journal to a local mailbox, or add a connector with `address-space \"{domain}\" cost 1`"
        ))
    };
    cx.report(diagnostic);
}

fn ndr_copies(cx: &mut Context<'_>) {
    let config = cx.config;
    let Some(ndr) = &config.ndr else {
        return;
    };
    if forwards_unknown(config) {
        return;
    }
    for copy in &ndr.copy_to {
        let local = domain_of(&copy.value).is_some_and(|d| is_local(config, d));
        if !local || is_recipient(cx.db, config, &copy.value) {
            continue;
        }
        cx.report(
            Diagnostic::warning(
                Code::Unroutable,
                format!(
                    "NDR copies go to `{}`, which no mailbox or group has: the copies would bounce",
                    copy.value
                ),
                Label::new(copy.span, "no recipient has this address"),
            )
            .with_help(format!(
                "add `{}` to the addresses of a mailbox or group",
                copy.value
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

    /// The source text under a span.
    fn slice(text: &str, span: Span) -> String {
        text[span.start as usize..span.end as usize].to_owned()
    }

    const HEAD: &str =
        "backend \"mbx1\" { host \"10.0.0.11\"; lmtp 24 }\ndomain \"example.com\" local\n\
                        mailbox \"alice\" on \"mbx1\" { address \"alice@example.com\" }\n";

    #[test]
    fn backend_without_lmtp_or_smtp() {
        let t = "backend \"imaponly\" { host \"10.0.0.12\"; imap 143 }\n\
                 mailbox \"a\" on \"imaponly\" { address \"a@example.com\" }\n\
                 mailbox \"b\" on \"imaponly\" { address \"b@example.com\" }\n\
                 mailbox \"proxy-only\" on \"imaponly\"\n";
        let found = with_code(t, Code::Unroutable);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(t, &found[0]), "\"imaponly\"");
        assert!(found[0].message.contains("its 2 mailboxes"));
        assert_eq!(found[0].secondary.len(), 2);
        assert_eq!(slice(t, found[0].secondary[0].span), "\"imaponly\"");
        let t = "backend \"s\" { host \"10.0.0.12\"; smtp 25 }\nmailbox \"a\" on \"s\" { address \"a@example.com\" }\n";
        assert!(with_code(t, Code::Unroutable).is_empty());
    }

    #[test]
    fn group_member_counts_as_receiving() {
        let t = "backend \"imaponly\" { host \"10.0.0.12\"; imap 143 }\n\
                 mailbox \"a\" on \"imaponly\"\ngroup \"g\" { member \"a\" }\n";
        let found = with_code(t, Code::Unroutable);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("mailbox `a`"));
    }

    #[test]
    fn group_cycles() {
        let t = format!(
            "{HEAD}group \"sales\" {{ member \"alice\", \"team\" }}\n\
             group \"team\" {{ member \"sales\" }}\n\
             group \"me\" {{ member \"me\" }}\n\
             group \"ok\" {{ member \"sales\", \"team\" }}\n"
        );
        let found = with_code(&t, Code::Unroutable);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].message.contains("(sales → team → sales)"),
            "{}",
            found[0].message
        );
        assert_eq!(at(&t, &found[0]), "\"sales\"");
        assert_eq!(slice(&t, found[0].primary.span), "\"sales\"");
        assert_eq!(found[0].secondary.len(), 1);
        assert_eq!(slice(&t, found[0].secondary[0].span), "\"team\"");
        assert!(found[1].message.contains("(me → me)"));
    }

    #[test]
    fn group_cycle_through_an_address() {
        let t = format!(
            "{HEAD}group \"a\" {{ address \"a@example.com\"; member \"b\" }}\n\
             group \"b\" {{ member \"a@EXAMPLE.COM\" }}\n"
        );
        let found = with_code(&t, Code::Unroutable);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(&t, &found[0]), "\"a@EXAMPLE.COM\"");
        assert!(found[0].message.contains("(a → b → a)"));
    }

    #[test]
    fn deep_nesting_is_no_cycle() {
        let mut t = HEAD.to_owned();
        for i in 0..5000 {
            t.push_str(&format!("group \"g{i}\" {{ member \"g{}\" }}\n", i + 1));
        }
        t.push_str("group \"g5000\" { member \"alice\" }\n");
        assert!(with_code(&t, Code::Unroutable).is_empty());
    }

    #[test]
    fn journal_to_a_non_recipient() {
        let t = format!("{HEAD}journal to \"journal@example.com\" scope both\n");
        let found = with_code(&t, Code::Unroutable);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(&t, &found[0]), "\"journal@example.com\"");
        let t = format!("{HEAD}journal to \"archive@vault.example\"\n");
        let found = with_code(&t, Code::Unroutable);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0]
            .message
            .contains("no connector serves `vault.example`"));
    }

    #[test]
    fn journal_that_can_be_delivered() {
        for tail in [
            "journal to \"alice@example.com\"",
            "journal to \"alice@EXAMPLE.com\"",
            "journal to \"archive@vault.example\"\nconnector \"v\" { address-space \"vault.example\" cost 1; deliver mx }",
            "journal to \"archive@eu.vault.example\"\nconnector \"v\" { address-space \"*.vault.example\" cost 1; deliver mx }",
            "journal to \"archive@vault.example\"\nconnector \"v\" { address-space \"*\" cost 1; deliver mx }",
            "journal to \"journal@example.com\"\nunknown-recipients forward to archive.example.com:25",
        ] {
            let t = format!("{HEAD}{tail}\n");
            assert!(with_code(&t, Code::Unroutable).is_empty(), "{tail}: {:?}", with_code(&t, Code::Unroutable));
        }
        // `*.vault.example` covers subdomains only, as an Exchange address space.
        let t = format!(
            "{HEAD}journal to \"archive@vault.example\"\nconnector \"v\" {{ address-space \"*.vault.example\" cost 1; deliver mx }}\n"
        );
        assert_eq!(with_code(&t, Code::Unroutable).len(), 1);
    }

    #[test]
    fn ndr_copies_to_a_local_non_recipient() {
        let t = format!(
            "{HEAD}ndr {{ copy-to \"alice@example.com\", \"nobody@example.com\", \"ops@elsewhere.example\" }}\n"
        );
        let found = with_code(&t, Code::Unroutable);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(at(&t, &found[0]), "\"nobody@example.com\"");
    }
}
