//! Recipient addresses: `mailgw::address::duplicate` and `mailgw::address::foreign`.
//!
//! **`mailgw::address::duplicate`** (error): one SMTP address on two
//! recipients — two mailboxes, two groups, or a mailbox and a group, from the
//! `.mailgw` files or a directory (TOML) file alike. An address belongs to
//! exactly one recipient: the gateway could deliver mail for it to only one of
//! them, and which one would depend on the order of the files. Addresses
//! compare case-insensitively in the domain and exactly as written in the
//! local part (`Alice@EXAMPLE.com` is `Alice@example.com`, not
//! `alice@example.com`). The same address listed twice for one recipient is
//! harmless but redundant: a warning with the same code.
//!
//! **`mailgw::address::foreign`** (error): a mailbox or group address whose
//! domain is not declared `domain "..." local`. Mail for that domain is relayed
//! to a connector, never delivered here, so the address would never receive
//! anything — usually a typo in the domain or a forgotten `domain` statement.
//! Only checked when the configuration declares at least one local domain.
//!
//! The duplicate check sorts the addresses' hashes and compares neighbours,
//! so a directory of hundreds of thousands of addresses costs milliseconds;
//! findings come out in the order of the addresses, never of a map.
//!
//! This file also holds the address helpers the other recipient checks share.

use std::borrow::Cow;
use std::collections::HashMap;

use super::Context;
use crate::ast::{Config, UnknownRecipients};
use crate::diagnostic::{Code, Diagnostic, Label};
use crate::source::{SourceDb, Span, Spanned, Text};
use crate::suggest;

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    duplicates(cx);
    foreign(cx);
}

/// A mailbox or a group, by index into the configuration's lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Mailbox(usize),
    Group(usize),
}

impl Owner {
    /// `mailbox `alice`` or `group `sales``.
    fn describe(self, db: &SourceDb, config: &Config) -> String {
        match self {
            Owner::Mailbox(i) => format!("mailbox `{}`", db.text(&config.mailboxes[i].name)),
            Owner::Group(i) => format!("group `{}`", db.text(&config.groups[i].name)),
        }
    }
}

/// Every mailbox and group with its addresses, mailboxes first, each list
/// in read order; the position in this order numbers a recipient.
fn recipients(config: &Config) -> impl Iterator<Item = (Owner, &[Spanned<Text>])> + '_ {
    let mailboxes = (config.mailboxes.iter().enumerate())
        .map(|(i, m)| (Owner::Mailbox(i), m.addresses.as_slice()));
    let groups =
        (config.groups.iter().enumerate()).map(|(i, g)| (Owner::Group(i), g.addresses.as_slice()));
    mailboxes.chain(groups)
}

/// Recipient number `n` of [`recipients`].
fn recipient(config: &Config, n: usize) -> Option<(Owner, &[Spanned<Text>])> {
    match n.checked_sub(config.mailboxes.len()) {
        None => Some((Owner::Mailbox(n), &config.mailboxes.get(n)?.addresses)),
        Some(g) => Some((Owner::Group(g), &config.groups.get(g)?.addresses)),
    }
}

/// Every recipient address with its owner, mailboxes first, each list in read order.
fn owned_addresses(config: &Config) -> impl Iterator<Item = (Owner, &Spanned<Text>)> + '_ {
    recipients(config).flat_map(|(owner, list)| list.iter().map(move |a| (owner, a)))
}

fn duplicates(cx: &mut Context<'_>) {
    let (db, config) = (cx.db, cx.config);
    // Sorting (hash, recipient, address) triples and comparing neighbours
    // finds the duplicates among 200,000 addresses without the random
    // memory access of a hash map; the text is compared only where hashes
    // agree.
    let count = recipients(config).map(|(_, list)| list.len()).sum();
    let mut order: Vec<(u64, u32, u32)> = Vec::with_capacity(count);
    for (n, (_, list)) in recipients(config).enumerate() {
        order.extend(list.iter().enumerate().map(|(i, a)| {
            let key = hash(&normalize(db.text(a)));
            (key, n as u32, i as u32)
        }));
    }
    order.sort_unstable();
    let mut run = 0;
    while run < order.len() {
        let end = order[run..]
            .iter()
            .position(|(h, _, _)| *h != order[run].0)
            .map_or(order.len(), |n| run + n);
        if end - run > 1 {
            same_hash(cx, &order[run..end]);
        }
        run = end;
    }
}

