//! Connector address spaces: `mailgw::connector::shadowed` and, for relayed
//! mail without a route, `mailgw::route::unroutable`.
//!
//! **`mailgw::connector::shadowed`** (warning): an address space that can
//! never be chosen. For a recipient domain the most specific matching address
//! space wins; among equally specific ones the lowest cost, where equal costs
//! share the load and higher costs are failover tiers. So the same pattern on
//! two *different* connectors is never shadowed: with equal costs they share
//! the load, with different costs the dearer one is the failover. What can
//! never be chosen:
//! - the same pattern twice in one connector: the entry with the higher cost
//!   (the later one when the costs are equal) would only fail over from the
//!   connector to itself;
//! - an exact domain that is a `local` domain: mail to local domains is
//!   delivered to mailboxes and never relayed, so no connector carries it.
//!
//! **`mailgw::route::unroutable`** (warning, from this check): a relay rule
//! allows relaying to recipients that no connector serves, so the gateway
//! would accept the mail and then bounce it. An `allow` rule without a `to`
//! condition (or with `to "*"`) needs a connector with the address space `*`;
//! an `allow` rule with `to PATTERN` needs an address space that covers the
//! pattern (`*`, the same `*.suffix` or a shorter one, or the exact domain).
//! Patterns in local domains are not relaying and need no connector. Rules
//! after an unconditional rule are never reached and not checked.

use super::Context;
use crate::ast::{Action, Condition, Config};
use crate::diagnostic::{Code, Diagnostic, Label};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    shadowed(cx);
    unroutable(cx);
}

fn shadowed(cx: &mut Context<'_>) {
    let mut found = Vec::new();
    for connector in &cx.config.connectors {
        let spaces = &connector.address_spaces;
        for (i, space) in spaces.iter().enumerate() {
            // The entry that hides this one: same pattern, lower cost or
            // equal cost and earlier.
            let hidden_by = spaces.iter().enumerate().find(|&(j, other)| {
                j != i
                    && other.pattern.value == space.pattern.value
                    && (other.cost.value < space.cost.value
                        || (other.cost.value == space.cost.value && j < i))
            });
            if let Some((_, other)) = hidden_by {
                found.push(
                    Diagnostic::warning(
                        Code::ShadowedAddressSpace,
                        format!(
                            "connector `{}` has the address space `{}` twice: this entry is never chosen, \
                             since failing over from a connector to itself gains nothing",
                            connector.name.value, space.pattern.value
                        ),
                        Label::new(space.span, "never chosen"),
                    )
                    .with_label(Label::new(other.span, "this entry is chosen first"))
                    .with_help("remove one of the two entries"),
                );
                continue;
            }
            if let Some(domain) = cx
                .config
                .domains
                .iter()
                .find(|d| d.name.value == space.pattern.value)
            {
                found.push(
                    Diagnostic::warning(
                        Code::ShadowedAddressSpace,
                        format!(
                            "the address space `{}` of connector `{}` is never chosen: mail to a local \
                             domain is delivered to its mailboxes, never relayed",
                            space.pattern.value, connector.name.value
                        ),
                        Label::new(space.pattern.span, "a local domain"),
                    )
                    .with_label(Label::new(domain.span, "declared local here"))
                    .with_help(
                        "remove the address space; if the domain's mail belongs to another server, \
                         drop `local` from the domain",
                    ),
                );
            }
        }
    }
    for diagnostic in found {
        cx.report(diagnostic);
    }
}

fn unroutable(cx: &mut Context<'_>) {
    let Some(relay) = &cx.config.relay else {
        return;
    };
    let mut found = Vec::new();
    for rule in &relay.rules {
        if rule.action.value == Action::Allow {
            let targets: Vec<_> = rule
                .conditions
                .iter()
                .filter_map(|c| match &c.value {
                    Condition::To(pattern) => Some((pattern.as_str(), c.span)),
                    _ => None,
                })
                .collect();
            // The recipients must meet every `to`: one routable pattern is enough.
            let unrouted = if targets.is_empty() {
                (!routable(cx.config, "*")).then_some(("*", rule.span))
            } else if targets.iter().any(|(p, _)| routable(cx.config, p)) {
                None
            } else {
                targets.first().copied()
            };
            if let Some((pattern, span)) = unrouted {
                let message = if pattern == "*" {
                    "this rule allows relaying to any domain, but no connector has the address space `*`: \
                     mail relayed to other domains has no way out"
                        .to_owned()
                } else {
                    format!(
                        "this rule allows relaying to `{pattern}`, but no connector's address space covers it: \
                         such mail has no way out"
                    )
                };
                let label = if cx.config.connectors.is_empty() {
                    "there is no connector at all"
                } else {
                    "no connector for these recipients"
                };
                found.push(
                    Diagnostic::warning(Code::Unroutable, message, Label::new(span, label)).with_help(format!(
                        "add a connector for it, e.g. `connector \"internet\" {{ address-space \"{}\" cost 1; \
                         deliver mx }}`, or narrow the rule with `to`",
                        if pattern == "*" { "*" } else { domain_part(pattern) }
                    )),
                );
            }
        }
        if rule.conditions.is_empty() {
            break;
        }
    }
    for diagnostic in found {
        cx.report(diagnostic);
    }
}

