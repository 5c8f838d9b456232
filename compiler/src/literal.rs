//! Typed literals: sizes, durations, ports, IP addresses, networks, domains.
//!
//! The grammar recognises their shape; these functions check their values and
//! explain, in one sentence, what is wrong.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::ast::ipnet::Network;

/// Parses a port: 1 to 65535.
pub fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("port 0 is not a port a peer can connect to".to_owned()),
        Ok(p) if p <= 65535 => Ok(p as u16),
        _ => Err(format!("port {text} is out of range (1 to 65535)")),
    }
}

/// Parses a dotted-quad IPv4 address.
pub fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
    for octet in text.split('.') {
        if octet.parse::<u32>().map_or(true, |n| n > 255) {
            return Err(format!(
                "`{text}` is not an IPv4 address: the part `{octet}` is over 255"
            ));
        }
        if octet.len() > 1 && octet.starts_with('0') {
            return Err(format!(
                "`{text}` is not an IPv4 address: `{octet}` has a leading zero, which some software reads as octal"
            ));
        }
    }
    text.parse()
        .map_err(|_| format!("`{text}` is not an IPv4 address"))
}

/// Parses an IPv6 address.
pub fn ipv6(text: &str) -> Result<Ipv6Addr, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an IPv6 address"))
}

/// Parses a socket address from its address and port parts.
pub fn socket(addr: IpAddr, port_text: &str) -> Result<SocketAddr, String> {
    Ok(SocketAddr::new(addr, port(port_text)?))
}

/// Checks a prefix length against the address family and builds the network.
pub fn network(addr: IpAddr, prefix_text: &str) -> Result<Network, String> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix_text
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= max)
        .ok_or_else(|| format!("prefix /{prefix_text} is longer than an address ({max} bits)"))?;
    let host_bits = match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)) & mask(32 - u32::from(prefix)),
        IpAddr::V6(a) => u128::from(a) & mask(128 - u32::from(prefix)),
    };
    if host_bits != 0 {
        return Err(format!(
            "`{addr}/{prefix}` has host bits set: the network is written with its first address"
        ));
    }
    Ok(Network { addr, prefix })
}