/// Reports the duplicates among addresses whose keys hash alike: each later
/// place (in source order) against the first place of the same address.
fn same_hash(cx: &mut Context<'_>, run: &[(u64, u32, u32)]) {
    let (db, config) = (cx.db, cx.config);
    let mut places: Vec<(Cow<'_, str>, Span, Owner, &str)> = run
        .iter()
        .filter_map(|&(_, n, i)| {
            let (owner, list) = recipient(config, n as usize)?;
            Some((owner, list.get(i as usize)?))
        })
        .map(|(owner, a)| (normalize(db.text(a)), a.span, owner, db.text(a)))
        .collect();
    places.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut first = 0;
    for i in 1..places.len() {
        if places[i].0 != places[first].0 {
            first = i;
            continue;
        }
        let (_, span, owner, text) = places[i];
        let earlier = (places[first].1, places[first].2);
        cx.report(duplicate(db, config, text, earlier, (span, owner)));
    }
}

fn hash(key: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = rustc_hash::FxBuildHasher.build_hasher();
    hasher.write(key.as_bytes());
    hasher.finish()
}

/// The finding for an address at `later` that was already at `earlier`.
fn duplicate(
    db: &SourceDb,
    config: &Config,
    address: &str,
    earlier: (Span, Owner),
    later: (Span, Owner),
) -> Diagnostic {
    if earlier.1 == later.1 {
        let owner = later.1.describe(db, config);
        return Diagnostic::warning(
            Code::DuplicateAddress,
            format!("`{address}` is listed twice for {owner}: the second entry has no effect"),
            Label::new(later.0, "listed again here"),
        )
        .with_label(Label::new(earlier.0, "first listed here"))
        .with_help("remove one of the two entries");
    }
    let first = earlier.1.describe(db, config);
    let second = later.1.describe(db, config);
    Diagnostic::error(
        Code::DuplicateAddress,
        format!(
            "`{address}` belongs to both {first} and {second}: mail for it could be delivered to only one of them"
        ),
        Label::new(later.0, format!("address of {second}")),
    )
    .with_label(Label::new(earlier.0, format!("already the address of {first}")))
    .with_help(format!(
        "an address belongs to exactly one recipient: remove it from one of them (to reach both, make `{address}` a group with both as members)"
    ))
}

fn foreign(cx: &mut Context<'_>) {
    let (db, config) = (cx.db, cx.config);
    if config.domains.is_empty() {
        return;
    }
    let locals: Vec<&str> = config
        .domains
        .iter()
        .map(|d| d.name.value.as_str())
        .collect();
    // Per foreign domain, its help line: computed once, only looked up.
    let mut helps: HashMap<&str, String> = HashMap::new();
    for (owner, address) in owned_addresses(config) {
        let text = db.text(address);
        let Some(domain) = domain_of(text) else {
            continue;
        };
        if is_local(config, domain) {
            continue;
        }
        let help = helps
            .entry(domain)
            .or_insert_with(|| match suggest::closest(domain, locals.iter().copied()) {
                Some(close) => format!(
                    "did you mean `{close}`? Otherwise declare the domain: `domain \"{domain}\" local`"
                ),
                None => format!(
                    "declare the domain if this gateway receives its mail: `domain \"{domain}\" local`; otherwise remove the address"
                ),
            })
            .clone();
        cx.report(
            Diagnostic::error(
                Code::ForeignAddress,
                format!(
                    "`{}` of {} is in `{domain}`, which is not a local domain: mail for it is relayed elsewhere and never reaches this recipient",
                    text,
                    owner.describe(db, config)
                ),
                Label::new(address.span, "domain is not local"),
            )
            .with_help(help),
        );
    }
}

/// The domain of `address` (after the last `@`), if it has one.
pub(super) fn domain_of(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, domain)| domain)
}

/// `address` as addresses compare: the domain lowercase, the local part as written.
pub(super) fn normalize(address: &str) -> Cow<'_, str> {
    match address.rsplit_once('@') {
        Some((local, domain)) if domain.bytes().any(|b| b.is_ascii_uppercase()) => {
            Cow::Owned(format!("{local}@{}", domain.to_ascii_lowercase()))
        }
        _ => Cow::Borrowed(address),
    }
}

/// True when `domain` is declared `domain "..." local`.
pub(super) fn is_local(config: &Config, domain: &str) -> bool {
    config
        .domains
        .iter()
        .any(|d| d.name.value.eq_ignore_ascii_case(domain))
}

/// True when some mailbox or group has `address`. A linear scan: meant for
/// the handful of single addresses (journal, postmaster, NDR copies) checked.
pub(super) fn is_recipient(db: &SourceDb, config: &Config, address: &str) -> bool {
    let key = normalize(address);
    owned_addresses(config).any(|(_, a)| normalize(db.text(a)) == key)
}

