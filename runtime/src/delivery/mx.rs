//! MX resolution (RFC 5321 5.1, RFC 7505): the hosts to try for a domain,
//! in order.
//!
//! MX records are sorted by preference, equal preferences shuffled so that
//! load spreads. A null MX (`0 .`) means the domain takes no mail: a
//! permanent failure, 5.1.10. A domain without MX records is its own mail
//! host (its A/AAAA records). A domain that does not exist fails with
//! 5.1.2; a resolver that does not answer defers with 4.4.3.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use mailgw_plan::Dns;

use super::outcome::Outcome;
use super::reply::Status;

/// A DNS resolver for delivery.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("name_servers", &self.inner.config().name_servers())
            .finish()
    }
}

impl Resolver {
    /// A resolver asking `dns.servers` (UDP, then TCP for truncated
    /// answers), or the system's configured name servers when the list is
    /// empty.
    pub fn new(dns: &Dns) -> Result<Resolver, String> {
        let provider = TokioConnectionProvider::default();
        let mut builder = if dns.servers.is_empty() {
            TokioResolver::builder(provider)
                .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?
        } else {
            let servers: Vec<NameServerConfig> = dns
                .servers
                .iter()
                .flat_map(|&addr| {
                    [
                        NameServerConfig::new(addr, Protocol::Udp),
                        NameServerConfig::new(addr, Protocol::Tcp),
                    ]
                })
                .collect();
            let config = ResolverConfig::from_parts(None, Vec::new(), servers);
            TokioResolver::builder_with_config(config, provider)
                .with_options(ResolverOpts::default())
        };
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        Ok(Resolver {
            inner: builder.build(),
        })
    }

    /// The mail hosts of `domain` in the order to try them, and whether
    /// the domain is its own (no MX records); or the outcome for every
    /// recipient when there is no host to try.
    pub(crate) async fn mail_hosts(&self, domain: &str) -> Result<(Vec<String>, bool), Outcome> {
        let fqdn = fully_qualified(domain);
        match self.inner.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let mut records: Vec<(u16, u64, String)> = lookup
                    .iter()
                    .map(|mx| {
                        let key = RandomState::new().hash_one(mx.exchange());
                        (mx.preference(), key, mx.exchange().to_ascii())
                    })
                    .collect();
                let null = |r: &(u16, u64, String)| r.2 == ".";
                if !records.is_empty() && records.iter().all(null) {
                    return Err(Outcome::failed(
                        Status::new(5, 1, 10),
                        format!("{domain} accepts no mail (null MX, RFC 7505)"),
                    ));
                }
                records.retain(|r| !null(r));
                records.sort();
                let hosts: Vec<String> = records.into_iter().map(|r| r.2).collect();
                tracing::debug!(domain, ?hosts, "MX hosts");
                Ok((hosts, false))
            }
            Err(e) if e.is_nx_domain() => Err(no_domain(domain)),
            Err(e) if e.is_no_records_found() => {
                tracing::debug!(domain, "no MX records; the domain is its own mail host");
                Ok((vec![fqdn], true))
            }
            Err(e) => Err(temporary(domain, "MX", &e)),
        }
    }

    /// The addresses of mail host `host`. An empty list when it has none.
    pub(crate) async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        match self.inner.lookup_ip(fully_qualified(host).as_str()).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(format!("cannot resolve {host}: {e}")),
        }
    }
}

/// `name` with the trailing dot that keeps search domains out.
fn fully_qualified(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn no_domain(domain: &str) -> Outcome {
    Outcome::failed(
        Status::new(5, 1, 2),
        format!("the domain {domain} does not exist"),
    )
}

fn temporary(domain: &str, what: &str, e: &ResolveError) -> Outcome {
    Outcome::deferred(
        Status::new(4, 4, 3),
        format!("cannot look up the {what} records of {domain}: {e}"),
    )
}
