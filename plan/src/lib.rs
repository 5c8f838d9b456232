//! The mailgw plan: the one serialized type between `mailgwc` and the runtime.
//!
//! The compiler lowers a checked configuration into a [`Plan`]; the runtime
//! loads it with [`Plan::load`] and never sees source text. The decision code
//! that both sides need lives here so that `mailgwc explain` and the runtime
//! can never disagree:
//!
//! - [`address`]: strict RFC 5321 parsing of paths and mailboxes;
//! - [`Plan::resolve`]: local recipient, group expansion or connector route;
//! - [`Plan::relay`]: the relay rules, first match wins, default deny;
//! - [`Plan::connector_accepts`]: a connector's delivery restrictions.
//!
//! Invariants: the plan holds no hash map, so the same plan always encodes to
//! the same bytes; every decision names the [`SourceRef`] behind it; no input
//! to [`Plan::from_bytes`] or to the address parser makes this crate panic.

#![forbid(unsafe_code)]

pub mod address;
mod backend;
mod chunked;
mod codec;
mod columns;
mod connector;
mod inspect;
mod listener;
mod network;
mod pattern;
mod plan;
mod policy;
mod recipient;
mod recipient_table;
mod relay;
mod relay_rule;
mod resolve;
mod source;

#[cfg(test)]
mod testutil;

pub use address::{normalize_domain, parse_mailbox, parse_path, Address, AddressError, Domain};
pub use backend::{Backend, Endpoint, EndpointTls};
pub use codec::{LoadError, Written, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use connector::{AddressSpace, Connector, Deliver, SenderMatch, TlsPolicy};
pub use inspect::Summary;
pub use listener::{
    AuthMode, Limits, Listener, ListenerTls, Protocol, TlsMode, TlsProfile, TlsSource,
};
pub use network::{Network, NetworkError};
pub use pattern::{AddressPattern, DomainPattern, PatternError, Specificity};
pub use plan::{AuthPlan, Dns, Gateway, Plan, Verify};
pub use policy::{
    Direction, Disclaimer, Etrn, Filter, Journal, JournalScope, Log, LogLevel, Ndr, Position,
    Queue, UnknownRecipients,
};
pub use recipient::{Group, LocalDomain, Mailbox, Mailboxes, Member, Target};
pub use recipient_table::{normalize_address, normalized_address, DuplicateKey, RecipientTable};
pub use relay::{RelayQuery, RelayVerdict};
pub use relay_rule::{Condition, RelayAction, RelayRule};
pub use resolve::{ConnectorChoice, Recipient, Refusal, Resolution, Route};
pub use source::{SourceMap, SourceRef};
