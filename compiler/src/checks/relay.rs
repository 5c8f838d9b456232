//! The relay rules: `mailgw::relay::open`, `mailgw::relay::by-address` and
//! `mailgw::relay::unreachable-rule`.
//!
//! **`mailgw::relay::open`** (error): an unauthenticated client anywhere on
//! the internet can relay to any domain. Spammers find such a gateway within
//! hours and it lands on every block list. It takes two things: an SMTP
//! listener that accepts mail without authentication (`auth off`, `auth
//! offer` or no `auth` statement) on an address that is not loopback, and a
//! relay rule that lets such a client through. The rules are walked top to
//! bottom, separately for IPv4 and IPv6 clients (a listener on `::` counts
//! for both): the first rule that matches *every* anonymous client of the
//! family sending to *every* domain decides. If it is an `allow`, the gateway
//! is an open relay. Such a rule has only conditions that everybody meets:
//! `from 0.0.0.0/0` or `from ::/0` (for its family), `to "*"`, and `sender`
//! (the envelope sender is chosen by the client, so it never restricts
//! anything). A `deny` with only `from` everything, `to "*"` and `sender
//! "*"` conditions stops the walk; a `deny` with a narrower `sender`
//! condition does not (the client picks another sender). With no `relay` block relaying is denied.
//!
//! **`mailgw::relay::by-address`**: `allow from NETWORK` without
//! `authenticated`. Client addresses are hard to judge on the internet and
//! easy to misjudge, so Exchange's guidance is not to allow relaying by
//! client IP address at all: a warning. For `0.0.0.0/0` and `::/0` it is an
//! error, since that is everybody; when that rule already is an open relay,
//! only the open relay is reported.
//!
//! **`mailgw::relay::unreachable-rule`** (warning): a rule that can never
//! match because an earlier rule matches every message it would. Rule B is
//! hidden by an earlier rule A when every condition of A is implied by one of
//! B: the same condition, `to "*"` / `sender "*"` (implied by any `to` /
//! `sender`), or a `from` network that contains B's. So `allow all` and
//! `deny all` hide every rule after them, and so does an identical rule.

use std::net::IpAddr;

use super::exposure;
use super::Context;
use crate::ast::ipnet::Network;
use crate::ast::{Action, Condition, Listener, RelayRule};
use crate::diagnostic::{Code, Diagnostic, Label, Severity};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let Some(relay) = &cx.config.relay else {
        return;
    };
    let open = open_relay_rules(&cx.config.listeners, &relay.rules);
    for &(rule_index, listener_index) in &open {
        let rule = &relay.rules[rule_index];
        let listener = &cx.config.listeners[listener_index];
        let listener_span = listener
            .auth
            .as_ref()
            .map_or(listener.name.span, |a| a.span);
        cx.report(
            Diagnostic::error(
                Code::OpenRelay,
                "this rule makes the gateway an open relay: any client on the internet may send mail \
                 through it to any domain without logging in",
                Label::new(rule.span, "allows anyone to relay"),
            )
            .with_label(Label::new(
                listener_span,
                format!("listener `{}` accepts mail without authentication", listener.name.value),
            ))
            .with_help("allow relaying for authenticated clients only: `allow authenticated`, then `deny all`"),
        );
    }
    for (index, rule) in relay.rules.iter().enumerate() {
        if rule.action.value != Action::Allow || needs_authentication(rule) {
            continue;
        }
        for condition in &rule.conditions {
            let Condition::From(network) = &condition.value else {
                continue;
            };
            let everything = network.is_everything();
            if everything && open.iter().any(|&(r, _)| r == index) {
                continue;
            }
            let (severity, message, label) = if everything {
                (
                    Severity::Error,
                    format!(
                        "`from {}/0` is every client on the internet: relaying must not depend on the client's address",
                        network.addr
                    ),
                    "every address",
                )
            } else {
                (
                    Severity::Warning,
                    if network.prefix == if network.addr.is_ipv4() { 32 } else { 128 } {
                        "relaying is allowed by client address: whoever gets to send from this address \
                         can relay, and addresses are hard to judge on the internet"
                            .to_owned()
                    } else {
                        "relaying is allowed by client address: every machine in the network becomes \
                         a relay, and addresses are hard to judge on the internet"
                            .to_owned()
                    },
                    "relay by address",
                )
            };
            cx.report(
                Diagnostic::new(
                    Code::RelayByAddress,
                    severity,
                    message,
                    Label::new(condition.span, label),
                )
                .with_help("let clients log in instead: `allow authenticated`"),
            );
        }
    }
    for (index, rule) in relay.rules.iter().enumerate() {
        let Some(earlier) = relay.rules[..index].iter().find(|e| hides(e, rule)) else {
            continue;
        };
        let what = if earlier.conditions.is_empty() {
            "matches everything"
        } else {
            "matches first"
        };
        cx.report(
            Diagnostic::warning(
                Code::RelayUnreachableRule,
                "this relay rule can never match: an earlier rule matches every message it would",
                Label::new(rule.span, "never reached"),
            )
            .with_label(Label::new(
                earlier.span,
                format!("this earlier rule {what}"),
            ))
            .with_help("remove the rule, or move it above the rule that hides it"),
        );
    }
}