/// The domain part of a recipient pattern: `*`, `*.suffix` or a domain.
fn domain_part(pattern: &str) -> &str {
    pattern
        .rsplit_once('@')
        .map_or(pattern, |(_, domain)| domain)
}

/// True when the recipients `pattern` stands for are local or covered by a
/// connector's address space.
fn routable(config: &Config, pattern: &str) -> bool {
    let domain = domain_part(pattern);
    if config.domains.iter().any(|d| d.name.value == domain) {
        return true;
    }
    config
        .connectors
        .iter()
        .flat_map(|c| &c.address_spaces)
        .any(|space| covers(&space.pattern.value, domain))
}

/// True when the address space `space` matches every domain of `domain`
/// (itself `*`, `*.suffix` or an exact domain). `*.suffix` matches
/// subdomains at any depth, not the suffix itself.
fn covers(space: &str, domain: &str) -> bool {
    if space == "*" {
        return true;
    }
    if domain == "*" {
        return false;
    }
    let Some(parent) = space.strip_prefix("*.") else {
        return space == domain;
    };
    let tail = domain.strip_prefix("*.").unwrap_or(domain);
    (domain.starts_with("*.") && tail == parent) || tail.ends_with(&format!(".{parent}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::at;
    use crate::checks::testing::{findings, with_code};
    use crate::diagnostic::Severity;

    #[test]
    fn duplicate_pattern_in_one_connector() {
        let t = "connector \"out\" {\n address-space \"*\" cost 5\n address-space \"*\" cost 1\n deliver mx\n}";
        let found = with_code(t, Code::ShadowedAddressSpace);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(t, &found[0]), "address-space \"*\" cost 5");
        assert_eq!(found[0].severity, Severity::Warning);
        let other = found[0]
            .secondary
            .first()
            .map(|l| l.span)
            .expect("the other entry");
        assert_eq!(
            &t[other.start as usize..other.end as usize],
            "address-space \"*\" cost 1"
        );
    }

    #[test]
    fn same_pattern_on_two_connectors_is_load_sharing_or_failover() {
        let t = "connector \"a\" { address-space \"*\" cost 1; deliver mx }\n\
                 connector \"b\" { address-space \"*\" cost 1; deliver mx }\n\
                 connector \"c\" { address-space \"*\" cost 2; deliver mx }";
        assert!(
            with_code(t, Code::ShadowedAddressSpace).is_empty(),
            "{:?}",
            findings(t)
        );
    }

    #[test]
    fn local_domain_as_address_space() {
        let t = "domain \"example.com\" local\n\
                 connector \"a\" { address-space \"example.com\" cost 1; address-space \"*.example.com\" cost 1; deliver mx }";
        let found = with_code(t, Code::ShadowedAddressSpace);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(t, &found[0]), "\"example.com\"");
    }

    #[test]
    fn relay_to_anything_without_a_star_connector() {
        let t = "connector \"tochter\" { address-space \"*.tochter.example\" cost 1; deliver mx port 26 }\n\
                 relay { allow authenticated; deny all }";
        let found = with_code(t, Code::Unroutable);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(t, &found[0]), "allow authenticated");
        assert_eq!(found[0].severity, Severity::Warning);
        let t = "connector \"out\" { address-space \"*\" cost 1; deliver mx }\n\
                 relay { allow authenticated; deny all }";
        assert!(with_code(t, Code::Unroutable).is_empty());
    }

    #[test]
    fn relay_to_a_pattern_needs_a_covering_space() {
        let t = "connector \"tochter\" { address-space \"*.tochter.example\" cost 1; deliver mx port 26 }\n\
                 relay {\n allow authenticated and to \"*.berlin.tochter.example\"\n \
                 allow authenticated and to \"bob@partner.example\"\n deny all\n}";
        let found = with_code(t, Code::Unroutable);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(t, &found[0]), "to \"bob@partner.example\"");
    }

    #[test]
    fn coverage() {
        assert!(covers("*", "*"));
        assert!(covers("*.example", "a.b.example"));
        assert!(covers("*.example", "*.example"));
        assert!(covers("*.example", "*.b.example"));
        assert!(!covers("*.example", "example"));
        assert!(!covers("*.b.example", "*.example"));
        assert!(!covers("example", "*"));
        assert!(covers("example", "example"));
    }
}
