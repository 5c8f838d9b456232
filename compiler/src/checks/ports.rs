//! `mailgw::listener::port-conflict` (error): two binds that take the same
//! address and port.
//!
//! Two listeners — or one listener listing a bind twice — on the same address
//! and port cannot both bind: the gateway would fail to start. A wildcard
//! address takes the port on every address of its family, so `0.0.0.0:25`
//! overlaps every IPv4 `x:25`, and `[::]:25` overlaps every IPv6 `[x]:25`.
//!
//! `[::]:25` and `0.0.0.0:25` together do *not* conflict: mailgw binds every
//! IPv6 socket with `IPV6_V6ONLY`, so `[::]` takes IPv6 only (unlike the
//! Linux default, where it would take IPv4 too), and listing both is the way
//! to listen on both families.
//!
//! Each conflicting bind is reported once, at the later bind, against the
//! first earlier bind it overlaps.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::Context;
use crate::diagnostic::{Code, Diagnostic, Label};
use crate::source::Spanned;

/// A bind: the listener's index and the address as written.
type Bind<'a> = (usize, &'a Spanned<SocketAddr>);

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let config = cx.config;
    // Binds by port and family, each in the order written.
    let mut by_port: BTreeMap<(u16, bool), Vec<Bind<'_>>> = BTreeMap::new();
    for (index, listener) in config.listeners.iter().enumerate() {
        for bind in &listener.binds {
            let key = (bind.value.port(), bind.value.is_ipv6());
            by_port.entry(key).or_default().push((index, bind));
        }
    }
    let mut found = Vec::new();
    for binds in by_port.values() {
        for (i, &(index, bind)) in binds.iter().enumerate() {
            let Some(&(earlier_index, earlier)) = binds[..i]
                .iter()
                .find(|(_, e)| overlaps(e.value.ip(), bind.value.ip()))
            else {
                continue;
            };
            let listener = &config.listeners[index].name.value;
            let other = &config.listeners[earlier_index].name.value;
            let (a, b) = (earlier.value, bind.value);
            let message = if index == earlier_index && a == b {
                format!("listener `{listener}` binds `{b}` twice: the second bind fails and the gateway cannot start")
            } else if index == earlier_index {
                format!(
                    "listener `{listener}` binds both `{a}` and `{b}`, which overlap: {}",
                    why(a, b)
                )
            } else if a == b {
                format!(
                    "listeners `{other}` and `{listener}` both bind `{b}`: only one socket can have it, so the gateway cannot start"
                )
            } else {
                format!(
                    "listener `{listener}` binds `{b}`, which overlaps `{a}` of listener `{other}`: {}",
                    why(a, b)
                )
            };
            let help = if a.ip().is_unspecified() || b.ip().is_unspecified() {
                format!(
                    "bind only specific addresses on port {}, or move one of the listeners to another port",
                    b.port()
                )
            } else if index == earlier_index {
                "remove one of the two binds".to_owned()
            } else {
                format!(
                    "move one of the listeners to another port, or merge them into one listener (port {})",
                    b.port()
                )
            };
            found.push(
                Diagnostic::error(
                    Code::PortConflict,
                    message,
                    Label::new(bind.span, "bound again here"),
                )
                .with_label(Label::new(
                    earlier.span,
                    format!("already bound by listener `{other}`"),
                ))
                .with_help(help),
            );
        }
    }
    for diagnostic in found {
        cx.report(diagnostic);
    }
}

/// True when two addresses of one family cannot both be bound on one port.
fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

/// Why two different, overlapping addresses conflict.
fn why(a: SocketAddr, b: SocketAddr) -> String {
    let (wildcard, other) = if a.ip().is_unspecified() {
        (a, b)
    } else {
        (b, a)
    };
    let family = if wildcard.is_ipv6() { "IPv6" } else { "IPv4" };
    format!(
        "`{wildcard}` takes port {} on every {family} address, `{}` included, so the gateway cannot start",
        wildcard.port(),
        other.ip()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::with_code;

    /// The source text under the primary and the first secondary label.
    fn spans(text: &str, d: &Diagnostic) -> (String, String) {
        let slice =
            |span: crate::source::Span| text[span.start as usize..span.end as usize].to_owned();
        let primary = d.primary.span;
        let secondary = d
            .secondary
            .first()
            .map(|l| l.span)
            .expect("a secondary label");
        (slice(primary), slice(secondary))
    }

    fn listeners(binds: &[&str]) -> String {
        binds
            .iter()
            .enumerate()
            .map(|(i, b)| format!("listener \"l{i}\" {{ protocol smtp; bind {b} }}\n"))
            .collect()
    }

    #[test]
    fn same_address_and_port() {
        let t = listeners(&["0.0.0.0:25", "0.0.0.0:25"]);
        let found = with_code(&t, Code::PortConflict);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            spans(&t, &found[0]),
            ("0.0.0.0:25".into(), "0.0.0.0:25".into())
        );
        assert!(found[0].primary.span.start > found[0].secondary[0].span.start);
        assert!(found[0].message.contains("`l0` and `l1`"));
    }

    #[test]
    fn wildcard_overlaps_its_family() {
        let t = listeners(&["10.0.0.1:25", "0.0.0.0:25", "[2001:db8::1]:25", "[::]:25"]);
        let found = with_code(&t, Code::PortConflict);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            spans(&t, &found[0]),
            ("0.0.0.0:25".into(), "10.0.0.1:25".into())
        );
        assert!(found[0].message.contains("every IPv4 address"));
        assert_eq!(
            spans(&t, &found[1]),
            ("[::]:25".into(), "[2001:db8::1]:25".into())
        );
    }

    #[test]
    fn one_listener_twice() {
        let t = "listener \"mx\" { protocol smtp; bind 0.0.0.0:25, 127.0.0.1:25 }\n";
        let found = with_code(t, Code::PortConflict);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            spans(t, &found[0]),
            ("127.0.0.1:25".into(), "0.0.0.0:25".into())
        );
    }

    #[test]
    fn no_conflicts() {
        for binds in [
            &["0.0.0.0:25", "[::]:25"][..],
            &["10.0.0.1:25", "10.0.0.2:25"],
            &["0.0.0.0:25", "0.0.0.0:587"],
            &["[::1]:25", "127.0.0.1:25"],
        ] {
            let t = listeners(binds);
            assert!(with_code(&t, Code::PortConflict).is_empty(), "{binds:?}");
        }
    }
}
