//! `mailgw::route::loop` (error): a next hop that is this gateway itself.
//!
//! Three statements send mail to another SMTP server: a connector's `deliver
//! smarthost HOST:PORT`, `unknown-recipients forward to HOST:PORT`, and
//! `filter ... smtp HOST:PORT` (the content filter). If that server is this
//! gateway, mail goes round until the hop limit bounces it. The target is
//! this gateway when one of its own SMTP listeners would take the connection:
//! the listener is bound to the target port, and the host is
//! - the gateway's `hostname` (any bind address counts, since the name is
//!   this machine),
//! - `localhost` or a loopback or unspecified address, and the listener is
//!   bound to a loopback address of the family or to an unspecified address,
//! - or an address some listener is bound to explicitly (so the machine has
//!   it), and the listener is bound to that address or to the unspecified
//!   address of its family (the runtime binds IPv6 sockets v6-only, so `::`
//!   does not take IPv4; see the port-conflict check). Other addresses are not known to be ours: binding
//!   `0.0.0.0` does not tell which public address the machine has.
//!
//! For the filter only its own target matters: the scanner hands mail back on
//! the listener marked `filter-return`, which is not a loop. A filter that
//! points at the gateway's own `filter-return` listener is reported too: mail
//! would skip the scanner entirely. `deliver mx` is not checked: MX records
//! are not known at compile time.

use std::net::{IpAddr, SocketAddr};

use super::exposure;
use super::Context;
use crate::ast::{Deliver, Listener, Protocol, UnknownRecipients};
use crate::diagnostic::{Code, Diagnostic, Label};
use crate::source::Spanned;

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let hostname = cx
        .config
        .gateway
        .as_ref()
        .and_then(|g| g.hostname.as_ref())
        .map(|h| h.value.to_ascii_lowercase());
    let hostname = hostname.as_deref();
    let mut found = Vec::new();
    for connector in &cx.config.connectors {
        let Some(deliver) = &connector.deliver else {
            continue;
        };
        let Deliver::Smarthost { host, port } = &deliver.value else {
            continue;
        };
        if let Some((listener, bind)) = own_listener(&cx.config.listeners, hostname, host, *port) {
            found.push(
                Diagnostic::error(
                    Code::RoutingLoop,
                    format!(
                        "connector `{}` delivers to this gateway itself: relayed mail would come back and \
                         go round until the hop limit bounces it",
                        connector.name.value
                    ),
                    Label::new(deliver.span, format!("this is listener `{}`", listener.name.value)),
                )
                .with_label(Label::new(bind.span, "this gateway listens here"))
                .with_help("point the smarthost at the next hop, such as your provider's relay"),
            );
        }
    }
    if let Some(Spanned {
        value: UnknownRecipients::Forward { host, port, span },
        ..
    }) = &cx.config.unknown_recipients
    {
        if let Some((listener, bind)) = own_listener(&cx.config.listeners, hostname, host, *port) {
            found.push(
                Diagnostic::error(
                    Code::RoutingLoop,
                    "mail for unknown recipients would be forwarded back to this gateway, which would \
                     forward it again: a loop",
                    Label::new(*span, format!("this is listener `{}`", listener.name.value)),
                )
                .with_label(Label::new(bind.span, "this gateway listens here"))
                .with_help(
                    "forward to the server that still holds those mailboxes, or use `unknown-recipients reject`",
                ),
            );
        }
    }
    for filter in &cx.config.filters {
        let Some((listener, bind)) = own_listener(
            &cx.config.listeners,
            hostname,
            &filter.host.value,
            filter.port,
        ) else {
            continue;
        };
        let message = if listener.filter_return.is_some() {
            format!(
                "the content filter points at this gateway's own `filter-return` listener `{}`: mail would \
                 skip the scanner",
                listener.name.value
            )
        } else {
            format!(
                "the content filter is this gateway's own listener `{}`: every message would be sent to the \
                 filter again each time it comes back",
                listener.name.value
            )
        };
        found.push(
            Diagnostic::error(
                Code::RoutingLoop,
                message,
                Label::new(filter.host.span, format!("this is listener `{}`", listener.name.value)),
            )
            .with_label(Label::new(bind.span, "this gateway listens here"))
            .with_help(
                "point `filter` at the scanner's own port (e.g. `127.0.0.1:10024`); the scanner gives mail \
                 back on a listener marked `filter-return`",
            ),
        );
    }
    for diagnostic in found {
        cx.report(diagnostic);
    }
}