/// True when mail for unknown recipients in local domains is forwarded
/// (`unknown-recipients forward to ...`) instead of rejected.
pub(super) fn forwards_unknown(config: &Config) -> bool {
    matches!(
        config.unknown_recipients.as_ref().map(|u| &u.value),
        Some(UnknownRecipients::Forward { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::with_code;
    use crate::checks::testing::{at, second};
    use crate::diagnostic::Severity;

    const HEAD: &str =
        "backend \"mbx1\" { host \"10.0.0.11\"; lmtp 24 }\ndomain \"example.com\" local\n";

    #[test]
    fn address_on_two_recipients() {
        let t = format!(
            "{HEAD}mailbox \"alice\" on \"mbx1\" {{ address \"alice@example.com\" }}\n\
             mailbox \"alice2\" on \"mbx1\" {{ address \"bob@example.com\", \"alice@EXAMPLE.com\" }}\n"
        );
        let found = with_code(&t, Code::DuplicateAddress);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Error);
        assert_eq!(at(&t, &found[0]), "\"alice@EXAMPLE.com\"");
        assert_eq!(second(&t, &found[0]), "\"alice@example.com\"");
        assert!(found[0].message.contains("mailbox `alice`"));
        assert!(found[0].message.contains("mailbox `alice2`"));
    }

    #[test]
    fn group_before_mailbox_is_the_first_definition() {
        let t = format!(
            "{HEAD}group \"sales\" {{ address \"sales@example.com\"; member \"alice\" }}\n\
             mailbox \"alice\" on \"mbx1\" {{ address \"sales@example.com\" }}\n"
        );
        let found = with_code(&t, Code::DuplicateAddress);
        assert_eq!(found.len(), 1, "{found:?}");
        let secondary = found[0].secondary[0].span.start;
        assert!(
            found[0].primary.span.start > secondary,
            "primary must be the later one"
        );
        assert!(found[0].secondary[0].text.contains("group `sales`"));
    }

    #[test]
    fn local_part_case_matters_and_repeats_warn() {
        let t = format!(
            "{HEAD}mailbox \"a\" on \"mbx1\" {{ address \"alice@example.com\", \"Alice@example.com\" }}\n"
        );
        assert!(with_code(&t, Code::DuplicateAddress).is_empty());
        let t = format!(
            "{HEAD}mailbox \"a\" on \"mbx1\" {{ address \"alice@example.com\", \"alice@example.com\" }}\n"
        );
        let found = with_code(&t, Code::DuplicateAddress);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
    }

    #[test]
    fn three_copies_give_two_errors_against_the_first() {
        let t = format!(
            "{HEAD}mailbox \"a\" on \"mbx1\" {{ address \"x@example.com\" }}\n\
             mailbox \"b\" on \"mbx1\" {{ address \"x@example.com\" }}\n\
             group \"c\" {{ address \"x@example.com\"; member \"a\" }}\n"
        );
        let found = with_code(&t, Code::DuplicateAddress);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found
            .iter()
            .all(|d| d.secondary[0].text.contains("mailbox `a`")));
    }

    #[test]
    fn foreign_address() {
        let t = format!(
            "{HEAD}mailbox \"a\" on \"mbx1\" {{ address \"a@example.com\", \"a@exmaple.com\" }}\n\
             group \"g\" {{ address \"g@other.example\"; member \"a\", \"x@elsewhere.example\" }}\n"
        );
        let found = with_code(&t, Code::ForeignAddress);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(at(&t, &found[0]), "\"a@exmaple.com\"");
        assert!(found[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("did you mean `example.com`")));
        assert_eq!(at(&t, &found[1]), "\"g@other.example\"");
        assert!(found[1]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("domain \"other.example\" local")));
    }

    #[test]
    fn no_local_domain_no_foreign_check() {
        let t = "backend \"mbx1\" { host \"10.0.0.11\"; lmtp 24 }\n\
                 mailbox \"a\" on \"mbx1\" { address \"a@anything.example\" }\n";
        assert!(with_code(t, Code::ForeignAddress).is_empty());
    }

    #[test]
    fn clean_recipients() {
        let t = format!(
            "{HEAD}mailbox \"a\" on \"mbx1\" {{ address \"a@example.com\", \"a.smith@Example.COM\" }}\n\
             group \"g\" {{ address \"g@example.com\"; member \"a\" }}\n"
        );
        assert!(with_code(&t, Code::DuplicateAddress).is_empty());
        assert!(with_code(&t, Code::ForeignAddress).is_empty());
    }

    #[test]
    fn normalize_lowercases_only_the_domain() {
        assert_eq!(normalize("Alice@EXAMPLE.com"), "Alice@example.com");
        assert!(matches!(normalize("a@example.com"), Cow::Borrowed(_)));
        assert_eq!(normalize("\"a@b\"@X.example"), "\"a@b\"@x.example");
    }
}