fn mask(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// Bytes in a size: decimal units are powers of 1000, binary ones of 1024.
pub fn size(digits: &str, unit: &str) -> Result<u64, String> {
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{digits}{unit}` is too large"))?;
    let factor: u64 = match unit {
        "B" => 1,
        "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        _ => return Err(format!("`{unit}` is not a size unit")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{digits}{unit}` is too large"))
}

/// Milliseconds in a duration.
pub fn duration_ms(digits: &str, unit: &str) -> Result<u64, String> {
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{digits}{unit}` is too long"))?;
    let factor: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(format!("`{unit}` is not a time unit")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{digits}{unit}` is too long"))
}

/// Checks and normalises a domain name: lowercase, no trailing dot, valid labels.
pub fn domain(text: &str) -> Result<String, String> {
    domain_cow(text).map(Cow::into_owned)
}

/// [`domain`], borrowing `text` when it is already in normal form.
fn domain_cow(text: &str) -> Result<Cow<'_, str>, String> {
    let stripped = text.strip_suffix('.').unwrap_or(text);
    // Byte by byte where the text is ASCII, as nearly every domain is:
    // the same answers as the character tests, without decoding.
    let ascii = text.is_ascii();
    let lowercase = if ascii {
        !text.bytes().any(|b| b.is_ascii_uppercase())
    } else {
        !text.chars().any(char::is_uppercase)
    };
    let name = if stripped.len() == text.len() && lowercase {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(stripped.to_lowercase())
    };
    if name.is_empty() {
        return Err("the domain is empty".to_owned());
    }
    if name.len() > 253 {
        return Err(format!(
            "`{text}` is longer than a domain may be (253 characters)"
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("`{text}` has an empty label (two dots in a row)"));
        }
        if label.len() > 63 {
            return Err(format!("`{text}` has a label longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("`{text}` has a label that starts or ends with `-`"));
        }
        let allowed = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
        let bad = if ascii {
            label.bytes().map(char::from).find(|&c| !allowed(c))
        } else {
            label.chars().find(|&c| !allowed(c))
        };
        if let Some(bad) = bad {
            return Err(format!(
                "`{text}` is not a domain name: `{bad}` is not allowed"
            ));
        }
    }
    Ok(name)
}

/// Checks an SMTP address `local@domain` and normalises its domain.
pub fn address(text: &str) -> Result<String, String> {
    address_cow(text).map(Cow::into_owned)
}

/// [`address`], borrowing `text` when it is already in normal form, as
/// nearly every address in a directory is.
pub fn address_cow(text: &str) -> Result<Cow<'_, str>, String> {
    let Some((local, dom)) = text.rsplit_once('@') else {
        return Err(format!("`{text}` is not an address: it has no `@`"));
    };
    if local.is_empty() {
        return Err(format!("`{text}` has an empty local part"));
    }
    if local.len() > 64 {
        return Err(format!(
            "`{text}` has a local part longer than 64 characters"
        ));
    }
    if local.contains('@') && !(local.starts_with('"') && local.ends_with('"')) {
        return Err(format!("`{text}` has more than one `@`"));
    }
    let forbidden = |c: char| c.is_control() || c == ' ' && !local.starts_with('"');
    let bad = if local.is_ascii() {
        local.bytes().map(char::from).find(|&c| forbidden(c))
    } else {
        local.chars().find(|&c| forbidden(c))
    };
    if let Some(bad) = bad {
        return Err(format!(
            "`{text}` has `{}` in its local part",
            bad.escape_default()
        ));
    }
    match domain_cow(dom)? {
        Cow::Borrowed(_) => Ok(Cow::Borrowed(text)),
        Cow::Owned(normalized) => Ok(Cow::Owned(format!("{local}@{normalized}"))),
    }
}

/// Checks an address pattern: `*`, `*.suffix`, `domain`, `local@domain` or `*@domain`.
pub fn pattern(text: &str) -> Result<String, String> {
    if text == "*" {
        return Ok(text.to_owned());
    }
    if let Some(suffix) = text.strip_prefix("*.") {
        return Ok(format!("*.{}", domain(suffix)?));
    }
    if let Some(dom) = text.strip_prefix("*@") {
        return Ok(format!("*@{}", domain(dom)?));
    }
    if text.contains('*') {
        return Err(format!(
            "`{text}` is not a pattern: `*` may only stand alone, as `*.suffix` or as `*@domain`"
        ));
    }
    if text.contains('@') {
        return address(text);
    }
    domain(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(size("25", "MB"), Ok(25_000_000));
        assert_eq!(size("512", "KiB"), Ok(512 * 1024));
        assert!(size("99999999999999999999", "B").is_err());
        assert_eq!(duration_ms("5", "m"), Ok(300_000));
        assert_eq!(duration_ms("5", "d"), Ok(432_000_000));
    }

    #[test]
    fn ports_and_addresses() {
        assert!(port("0").is_err());
        assert!(port("65536").is_err());
        assert_eq!(port("587"), Ok(587));
        assert!(ipv4("10.0.0.256").is_err());
        assert!(ipv4("010.0.0.1").is_err());
        assert!(network(
            "10.0.0.1"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "8"
        )
        .is_err());
        assert!(network(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), "33").is_err());
        assert_eq!(
            network(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), "8").map(|n| n.prefix),
            Ok(8)
        );
    }

    #[test]
    fn addresses_in_normal_form_are_borrowed() {
        assert!(matches!(
            address_cow("a@x.example"),
            Ok(Cow::Borrowed("a@x.example"))
        ));
        assert_eq!(
            address_cow("A@X.Example.").map(Cow::into_owned),
            Ok("A@x.example".to_owned())
        );
        assert_eq!(
            address_cow("a@x.example.").map(Cow::into_owned),
            Ok("a@x.example".to_owned())
        );
        assert!(address_cow("a@x..example").is_err());
    }

    #[test]
    fn domains_patterns_and_addresses() {
        assert_eq!(domain("Example.COM."), Ok("example.com".to_owned()));
        assert!(domain("a..b").is_err());
        assert!(domain("-a.b").is_err());
        assert_eq!(
            pattern("*.Tochter.example"),
            Ok("*.tochter.example".to_owned())
        );
        assert!(pattern("a*.example").is_err());
        assert_eq!(
            address("Alice@Example.com"),
            Ok("Alice@example.com".to_owned())
        );
        assert!(address("alice").is_err());
        assert!(address("a@b@c").is_err());
    }
}