/// True when the rule applies to authenticated clients only.
fn needs_authentication(rule: &RelayRule) -> bool {
    rule.conditions
        .iter()
        .any(|c| c.value == Condition::Authenticated)
}

/// The IP families a client can use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// The rules that let anonymous internet clients relay anywhere, each with a
/// listener such a client can reach, in rule order without duplicates.
fn open_relay_rules(listeners: &[Listener], rules: &[RelayRule]) -> Vec<(usize, usize)> {
    let mut open: Vec<(usize, usize)> = Vec::new();
    for family in [Family::V4, Family::V6] {
        let Some(listener) = listeners.iter().position(|l| {
            exposure::accepts_anonymous_smtp(l)
                && l.binds
                    .iter()
                    .any(|b| !exposure::is_loopback(b.value.ip()) && reaches(b.value.ip(), family))
        }) else {
            continue;
        };
        for (index, rule) in rules.iter().enumerate() {
            let sender_counts = rule.action.value == Action::Allow;
            if !rule
                .conditions
                .iter()
                .all(|c| matches_anyone(&c.value, family, sender_counts))
            {
                continue;
            }
            if rule.action.value == Action::Allow && !open.iter().any(|&(r, _)| r == index) {
                open.push((index, listener));
            }
            break;
        }
    }
    open.sort_unstable();
    open
}

/// True when clients of `family` can connect to a socket bound to `ip`: an
/// unspecified IPv6 address usually takes IPv4 clients too.
fn reaches(ip: IpAddr, family: Family) -> bool {
    match (exposure::canonical(ip), family) {
        (IpAddr::V4(_), Family::V4) | (IpAddr::V6(_), Family::V6) => true,
        (IpAddr::V6(v6), Family::V4) => v6.is_unspecified(),
        (IpAddr::V4(_), Family::V6) => false,
    }
}

/// True when every anonymous client of `family` sending to any domain meets
/// the condition. A `sender` condition is met when the client may choose the
/// sender to meet it (`allow`), and not when it may choose one to avoid it (`deny`).
fn matches_anyone(condition: &Condition, family: Family, sender_counts: bool) -> bool {
    match condition {
        Condition::Authenticated => false,
        Condition::From(network) => network.is_everything() && reaches_family(network, family),
        Condition::To(pattern) => pattern == "*",
        Condition::Sender(pattern) => sender_counts || pattern == "*",
    }
}

fn reaches_family(network: &Network, family: Family) -> bool {
    matches!(
        (network.addr, family),
        (IpAddr::V4(_), Family::V4) | (IpAddr::V6(_), Family::V6)
    )
}

/// True when `earlier` matches every message `later` matches.
fn hides(earlier: &RelayRule, later: &RelayRule) -> bool {
    earlier
        .conditions
        .iter()
        .all(|e| later.conditions.iter().any(|l| implies(&l.value, &e.value)))
}

/// True when a message meeting `strong` always meets `weak`.
fn implies(strong: &Condition, weak: &Condition) -> bool {
    match (strong, weak) {
        (Condition::From(inner), Condition::From(outer)) => contains(outer, inner),
        (Condition::To(_), Condition::To(w)) | (Condition::Sender(_), Condition::Sender(w))
            if w == "*" =>
        {
            true
        }
        _ => strong == weak,
    }
}

