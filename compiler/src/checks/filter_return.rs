//! `mailgw::listener::filter-return-exposed` (warning): a content filter's
//! return listener that other machines can reach.
//!
//! Mail that arrives on a listener marked `filter-return` counts as already
//! scanned: it is neither filtered again nor journaled again. Whoever can
//! connect to that listener can therefore skip the content filter (and the
//! journal) for any mail the relay rules let them send. It is reported when
//! one of the listener's bind addresses is internet-facing: unspecified
//! (`0.0.0.0`, `::`) or public, as in the `non-standard-port` check. A
//! private address stays quiet, for a scanner on another machine of the
//! local network.

use super::exposure::is_internet_facing;
use super::Context;
use crate::diagnostic::{Code, Diagnostic, Label};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    for listener in &cx.config.listeners {
        let Some(marked) = listener.filter_return else {
            continue;
        };
        let Some(open) = listener
            .binds
            .iter()
            .find(|b| is_internet_facing(b.value.ip()))
        else {
            continue;
        };
        cx.report(
            Diagnostic::warning(
                Code::FilterReturnExposed,
                format!(
                    "listener `{}` takes mail back from the content filter, and other machines can reach it: mail sent there skips the filter and the journal",
                    listener.name.value
                ),
                Label::new(open.span, "reachable from other machines"),
            )
            .with_label(Label::new(marked, "mail here counts as filtered"))
            .with_help(
                "bind it to loopback (`bind 127.0.0.1:10025`), or to an address only the scanner can reach",
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{at, with_code};

    fn listener(bind: &str) -> String {
        format!(
            "listener \"back\" {{ protocol smtp; bind {bind}; tls none; auth off; filter-return }}\n"
        )
    }

    #[test]
    fn a_return_listener_on_every_address_is_reported_at_the_bind() {
        let t = listener("0.0.0.0:10025");
        let found = with_code(&t, Code::FilterReturnExposed);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(at(&t, &found[0]), "0.0.0.0:10025");
        assert_eq!(found[0].secondary.len(), 1);
    }

    #[test]
    fn loopback_and_private_return_listeners_are_quiet() {
        for bind in ["127.0.0.1:10025", "10.0.0.5:10025", "[::1]:10025"] {
            let t = listener(bind);
            assert!(
                with_code(&t, Code::FilterReturnExposed).is_empty(),
                "{bind}"
            );
        }
    }
}
