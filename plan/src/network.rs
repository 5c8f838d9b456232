//! IP networks for relay rules (`from 10.0.0.0/8`).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// An IP network: an address and a prefix length.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The network address; host bits are ignored when matching.
    pub addr: IpAddr,
    /// Prefix length: at most 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
}

/// Why a network was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkError {
    /// Not `ADDRESS/PREFIX`.
    Syntax(String),
    /// The prefix is longer than the address.
    PrefixTooLong {
        /// The prefix given.
        prefix: u8,
        /// The longest prefix for this address family.
        max: u8,
    },
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkError::Syntax(text) => {
                write!(
                    f,
                    "{text:?} is not a network; write it as 10.0.0.0/8 or 2001:db8::/32"
                )
            }
            NetworkError::PrefixTooLong { prefix, max } => {
                write!(
                    f,
                    "the prefix /{prefix} is longer than the address (at most /{max})"
                )
            }
        }
    }
}

impl std::error::Error for NetworkError {}

impl Network {
    /// A network, checking the prefix length.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Network, NetworkError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(NetworkError::PrefixTooLong { prefix, max });
        }
        Ok(Network { addr, prefix })
    }

    /// Parses `10.0.0.0/8` or `2001:db8::/32`; a bare address is a host
    /// (`/32` or `/128`).
    pub fn parse(text: &str) -> Result<Network, NetworkError> {
        let syntax = || NetworkError::Syntax(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax());
                }
                (addr, prefix.parse::<u8>().map_err(|_| syntax())?)
            }
            None => {
                let addr: IpAddr = text.parse().map_err(|_| syntax())?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        Network::new(addr, prefix)
    }

    /// Whether the network holds `client`. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.1.2.3`, as a dual-stack socket reports IPv4 clients) are
    /// treated as the IPv4 address, on either side.
    pub fn contains(&self, client: IpAddr) -> bool {
        let (net, prefix) = canonical(self.addr, self.prefix);
        let (client, _) = canonical(client, if client.is_ipv4() { 32 } else { 128 });
        match (net, client) {
            (IpAddr::V4(net), IpAddr::V4(client)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(prefix.min(32)))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(client) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(client)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(prefix.min(128)))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(client) & mask
            }
            _ => false,
        }
    }

    /// Whether this network holds every address of its family (`0.0.0.0/0`,
    /// `::/0`).
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }
}

/// Turns an IPv4-mapped IPv6 address (and prefix, if at least /96) into IPv4.
fn canonical(addr: IpAddr, prefix: u8) -> (IpAddr, u8) {
    match addr {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), prefix - 96),
            None => (addr, prefix),
        },
        _ => (addr, prefix),
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn contains_v4_v6_and_mapped() {
        let ten = Network::parse("10.0.0.0/8").expect("valid");
        assert!(ten.contains(ip("10.1.2.3")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")));
        assert!(!ten.contains(ip("::ffff:11.1.2.3")));
        assert!(!ten.contains(ip("2001:db8::1")));
        let mapped = Network::parse("::ffff:10.0.0.0/104").expect("valid");
        assert!(mapped.contains(ip("10.9.9.9")));
        let doc = Network::parse("2001:db8::/32").expect("valid");
        assert!(doc.contains(ip("2001:db8:ffff::1")));
        assert!(!doc.contains(ip("2001:db9::1")));
        let all = Network::parse("0.0.0.0/0").expect("valid");
        assert!(all.contains(ip("203.0.113.9")) && all.is_everything());
        assert!(Network::parse("192.0.2.7")
            .expect("host")
            .contains(ip("192.0.2.7")));
        assert!(!Network::parse("192.0.2.7")
            .expect("host")
            .contains(ip("192.0.2.8")));
    }

    #[test]
    fn rejects_bad_networks() {
        assert_eq!(
            Network::parse("10.0.0.0/33"),
            Err(NetworkError::PrefixTooLong {
                prefix: 33,
                max: 32
            })
        );
        assert!(matches!(
            Network::parse("10.0.0.0/+8"),
            Err(NetworkError::Syntax(_))
        ));
        assert!(matches!(
            Network::parse("ten/8"),
            Err(NetworkError::Syntax(_))
        ));
        // A hand-built network with an impossible prefix never panics.
        assert!(Network {
            addr: ip("10.0.0.0"),
            prefix: 200
        }
        .contains(ip("10.0.0.0")));
    }
}
