//! Domain and address patterns: `"*"`, `"*.tochter.example"`,
//! `"example.com"`, `"alice@example.com"`, `"*@example.com"`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::address::{normalize_domain, parse_mailbox, Address, AddressError, Domain};

/// A set of domains, as in a connector's address space.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    /// `*`: every domain, address literals included.
    Any,
    /// `*.parent`: every subdomain of `parent` (stored lowercase, without
    /// `*.`), at any depth, but not `parent` itself — as an Exchange
    /// address space `*.x` matches only subdomains.
    Suffix(String),
    /// One domain name, lowercase.
    Exact(String),
}

/// How specific a matching pattern is; larger wins. `Suffix` compares by the
/// length of the parent domain, so `*.a.b.example` beats `*.b.example`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Specificity {
    /// `*`.
    Any,
    /// `*.suffix`, with the suffix length in octets.
    Suffix(usize),
    /// An exact domain.
    Exact,
}

/// A sender or recipient pattern in relay rules and delivery restrictions.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    /// Any address whose domain matches; written as a domain pattern or as
    /// `*@` followed by one.
    Domain(DomainPattern),
    /// One address, normalized as in the recipient table.
    Address(String),
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// A `*` anywhere but alone or as a leading `*.`.
    MisplacedWildcard(String),
    /// The domain part is not a valid domain name.
    Domain(AddressError),
    /// The address is not a valid mailbox.
    Address(AddressError),
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::MisplacedWildcard(p) => write!(
                f,
                "{p:?} has a misplaced '*'; write \"*\", \"*.domain\" or \"*@domain\""
            ),
            PatternError::Domain(e) => write!(f, "invalid domain in pattern: {e}"),
            PatternError::Address(e) => write!(f, "invalid address in pattern: {e}"),
        }
    }
}

impl std::error::Error for PatternError {}

impl DomainPattern {
    /// Parses `*`, `*.example.com` or `example.com` (case and trailing dot
    /// normalized).
    pub fn parse(text: &str) -> Result<DomainPattern, PatternError> {
        if text == "*" {
            return Ok(DomainPattern::Any);
        }
        let (suffix, name) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if name.contains('*') {
            return Err(PatternError::MisplacedWildcard(text.to_owned()));
        }
        let name = normalize_domain(name).map_err(PatternError::Domain)?;
        Ok(if suffix {
            DomainPattern::Suffix(name)
        } else {
            DomainPattern::Exact(name)
        })
    }

    /// Whether `domain` is in the set. `domain` must be normalized (as
    /// [`Domain::Name`] is).
    pub fn matches(&self, domain: &Domain) -> bool {
        match (self, domain) {
            (DomainPattern::Any, _) => true,
            (DomainPattern::Exact(want), Domain::Name(name)) => want == name,
            (DomainPattern::Suffix(parent), Domain::Name(name)) => name
                .strip_suffix(parent.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (_, Domain::Ipv4(_) | Domain::Ipv6(_)) => false,
        }
    }

    /// How specific the pattern is.
    pub fn specificity(&self) -> Specificity {
        match self {
            DomainPattern::Any => Specificity::Any,
            DomainPattern::Suffix(parent) => Specificity::Suffix(parent.len()),
            DomainPattern::Exact(_) => Specificity::Exact,
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => f.write_str("*"),
            DomainPattern::Suffix(parent) => write!(f, "*.{parent}"),
            DomainPattern::Exact(name) => f.write_str(name),
        }
    }
}

impl AddressPattern {
    /// Parses a domain pattern, `*@` and a domain pattern, or an address.
    pub fn parse(text: &str) -> Result<AddressPattern, PatternError> {
        if let Some(domain) = text.strip_prefix("*@") {
            return DomainPattern::parse(domain).map(AddressPattern::Domain);
        }
        if text.contains('@') {
            if text.contains('*') {
                return Err(PatternError::MisplacedWildcard(text.to_owned()));
            }
            let address = parse_mailbox(text).map_err(PatternError::Address)?;
            return Ok(AddressPattern::Address(address.key()));
        }
        DomainPattern::parse(text).map(AddressPattern::Domain)
    }

    /// Whether `address` matches.
    pub fn matches(&self, address: &Address) -> bool {
        match self {
            AddressPattern::Domain(pattern) => pattern.matches(&address.domain),
            AddressPattern::Address(key) => *key == address.key(),
        }
    }
}

impl fmt::Display for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressPattern::Domain(pattern) => pattern.fmt(f),
            AddressPattern::Address(address) => f.write_str(address),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Domain {
        Domain::Name(s.to_owned())
    }

    #[test]
    fn suffix_matches_subdomains_only() {
        let p = DomainPattern::parse("*.Tochter.Example.").expect("valid");
        assert_eq!(p, DomainPattern::Suffix("tochter.example".into()));
        assert!(p.matches(&name("a.tochter.example")));
        assert!(p.matches(&name("b.a.tochter.example")));
        assert!(!p.matches(&name("tochter.example")));
        assert!(!p.matches(&name("xtochter.example")));
        assert!(!p.matches(&Domain::Ipv4("192.0.2.1".parse().expect("ip"))));
    }

    #[test]
    fn any_and_exact() {
        assert!(DomainPattern::Any.matches(&Domain::Ipv4("192.0.2.1".parse().expect("ip"))));
        let p = DomainPattern::parse("Example.com").expect("valid");
        assert!(p.matches(&name("example.com")));
        assert!(!p.matches(&name("a.example.com")));
    }

    #[test]
    fn specificity_orders_exact_longest_suffix_any() {
        let s = |t: &str| DomainPattern::parse(t).expect("valid").specificity();
        assert!(s("a.b.example") > s("*.a.b.example"));
        assert!(s("*.a.b.example") > s("*.b.example"));
        assert!(s("*.b.example") > s("*"));
    }

    #[test]
    fn address_patterns() {
        let alice = parse_mailbox("alice@Example.com").expect("valid");
        let p = |t: &str| AddressPattern::parse(t).expect("valid");
        assert!(p("alice@example.COM").matches(&alice));
        assert!(!p("Alice@example.com").matches(&alice));
        assert!(p("*@example.com").matches(&alice));
        assert!(p("example.com").matches(&alice));
        assert!(p("*").matches(&alice));
        assert!(!p("*.example.com").matches(&alice));
        assert!(matches!(
            AddressPattern::parse("a*@x"),
            Err(PatternError::MisplacedWildcard(_))
        ));
        assert!(matches!(
            DomainPattern::parse("a.*.x"),
            Err(PatternError::MisplacedWildcard(_))
        ));
        assert!(matches!(
            DomainPattern::parse("a..x"),
            Err(PatternError::Domain(_))
        ));
    }
}
