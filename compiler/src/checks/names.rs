//! Names: `mailgw::name::duplicate` and `mailgw::reference::unknown`.
//!
//! **`mailgw::name::duplicate`** (error): two listeners, backends, connectors,
//! TLS profiles, mailboxes or groups with one name. Everything that names one
//! of them (a listener's TLS profile, a mailbox's backend, a group member, a
//! connector's delivery restriction, the runtime's logs) could not tell the two
//! apart. Mailboxes and groups share one namespace, since a group member names
//! either. The finding points at the later definition and shows the first.
//!
//! **`mailgw::reference::unknown`** (error): a name used but never defined —
//! a listener's TLS profile, a mailbox's backend, a group member that is not
//! an address (has no `@`) and names no mailbox or group, or a connector's
//! `accept-from` / `reject-from` `mailbox "..."` or `group "..."`. Such a
//! reference cannot be resolved, so the configuration cannot be built. The
//! help suggests the closest defined name of that kind when one is likely a
//! typo, and otherwise lists a few defined names.

use std::collections::{BTreeSet, HashMap};

use super::{Context, NameTable};
use crate::ast::SenderRef;
use crate::diagnostic::{Code, Diagnostic, Label};
use crate::source::Span;
use crate::suggest;

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let (config, names) = (cx.config, &cx.names);
    let mut found = Vec::new();
    repeated(&mut found, &names.tls, |i| {
        ("TLS profile", config.tls[i].name.span)
    });
    repeated(&mut found, &names.listeners, |i| {
        ("listener", config.listeners[i].name.span)
    });
    repeated(&mut found, &names.backends, |i| {
        ("backend", config.backends[i].name.span)
    });
    repeated(&mut found, &names.connectors, |i| {
        ("connector", config.connectors[i].name.span)
    });
    mailboxes_and_groups(&mut found, cx);
    for diagnostic in found {
        cx.report(diagnostic);
    }
    unknown(cx);
}

