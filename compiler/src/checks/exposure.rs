//! `mailgw::listener::non-standard-port` (warning): an internet-facing SMTP
//! listener that accepts inbound mail, but not on port 25.
//!
//! Remote mail servers look up the MX record and connect to port 25; they
//! have no way to learn another port. A listener that takes mail without
//! authentication (`auth off` or `auth offer`, or no `auth` statement) and is
//! reachable from the internet is meant for them, so if none of its
//! internet-facing addresses is on port 25, inbound connections fail (the
//! Domino SMTP port documentation warns of exactly this). A listener is
//! internet-facing when one of its bind addresses is unspecified (`0.0.0.0`,
//! `::`) or public, that is neither loopback, private (`10/8`, `172.16/12`,
//! `192.168/16`, `fc00::/7`), shared (`100.64/10`) nor link-local. Listeners
//! marked `filter-return` only take mail back from the content filter and are
//! skipped; so are client listeners that require authentication.
//!
//! This file also holds the address helpers the other listener checks share.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Context;
use crate::ast::{AuthMode, Listener, Protocol};
use crate::diagnostic::{Code, Diagnostic, Label};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    for listener in &cx.config.listeners {
        if listener.filter_return.is_some() || !accepts_anonymous_smtp(listener) {
            continue;
        }
        let facing: Vec<_> = listener
            .binds
            .iter()
            .filter(|b| is_internet_facing(b.value.ip()))
            .collect();
        let Some(first) = facing.first() else {
            continue;
        };
        if facing.iter().any(|b| b.value.port() == 25) {
            continue;
        }
        let mut diagnostic = Diagnostic::warning(
            Code::NonStandardPort,
            format!(
                "listener `{}` takes mail from the internet on port {}, but remote mail servers only connect to port 25",
                listener.name.value,
                first.value.port()
            ),
            Label::new(first.span, "internet-facing, not port 25"),
        )
        .with_help(
            "bind the MX listener to port 25 (`bind 0.0.0.0:25`); if this listener is for your own \
             clients, make it `auth require`",
        );
        if let Some(auth) = &listener.auth {
            diagnostic =
                diagnostic.with_label(Label::new(auth.span, "accepts mail without authentication"));
        }
        cx.report(diagnostic);
    }
}

/// True for an SMTP listener on which a client may send mail without
/// authenticating: `auth off`, `auth offer`, or no `auth` statement.
pub(super) fn accepts_anonymous_smtp(listener: &Listener) -> bool {
    listener.protocol.as_ref().map(|p| p.value) == Some(Protocol::Smtp)
        && listener.auth.as_ref().map_or(AuthMode::Off, |a| a.value) != AuthMode::Require
}

/// True when the listener binds at least one address and all of them are
/// loopback: nobody outside this machine can reach it.
pub(super) fn loopback_only(listener: &Listener) -> bool {
    !listener.binds.is_empty() && listener.binds.iter().all(|b| is_loopback(b.value.ip()))
}

/// Loopback, IPv4-mapped IPv6 addresses included.
pub(super) fn is_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

/// Unspecified (every interface, so the public one too) or a public address.
pub(super) fn is_internet_facing(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_unspecified() || is_public_v4(v4),
        IpAddr::V6(v6) => v6.is_unspecified() || is_public_v6(v6),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || shared)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || unique_local || link_local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{findings, with_code};

    fn listener(binds: &str, auth: &str, extra: &str) -> String {
        format!(
            "listener \"in\" {{ protocol smtp; bind {binds}; auth {auth}{extra} }}\n\
             relay {{ allow authenticated; deny all }}"
        )
    }

    #[test]
    fn inbound_listener_off_port_25_is_reported_at_the_bind() {
        let text = listener("0.0.0.0:2525", "off", "");
        let found = with_code(&text, Code::NonStandardPort);
        assert_eq!(found.len(), 1, "{found:?}");
        let start = text.find("0.0.0.0:2525").unwrap_or(0);
        assert_eq!(found[0].primary.span.start as usize, start);
        assert_eq!(found[0].severity, crate::diagnostic::Severity::Warning);
    }

    #[test]
    fn public_address_counts_as_internet_facing() {
        assert_eq!(
            with_code(
                &listener("192.0.2.10:26", "offer", ""),
                Code::NonStandardPort
            )
            .len(),
            1
        );
    }

    #[test]
    fn port_25_private_required_or_filter_return_listeners_are_fine() {
        for text in [
            listener("0.0.0.0:25, 0.0.0.0:2525", "off", ""),
            listener("10.0.0.5:2525", "off", ""),
            listener("[fd00::1]:2525", "off", ""),
            listener("127.0.0.1:10025", "off", ""),
            listener("0.0.0.0:587", "require", ""),
            listener("0.0.0.0:10025", "off", "; filter-return"),
        ] {
            assert!(
                with_code(&text, Code::NonStandardPort).is_empty(),
                "{text}: {:?}",
                findings(&text)
            );
        }
    }

    #[test]
    fn address_classes() {
        let ip = |s: &str| {
            s.parse::<IpAddr>()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        };
        assert!(is_internet_facing(ip("0.0.0.0")));
        assert!(is_internet_facing(ip("::")));
        assert!(is_internet_facing(ip("2001:db8::1")));
        assert!(!is_internet_facing(ip("100.64.0.1")));
        assert!(!is_internet_facing(ip("fe80::1")));
        assert!(!is_internet_facing(ip("::ffff:10.1.2.3")));
        assert!(is_loopback(ip("::ffff:127.0.0.1")));
        assert!(is_loopback(ip("::1")));
    }
}