/// True when network `outer` contains every address of network `inner`.
fn contains(outer: &Network, inner: &Network) -> bool {
    if outer.prefix > inner.prefix {
        return false;
    }
    match (outer.addr, inner.addr) {
        (IpAddr::V4(o), IpAddr::V4(i)) => {
            let shift = 32 - u32::from(outer.prefix);
            u32::from(o).checked_shr(shift).unwrap_or(0)
                == u32::from(i).checked_shr(shift).unwrap_or(0)
        }
        (IpAddr::V6(o), IpAddr::V6(i)) => {
            let shift = 128 - u32::from(outer.prefix);
            u128::from(o).checked_shr(shift).unwrap_or(0)
                == u128::from(i).checked_shr(shift).unwrap_or(0)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::at;
    use crate::checks::testing::{findings, with_code};

    const MX: &str = "listener \"mx\" { protocol smtp; bind 0.0.0.0:25, [::]:25; auth off }\n";

    fn text(rules: &str) -> String {
        format!("{MX}relay {{\n{rules}\n}}\n")
    }

    #[test]
    fn allow_all_is_an_open_relay() {
        let t = text("allow all");
        let found = with_code(&t, Code::OpenRelay);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(&t, &found[0]), "allow all");
        assert_eq!(found[0].secondary.len(), 1);
        assert!(with_code(&t, Code::RelayByAddress).is_empty());
    }

    #[test]
    fn sender_conditions_do_not_restrict_allow() {
        let t = text("allow sender \"*@example.com\"\ndeny all");
        let found = with_code(&t, Code::OpenRelay);
        assert_eq!(found.len(), 1);
        assert_eq!(at(&t, &found[0]), "allow sender \"*@example.com\"");
    }

    #[test]
    fn everything_network_is_reported_once_as_open_relay() {
        let t = text("allow from 0.0.0.0/0\ndeny all");
        assert_eq!(with_code(&t, Code::OpenRelay).len(), 1);
        assert!(with_code(&t, Code::RelayByAddress).is_empty());
    }

    #[test]
    fn ipv6_hole_after_ipv4_deny() {
        let t = text("deny from 0.0.0.0/0\nallow from ::/0");
        let found = with_code(&t, Code::OpenRelay);
        assert_eq!(found.len(), 1);
        assert_eq!(at(&t, &found[0]), "allow from ::/0");
    }

    #[test]
    fn safe_rule_sets_are_not_open_relays() {
        for rules in [
            "allow authenticated\ndeny all",
            "deny all\nallow all",
            "allow to \"*.tochter.example\"\ndeny all",
            "allow from 10.0.0.0/8\ndeny all",
            "deny sender \"*@spam.example\"\nallow authenticated",
            "deny from ::/0 and sender \"*\"\ndeny from 0.0.0.0/0\nallow all",
        ] {
            let t = text(rules);
            assert!(
                with_code(&t, Code::OpenRelay).is_empty(),
                "{rules}: {:?}",
                findings(&t)
            );
        }
    }

    #[test]
    fn deny_with_sender_does_not_stop_the_walk() {
        let t = text("deny sender \"*@spam.example\"\nallow all");
        assert_eq!(with_code(&t, Code::OpenRelay).len(), 1);
    }

    #[test]
    fn no_anonymous_listener_no_open_relay() {
        let t = "listener \"sub\" { protocol smtp; bind 0.0.0.0:587; auth require }\n\
                 listener \"local\" { protocol smtp; bind 127.0.0.1:2525; auth off }\n\
                 relay { allow all }";
        assert!(with_code(t, Code::OpenRelay).is_empty());
    }

    #[test]
    fn relay_by_address() {
        let t =
            text("allow from 192.168.1.0/24\nallow from 0.0.0.0/0 and to \"*.example\"\ndeny all");
        let found = with_code(&t, Code::RelayByAddress);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(at(&t, &found[0]), "from 192.168.1.0/24");
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(at(&t, &found[1]), "from 0.0.0.0/0");
        assert_eq!(found[1].severity, Severity::Error);
        let t = text("allow authenticated and from 10.0.0.0/8\ndeny all");
        assert!(with_code(&t, Code::RelayByAddress).is_empty());
    }

    #[test]
    fn unreachable_rules() {
        let t = text(
            "allow authenticated\ndeny from 10.0.0.0/8\ndeny from 10.1.0.0/16 and to \"x.example\"\n\
             allow authenticated\ndeny all\nallow to \"y.example\"",
        );
        let found = with_code(&t, Code::RelayUnreachableRule);
        let spans: Vec<String> = found.iter().map(|d| at(&t, d)).collect();
        assert_eq!(
            spans,
            [
                "deny from 10.1.0.0/16 and to \"x.example\"",
                "allow authenticated",
                "allow to \"y.example\""
            ]
        );
        assert!(found.iter().all(|d| d.secondary.len() == 1));
        let t = text("allow authenticated\ndeny from 10.0.0.0/8\ndeny all");
        assert!(with_code(&t, Code::RelayUnreachableRule).is_empty());
    }
}