/// The SMTP listener and bind of this gateway that a connection to
/// `host:port` would reach, if any.
fn own_listener<'a>(
    listeners: &'a [Listener],
    hostname: Option<&str>,
    host: &str,
    port: u16,
) -> Option<(&'a Listener, &'a Spanned<SocketAddr>)> {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let target = if hostname == Some(host.as_str()) {
        Target::Myself
    } else if host == "localhost" {
        Target::Loopback(None)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        let ip = exposure::canonical(ip);
        if ip.is_loopback() || ip.is_unspecified() {
            Target::Loopback(Some(ip))
        } else if is_own_address(listeners, ip) {
            Target::Address(ip)
        } else {
            // Binding `0.0.0.0` does not tell which public address is ours.
            return None;
        }
    } else {
        return None;
    };
    listeners
        .iter()
        .filter(|l| l.protocol.as_ref().map(|p| p.value) == Some(Protocol::Smtp))
        .find_map(|l| {
            l.binds
                .iter()
                .find(|b| b.value.port() == port && target.reaches(b.value.ip()))
                .map(|b| (l, b))
        })
}

/// Where a next hop points, as far as it can be told from here.
enum Target {
    /// The gateway's own host name.
    Myself,
    /// A loopback or unspecified address (`None`: `localhost`, either family).
    Loopback(Option<IpAddr>),
    /// Some other address.
    Address(IpAddr),
}

impl Target {
    /// True when a listener bound to `bind` takes connections to this target.
    fn reaches(&self, bind: IpAddr) -> bool {
        let bind = exposure::canonical(bind);
        match self {
            Target::Myself => true,
            Target::Loopback(None) => bind.is_loopback() || bind.is_unspecified(),
            Target::Loopback(Some(ip)) if bind.is_unspecified() => same_family(bind, *ip),
            // `0.0.0.0` as a target reaches every loopback address; `127.0.0.1`
            // only a listener bound to it.
            Target::Loopback(Some(ip)) => {
                bind.is_loopback() && same_family(*ip, bind) && (ip.is_unspecified() || *ip == bind)
            }
            Target::Address(ip) => *ip == bind || (bind.is_unspecified() && same_family(bind, *ip)),
        }
    }
}

/// True when some listener is bound to exactly `ip`: the machine has it.
fn is_own_address(listeners: &[Listener], ip: IpAddr) -> bool {
    listeners
        .iter()
        .flat_map(|l| &l.binds)
        .any(|b| exposure::canonical(b.value.ip()) == ip)
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::at;
    use crate::checks::testing::{findings, with_code};

    const BASE: &str = "gateway { hostname \"mail.example.com\" }\n\
                        listener \"mx\" { protocol smtp; bind 0.0.0.0:25; auth off }\n\
                        listener \"sub\" { protocol smtp; bind 192.0.2.1:587; auth require }\n\
                        listener \"back\" { protocol smtp; bind 127.0.0.1:10025; auth off; filter-return }\n";

    #[test]
    fn smarthost_that_is_this_gateway() {
        for host in [
            "mail.example.com:25",
            "MAIL.example.com.:25",
            "127.0.0.1:25",
            "\"localhost\":25",
            "192.0.2.1:25",
        ] {
            let t = format!(
                "{BASE}connector \"out\" {{ address-space \"*\" cost 1; deliver smarthost {host} }}"
            );
            let found = with_code(&t, Code::RoutingLoop);
            assert_eq!(found.len(), 1, "{host}: {:?}", findings(&t));
            assert_eq!(at(&t, &found[0]), host);
            let bind = found[0]
                .secondary
                .first()
                .map(|l| l.span)
                .expect("the bind");
            assert_eq!(&t[bind.start as usize..bind.end as usize], "0.0.0.0:25");
        }
    }

    #[test]
    fn other_hosts_and_ports_are_fine() {
        for host in [
            "relay.isp.example:25",
            "mail.example.com:2525",
            "127.0.0.1:2525",
            "[::1]:25",
        ] {
            let t = format!(
                "{BASE}connector \"out\" {{ address-space \"*\" cost 1; deliver smarthost {host} }}"
            );
            assert!(
                with_code(&t, Code::RoutingLoop).is_empty(),
                "{host}: {:?}",
                findings(&t)
            );
        }
    }

    #[test]
    fn forward_to_this_gateway() {
        let t = format!("{BASE}unknown-recipients forward to mail.example.com:25");
        let found = with_code(&t, Code::RoutingLoop);
        assert_eq!(found.len(), 1);
        assert_eq!(at(&t, &found[0]), "mail.example.com:25");
        let t = format!("{BASE}unknown-recipients forward to old.example.com:25");
        assert!(with_code(&t, Code::RoutingLoop).is_empty());
    }

    #[test]
    fn filter_targets() {
        let t = format!("{BASE}filter inbound smtp 127.0.0.1:10024");
        assert!(
            with_code(&t, Code::RoutingLoop).is_empty(),
            "{:?}",
            findings(&t)
        );
        let t = format!("{BASE}filter inbound smtp 127.0.0.1:25");
        let found = with_code(&t, Code::RoutingLoop);
        assert_eq!(found.len(), 1);
        assert_eq!(at(&t, &found[0]), "127.0.0.1:25");
        let t = format!("{BASE}filter inbound smtp 127.0.0.1:10025");
        let found = with_code(&t, Code::RoutingLoop);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("skip the scanner"));
    }
}