/// Reports the names of one kind that `table` has more than once; `place`
/// gives the kind and the name's span of a definition.
fn repeated(
    found: &mut Vec<Diagnostic>,
    table: &NameTable<'_>,
    place: impl Fn(usize) -> (&'static str, Span),
) {
    for name in table.repeated() {
        duplicates(found, name, table.definitions(name).map(&place));
    }
}

/// Reports the names of mailboxes and groups, which share one namespace,
/// defined more than once: twice as one kind, or as both.
fn mailboxes_and_groups(found: &mut Vec<Diagnostic>, cx: &Context<'_>) {
    let (db, config, names) = (cx.db, cx.config, &cx.names);
    let mailbox = |i: usize| ("mailbox", config.mailboxes[i].name.span);
    let group = |i: usize| ("group", config.groups[i].name.span);
    let mut twice: BTreeSet<&str> = names.mailboxes.repeated().collect();
    twice.extend(names.groups.repeated());
    twice.extend(
        config
            .groups
            .iter()
            .map(|g| db.text(&g.name))
            .filter(|name| names.mailboxes.contains_key(name)),
    );
    for name in twice {
        let mailboxes = names.mailboxes.definitions(name).map(mailbox);
        duplicates(
            found,
            name,
            mailboxes.chain(names.groups.definitions(name).map(group)),
        );
    }
}

/// Reports each definition of `name` but the first: `definitions` are the
/// kind and span of each, mailboxes before groups, each kind in definition
/// order. Each is reported against the earliest place in the sources seen
/// before it, whichever list (mailboxes or groups) that came from.
fn duplicates(
    found: &mut Vec<Diagnostic>,
    name: &str,
    definitions: impl Iterator<Item = (&'static str, Span)>,
) {
    let mut first: Option<(&'static str, Span)> = None;
    for (kind, span) in definitions {
        let Some(seen) = first else {
            first = Some((kind, span));
            continue;
        };
        let (earlier, later) = if seen.1 <= span {
            (seen, (kind, span))
        } else {
            first = Some((kind, span));
            ((kind, span), seen)
        };
        let message = if earlier.0 == later.0 {
            format!(
                "two {} are named `{}`: references to the name cannot tell them apart",
                plural(later.0),
                name
            )
        } else {
            format!(
                "a {} and a {} are both named `{}`: a group member `{}` could mean either",
                earlier.0, later.0, name, name
            )
        };
        found.push(
            Diagnostic::error(
                Code::DuplicateName,
                message,
                Label::new(
                    later.1,
                    format!("{} `{}` defined again here", later.0, name),
                ),
            )
            .with_label(Label::new(
                earlier.1,
                format!("{} `{}` first defined here", earlier.0, name),
            ))
            .with_help("rename one of them (and the references meant for it)"),
        );
    }
}

/// The defined names of one kind, for suggestions.
struct Kind<'n, 'a> {
    /// `backend`, `TLS profile`, ...
    singular: &'static str,
    /// `backends`, `TLS profiles`, ...
    plural: &'static str,
    /// The tables of defined names.
    names: Vec<&'n NameTable<'a>>,
    /// How to define one, with `{}` for the name.
    example: &'static str,
}

impl Kind<'_, '_> {
    fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.contains_key(name))
    }

    /// The help line for an unknown `name` of this kind.
    fn help(&self, name: &str) -> String {
        let candidates = || self.names.iter().flat_map(|n| n.keys());
        if let Some(close) = suggest::closest(name, candidates()) {
            return format!("did you mean `{close}`?");
        }
        let total: usize = self.names.iter().map(|n| n.len()).sum();
        if total == 0 {
            return format!(
                "no {} is defined; define it: {}",
                self.singular,
                self.example.replace("{}", name)
            );
        }
        const SHOWN: usize = 5;
        let mut list: Vec<String> = candidates().take(SHOWN).map(|n| format!("`{n}`")).collect();
        if total > SHOWN {
            list.push(format!("and {} more", total - SHOWN));
        }
        format!("the defined {} are {}", self.plural, list.join(", "))
    }
}

fn unknown(cx: &mut Context<'_>) {
    let (db, config) = (cx.db, cx.config);
    let names = &cx.names;
    let tls = Kind {
        singular: "TLS profile",
        plural: "TLS profiles",
        names: vec![&names.tls],
        example: "`tls \"{}\" { certificate \"cert.pem\"; key \"cert.key\" }`",
    };
    let backends = Kind {
        singular: "backend",
        plural: "backends",
        names: vec![&names.backends],
        example: "`backend \"{}\" { host \"10.0.0.11\"; lmtp 24 }`",
    };
    let mailboxes = Kind {
        singular: "mailbox",
        plural: "mailboxes",
        names: vec![&names.mailboxes],
        example: "`mailbox \"{}\" on \"BACKEND\" { address \"{}@example.com\" }`",
    };
    let groups = Kind {
        singular: "group",
        plural: "groups",
        names: vec![&names.groups],
        example: "`group \"{}\" { member \"MAILBOX\" }`",
    };
    let members = Kind {
        singular: "mailbox or group",
        plural: "mailboxes and groups",
        names: vec![&names.mailboxes, &names.groups],
        example: "`mailbox \"{}\" on \"BACKEND\"`, or write an address with `@`",
    };
    let mut found = Vec::new();
    // Help lines per kind and name: a wrong backend on thousands of directory
    // mailboxes is looked up once. Only looked up, never iterated.
    let mut helps: HashMap<(&'static str, String), String> = HashMap::new();
    let mut report = |kind: &Kind<'_, '_>, name: &str, span: Span, message: String| {
        let help = helps
            .entry((kind.singular, name.to_owned()))
            .or_insert_with(|| kind.help(name))
            .clone();
        found.push(
            Diagnostic::error(
                Code::UnknownReference,
                message,
                Label::new(span, format!("no {} has this name", kind.singular)),
            )
            .with_help(help),
        );
    };

    for listener in &config.listeners {
        let profile = listener.tls.as_ref().and_then(|t| t.value.profile.as_ref());
        if let Some(profile) = profile.filter(|p| !tls.contains(&p.value)) {
            let message = format!(
                "listener `{}` uses the TLS profile `{}`, which is not defined: it has no certificate to offer",
                listener.name.value, profile.value
            );
            report(&tls, &profile.value, profile.span, message);
        }
    }
    for mailbox in &config.mailboxes {
        let backend = db.text(&mailbox.backend);
        if !backends.contains(backend) {
            let message = format!(
                "mailbox `{}` is on the backend `{backend}`, which is not defined: its mail has nowhere to go",
                db.text(&mailbox.name)
            );
            report(&backends, backend, mailbox.backend.span, message);
        }
    }
    for group in &config.groups {
        for member in &group.members {
            let name = db.text(member);
            if name.contains('@') || members.contains(name) {
                continue;
            }
            let message = format!(
                "group `{}` has the member `{name}`, which is no mailbox or group: mail to the group cannot reach it",
                db.text(&group.name)
            );
            report(&members, name, member.span, message);
        }
    }
    for connector in &config.connectors {
        let restrictions = connector
            .accept_from
            .iter()
            .map(|s| ("accept-from", s))
            .chain(connector.reject_from.iter().map(|s| ("reject-from", s)));
        for (statement, sender) in restrictions {
            let (kind, name) = match &sender.value {
                SenderRef::Mailbox(name) => (&mailboxes, name),
                SenderRef::Group(name) => (&groups, name),
                SenderRef::Pattern(_) => continue,
            };
            if kind.contains(name) {
                continue;
            }
            let message = format!(
                "connector `{}` names the {} `{name}` in `{statement}`, which is not defined: the restriction cannot be applied",
                connector.name.value, kind.singular
            );
            report(kind, name, sender.span, message);
        }
    }
    for diagnostic in found {
        cx.report(diagnostic);
    }
}

/// The plural of a kind of named item.
fn plural(kind: &str) -> String {
    match kind {
        "mailbox" => "mailboxes".to_owned(),
        _ => format!("{kind}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{at, second};
    use crate::checks::testing::{findings, with_code};

    const BACKEND: &str = "backend \"mbx1\" { host \"10.0.0.11\"; lmtp 24 }\n";

    #[test]
    fn duplicate_listeners_and_backends() {
        let t = format!(
            "listener \"mx\" {{ protocol smtp; bind 0.0.0.0:25 }}\n\
             listener \"mx\" {{ protocol smtp; bind 0.0.0.0:587 }}\n\
             {BACKEND}backend \"mbx1\" {{ host \"10.0.0.12\"; lmtp 24 }}\n"
        );
        let found = with_code(&t, Code::DuplicateName);
        assert_eq!(found.len(), 2, "{found:?}");
        for d in &found {
            assert!(d.primary.span.start > d.secondary[0].span.start);
        }
        assert_eq!(at(&t, &found[0]), "\"mx\"");
        assert!(found[0].message.contains("listeners"));
        assert_eq!(at(&t, &found[1]), "\"mbx1\"");
    }

    #[test]
    fn mailbox_and_group_share_a_namespace() {
        let t = format!(
            "{BACKEND}group \"sales\" {{ member \"bob@example.org\" }}\n\
             mailbox \"sales\" on \"mbx1\"\n"
        );
        let found = with_code(&t, Code::DuplicateName);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].primary.text.starts_with("mailbox"));
        assert!(found[0].secondary[0].text.starts_with("group"));
        assert_eq!(second(&t, &found[0]), "\"sales\"");
    }

    #[test]
    fn every_later_definition_against_the_first_before_it() {
        let t = format!(
            "{BACKEND}mailbox \"a\" on \"mbx1\"\n\
             group \"a\" {{ member \"x@example.org\" }}\n\
             mailbox \"a\" on \"mbx1\"\n\
             group \"a\" {{ member \"y@example.org\" }}\n"
        );
        let found = with_code(&t, Code::DuplicateName);
        let pairs: Vec<(u32, u32)> = found
            .iter()
            .map(|d| {
                let line = |offset: u32| t[..offset as usize].matches('\n').count() as u32 + 1;
                let later = line(d.primary.span.start);
                (later, line(d.secondary[0].span.start))
            })
            .collect();
        assert_eq!(pairs, [(3, 2), (4, 2), (5, 2)], "{found:?}");
        assert!(found[0].message.starts_with("a mailbox and a group"));
        assert!(found[1].message.starts_with("two mailboxes"));
        assert!(found[2].message.starts_with("a mailbox and a group"));
    }

    #[test]
    fn same_name_different_kinds_is_fine() {
        let t = format!(
            "{BACKEND}mailbox \"mbx1\" on \"mbx1\"\nlistener \"mbx1\" {{ protocol smtp; bind 0.0.0.0:25 }}\n"
        );
        assert!(with_code(&t, Code::DuplicateName).is_empty());
    }

    #[test]
    fn unknown_backend_with_suggestion() {
        let t = format!("{BACKEND}mailbox \"alice\" on \"mbx2\"\nmailbox \"bob\" on \"storage\"\n");
        let found = with_code(&t, Code::UnknownReference);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(at(&t, &found[0]), "\"mbx2\"");
        assert_eq!(found[0].help.as_deref(), Some("did you mean `mbx1`?"));
        assert_eq!(at(&t, &found[1]), "\"storage\"");
        assert_eq!(
            found[1].help.as_deref(),
            Some("the defined backends are `mbx1`")
        );
    }

    #[test]
    fn unknown_tls_profile() {
        let t = "tls \"public\" { self-signed }\n\
                 listener \"mx\" { protocol smtp; bind 0.0.0.0:25; tls starttls offer \"pubilc\" }\n";
        let found = with_code(t, Code::UnknownReference);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(t, &found[0]), "\"pubilc\"");
        assert_eq!(found[0].help.as_deref(), Some("did you mean `public`?"));
        let t = "listener \"mx\" { protocol smtp; bind 0.0.0.0:25; tls implicit \"public\" }\n";
        let found = with_code(t, Code::UnknownReference);
        assert!(found[0]
            .help
            .as_deref()
            .is_some_and(|h| h.starts_with("no TLS profile is defined")));
    }

    #[test]
    fn unknown_group_member() {
        let t = format!(
            "{BACKEND}mailbox \"alice\" on \"mbx1\"\ngroup \"team\" {{ member \"alice\" }}\n\
             group \"sales\" {{ member \"alcie\", \"team\", \"tema\", \"bob@example.org\", \"zzzzzz\" }}\n"
        );
        let found = with_code(&t, Code::UnknownReference);
        let spans: Vec<String> = found.iter().map(|d| at(&t, d)).collect();
        assert_eq!(spans, ["\"alcie\"", "\"tema\"", "\"zzzzzz\""]);
        assert_eq!(found[0].help.as_deref(), Some("did you mean `alice`?"));
        assert_eq!(found[1].help.as_deref(), Some("did you mean `team`?"));
        assert!(found[2]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("`alice`") && h.contains("`team`")));
    }

    #[test]
    fn unknown_connector_restrictions() {
        let t = format!(
            "{BACKEND}mailbox \"alice\" on \"mbx1\"\ngroup \"staff\" {{ member \"alice\" }}\n\
             connector \"internet\" {{\n  address-space \"*\" cost 1\n  deliver mx\n\
             accept-from group \"stafff\", mailbox \"alice\", \"*@example.com\"\n\
             reject-from mailbox \"staff\"\n}}\n"
        );
        let found = with_code(&t, Code::UnknownReference);
        let spans: Vec<String> = found.iter().map(|d| at(&t, d)).collect();
        assert_eq!(
            spans,
            ["group \"stafff\"", "mailbox \"staff\""],
            "{found:?}"
        );
        assert_eq!(found[0].help.as_deref(), Some("did you mean `staff`?"));
    }

    #[test]
    fn many_names_are_abbreviated() {
        let mut t = String::new();
        for i in 0..8 {
            t.push_str(&format!(
                "backend \"b{i}\" {{ host \"10.0.0.{i}\"; lmtp 24 }}\n"
            ));
        }
        t.push_str("mailbox \"x\" on \"storage-cluster\"\n");
        let found = with_code(&t, Code::UnknownReference);
        assert_eq!(
            found[0].help.as_deref(),
            Some("the defined backends are `b0`, `b1`, `b2`, `b3`, `b4`, and 3 more")
        );
    }

    #[test]
    fn the_example_references_resolve() {
        let t = format!(
            "tls \"public\" {{ self-signed }}\n{BACKEND}\
             listener \"mx\" {{ protocol smtp; bind 0.0.0.0:25; tls starttls offer \"public\" }}\n\
             mailbox \"alice\" on \"mbx1\"\ngroup \"sales\" {{ member \"alice\", \"bob@example.org\" }}\n\
             group \"all\" {{ member \"sales\" }}\n\
             connector \"c\" {{ address-space \"*\" cost 1; deliver mx; accept-from group \"all\", mailbox \"alice\" }}\n"
        );
        let all = findings(&t);
        assert!(
            all.iter()
                .all(|d| d.code != Code::UnknownReference && d.code != Code::DuplicateName),
            "{all:?}"
        );
    }
}
