//! Lowering: the checked configuration becomes a [`Plan`].
//!
//! Lowering runs only when the checks found no error, but it never panics
//! on a configuration they would refuse: an item that cannot be lowered
//! (a mailbox on an unknown backend, a listener whose TLS profile does not
//! exist) is left out, an absent block gets its defaults, and a rule that
//! cannot be expressed fails closed.
//!
//! Invariants:
//! - names become indices of their first definition; every index in the plan
//!   points at an item that exists, so [`Plan::from_bytes`] accepts the result;
//! - the same sources give the same bytes: nothing here iterates a hash map,
//!   the source map names files relative to the main file's directory (so
//!   neither the working directory nor the path given on the command line
//!   shows in the plan), and files the runtime opens (certificates, keys,
//!   credentials, the spool) are stored as absolute paths, so the plan works
//!   whatever the runtime's working directory;
//! - it is linear in the size of the configuration: names are looked up in
//!   maps, never by scanning.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use mailgw_plan::{
    normalized_address, AddressPattern, AddressSpace, AuthMode, AuthPlan, Backend, Condition,
    Connector, Deliver, Direction, Disclaimer, Dns, DomainPattern, Endpoint, EndpointTls, Etrn,
    Filter, Gateway, Group, Journal, JournalScope, Limits, Listener, ListenerTls, LocalDomain, Log,
    LogLevel, Mailbox, Mailboxes, Member, Ndr, Network, Plan, Position, Protocol, Queue,
    RecipientTable, RelayAction, RelayRule, SenderMatch, SourceMap, SourceRef, Target, TlsMode,
    TlsPolicy, TlsProfile, TlsSource, UnknownRecipients, Verify,
};

use crate::ast::{self, Config};
use crate::name_table::NameTable;
use crate::source::{FileId, SourceDb, Span};

/// The host name used when the configuration has no `gateway { hostname }`.
pub const DEFAULT_HOSTNAME: &str = "localhost";

/// Builds the plan of a configuration that passed every check.
pub fn lower(db: &SourceDb, config: &Config) -> Plan {
    let mut cx = Lowering::new(db);
    let gateway = cx.gateway(config.gateway.as_ref());
    let mut plan = Plan::empty(gateway.hostname.clone());
    plan.gateway = gateway;
    plan.tls = config
        .tls
        .iter()
        .map(|t| cx.tls(t, &plan.gateway.hostname))
        .collect();
    let tls_names = names(plan.tls.iter().map(|t| t.name.as_str()));
    plan.listeners = config
        .listeners
        .iter()
        .filter_map(|l| cx.listener(l, &tls_names))
        .collect();
    plan.backends = config.backends.iter().map(|b| cx.backend(b)).collect();
    plan.domains = cx.domains(&config.domains);
    let backend_names = names(plan.backends.iter().map(|b| b.name.as_str()));
    // The recipient table is the one place a mailbox's addresses are kept;
    // their keys are borrowed from the configuration until it is built.
    let mut mailbox_addresses = Vec::with_capacity(config.mailboxes.len() * 2);
    // Sized once; a name's span holds its quotes, so this is a little more.
    let name_bytes = config.mailboxes.iter().map(|m| m.name.span.len()).sum();
    plan.mailboxes = Mailboxes::with_capacity(config.mailboxes.len(), name_bytes);
    for mailbox in &config.mailboxes {
        if let Some(lowered) = cx.mailbox(mailbox, &backend_names) {
            let target = Target::Mailbox(index(plan.mailboxes.len()));
            mailbox_addresses.extend(
                mailbox
                    .addresses
                    .iter()
                    .map(|a| (normalized_address(db.text(a)), target)),
            );
            plan.mailboxes.push(lowered);
        }
    }
    let recipients = Recipients {
        mailbox_list: &plan.mailboxes,
        mailboxes: OnceCell::new(),
        groups: names(config.groups.iter().map(|g| db.text(&g.name))),
    };
    plan.groups = config
        .groups
        .iter()
        .map(|g| cx.group(g, &recipients))
        .collect();
    plan.recipients = recipient_table(db, mailbox_addresses, &config.groups);
    plan.auth = auth(config.auth.as_ref());
    plan.connectors = config
        .connectors
        .iter()
        .filter_map(|c| cx.connector(c, &recipients))
        .collect();
    plan.relay = config
        .relay
        .iter()
        .flat_map(|r| &r.rules)
        .filter_map(|r| cx.relay_rule(r))
        .collect();
    plan.unknown_recipients = match config.unknown_recipients.as_ref().map(|u| &u.value) {
        Some(ast::UnknownRecipients::Forward { host, port, .. }) => UnknownRecipients::Forward {
            host: host.clone(),
            port: *port,
        },
        Some(ast::UnknownRecipients::Reject) | None => UnknownRecipients::Reject,
    };
    plan.unknown_recipients_source = config.unknown_recipients.as_ref().map(|u| cx.at(u.span));
    plan.journal = config.journal.as_ref().map(|j| Journal {
        to: mailgw_plan::normalize_address(&j.to.value),
        scope: match j.scope.value {
            ast::Direction::Inbound => JournalScope::Inbound,
            ast::Direction::Outbound => JournalScope::Outbound,
            ast::Direction::Both => JournalScope::Both,
        },
        source: cx.at(j.span),
    });
    plan.disclaimers = config
        .disclaimers
        .iter()
        .map(|d| Disclaimer {
            direction: direction(d.direction.value),
            position: match d.position.value {
                ast::Position::Append => Position::Append,
                ast::Position::Prepend => Position::Prepend,
            },
            text: d.text.value.clone(),
            source: cx.at(d.span),
        })
        .collect();
    plan.filters = config
        .filters
        .iter()
        .map(|f| Filter {
            direction: direction(f.direction.value),
            host: f.host.value.clone(),
            port: f.port,
            source: cx.at(f.span),
        })
        .collect();
    plan.etrn = config
        .etrn
        .iter()
        .map(|e| Etrn {
            domains: e
                .domains
                .iter()
                .filter_map(|d| DomainPattern::parse(&d.value).ok())
                .collect(),
            from: e
                .from
                .iter()
                .filter_map(|n| Network::new(n.value.addr, n.value.prefix).ok())
                .collect(),
            source: cx.at(e.span),
        })
        .collect();
    plan.ndr = Ndr {
        copy_to: config
            .ndr
            .iter()
            .flat_map(|n| &n.copy_to)
            .map(|a| mailgw_plan::normalize_address(&a.value))
            .collect(),
    };
    plan.queue = queue(config.queue.as_ref());
    plan.log = log(config.log.as_ref());
    plan.dns = Dns {
        servers: config
            .dns
            .iter()
            .flat_map(|d| &d.servers)
            .map(|s| s.value)
            .collect(),
    };
    plan.sources = cx.sources;
    plan
}

/// Name → index of the first item with that name.
fn names<'a>(items: impl Iterator<Item = &'a str>) -> NameTable<'a, u32> {
    NameTable::from_indexed(items.enumerate().map(|(i, name)| (name, index(i))))
}

/// An index as stored in the plan. A configuration never has 2^32 items of
/// one kind; saturating keeps this panic-free regardless.
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// Mailbox and group names, for group members and delivery restrictions.
struct Recipients<'a> {
    /// The plan's mailboxes, whose names [`Recipients::mailbox`] looks up.
    mailbox_list: &'a Mailboxes,
    /// Their name table, made at the first lookup: most configurations name
    /// few mailboxes or none there, and a directory has 100,000s of them.
    mailboxes: OnceCell<NameTable<'a, u32>>,
    groups: NameTable<'a, u32>,
}

impl Recipients<'_> {
    /// The index of the mailbox called `name`.
    fn mailbox(&self, name: &str) -> Option<u32> {
        let table = self
            .mailboxes
            .get_or_init(|| names(self.mailbox_list.iter().map(|m| m.name)));
        table.get(name).copied()
    }
}

/// The state of one lowering: the sources and the source map being built.
struct Lowering<'a> {
    db: &'a SourceDb,
    sources: SourceMap,
    /// Each [`FileId`] already seen: its source map index, and the line
    /// (0-based) of the last item lowered from it, where the next one's
    /// line is looked for first.
    files: Vec<Option<(u32, usize)>>,
    /// The main file's directory, which source map names are relative to.
    root: Option<PathBuf>,
}

impl<'a> Lowering<'a> {
    fn new(db: &'a SourceDb) -> Lowering<'a> {
        let root = db
            .files()
            .next()
            .and_then(|(_, main)| main.path.parent().map(Path::to_path_buf));
        Lowering {
            db,
            sources: SourceMap::default(),
            files: Vec::new(),
            root,
        }
    }

    /// The source reference of a span: its file and 1-based line.
    fn at(&mut self, span: Span) -> SourceRef {
        let FileId(id) = span.file;
        let slot = id as usize;
        if self.files.len() <= slot {
            self.files.resize(slot + 1, None);
        }
        let Some((_, file)) = self.db.files().nth(slot) else {
            return SourceRef::new(u32::MAX, 0);
        };
        let (file_index, near) = match self.files.get(slot).copied().flatten() {
            Some(seen) => seen,
            None => {
                let name = self.display(&file.path, &file.name);
                (self.sources.add(&name), 0)
            }
        };
        let line = file.line_near(span.start, near);
        if let Some(entry) = self.files.get_mut(slot) {
            *entry = Some((file_index, line));
        }
        SourceRef::new(file_index, line as u32 + 1)
    }

    /// The name of a file in the source map: relative to the main file's
    /// directory, with `/` separators, `..` where it lies outside.
    fn display(&self, path: &Path, fallback: &str) -> String {
        match &self.root {
            Some(root) => relative(path, root).unwrap_or_else(|| fallback.to_owned()),
            None => fallback.to_owned(),
        }
    }

    fn gateway(&mut self, gateway: Option<&ast::Gateway>) -> Gateway {
        let hostname = gateway
            .and_then(|g| g.hostname.as_ref())
            .map_or(DEFAULT_HOSTNAME, |h| h.value.as_str());
        let mut out = Gateway::new(hostname);
        if let Some(g) = gateway {
            out.postmaster = g
                .postmaster
                .as_ref()
                .map(|p| mailgw_plan::normalize_address(&p.value));
            if let Some(size) = &g.max_message_size {
                out.max_message_size = size.value;
            }
            if let Some(hops) = &g.max_hops {
                out.max_hops = hops.value;
            }
        }
        out
    }

    fn tls(&mut self, profile: &ast::TlsProfile, hostname: &str) -> TlsProfile {
        let certificate = match (&profile.certificate, &profile.key, profile.self_signed) {
            (Some(certificate), Some(key), None) => TlsSource::Files {
                certificate: absolute(&certificate.value),
                key: absolute(&key.value),
            },
            _ => TlsSource::SelfSigned {
                hostnames: vec![hostname.to_owned()],
            },
        };
        TlsProfile {
            name: profile.name.value.clone(),
            certificate,
            source: self.at(profile.span),
        }
    }

    /// A listener, or `None` when its TLS profile does not exist: leaving it
    /// out is safer than running it without TLS.
    fn listener(
        &mut self,
        listener: &ast::Listener,
        tls_names: &NameTable<'_, u32>,
    ) -> Option<Listener> {
        let tls = match &listener.tls {
            None => ListenerTls {
                mode: TlsMode::None,
                profile: None,
            },
            Some(tls) if tls.value.mode == ast::TlsMode::None => ListenerTls {
                mode: TlsMode::None,
                profile: None,
            },
            Some(tls) => {
                let name = tls.value.profile.as_ref()?;
                ListenerTls {
                    mode: match tls.value.mode {
                        ast::TlsMode::None => TlsMode::None,
                        ast::TlsMode::StartTlsOffer => TlsMode::StartTlsOffer,
                        ast::TlsMode::StartTlsRequire => TlsMode::StartTlsRequire,
                        ast::TlsMode::Implicit => TlsMode::Implicit,
                    },
                    profile: Some(*tls_names.get(name.value.as_str())?),
                }
            }
        };
        let mut limits = Limits::default();
        if let Some(n) = &listener.max_connections {
            limits.max_connections = n.value;
        }
        if let Some(n) = &listener.max_per_client {
            limits.max_per_client = n.value;
        }
        for (kind, seconds) in &listener.timeouts {
            let seconds = saturate(seconds.value);
            match kind.value {
                ast::TimeoutKind::Greeting => limits.greeting_timeout_s = seconds,
                ast::TimeoutKind::Command => limits.command_timeout_s = seconds,
                ast::TimeoutKind::Data => limits.data_timeout_s = seconds,
                ast::TimeoutKind::Idle => limits.idle_timeout_s = seconds,
                ast::TimeoutKind::Session => limits.session_deadline_s = seconds,
            }
        }
        if let Some(rate) = &listener.min_data_rate {
            limits.min_data_rate = saturate(rate.value);
        }
        Some(Listener {
            name: listener.name.value.clone(),
            protocol: match listener.protocol.as_ref().map(|p| p.value) {
                Some(ast::Protocol::Smtp) | None => Protocol::Smtp,
                Some(ast::Protocol::Imap) => Protocol::Imap,
                Some(ast::Protocol::Pop3) => Protocol::Pop3,
            },
            binds: listener.binds.iter().map(|b| b.value).collect(),
            tls,
            auth: match listener.auth.as_ref().map(|a| a.value) {
                Some(ast::AuthMode::Off) | None => AuthMode::Off,
                Some(ast::AuthMode::Offer) => AuthMode::Offer,
                Some(ast::AuthMode::Require) => AuthMode::Require,
            },
            limits,
            filter_return: listener.filter_return.is_some(),
            source: self.at(listener.span),
        })
    }

    fn backend(&mut self, backend: &ast::Backend) -> Backend {
        let endpoint = |e: &Option<crate::source::Spanned<ast::Endpoint>>| {
            e.as_ref().map(|e| Endpoint {
                port: e.value.port,
                tls: match e.value.tls {
                    ast::EndpointTls::None => EndpointTls::None,
                    ast::EndpointTls::StartTls => EndpointTls::StartTls,
                    ast::EndpointTls::Implicit => EndpointTls::Implicit,
                },
            })
        };
        Backend {
            name: backend.name.value.clone(),
            host: backend
                .host
                .as_ref()
                .map(|h| h.value.clone())
                .unwrap_or_default(),
            imap: endpoint(&backend.imap),
            pop3: endpoint(&backend.pop3),
            lmtp: endpoint(&backend.lmtp),
            smtp: endpoint(&backend.smtp),
            forward_client: backend.forward_client.as_ref().is_some_and(|f| f.value),
            ca: backend.ca.as_ref().map(|ca| absolute(&ca.value)),
            source: self.at(backend.span),
        }
    }

    /// Local domains, each once (the first `domain` line wins).
    fn domains(&mut self, domains: &[ast::Domain]) -> Vec<LocalDomain> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for domain in domains {
            let name = mailgw_plan::normalize_domain(&domain.name.value)
                .unwrap_or_else(|_| domain.name.value.to_lowercase());
            if seen.insert(name.clone()) {
                out.push(LocalDomain {
                    name,
                    source: self.at(domain.span),
                });
            }
        }
        out
    }

    /// A mailbox, or `None` when its backend does not exist (its addresses
    /// then are unknown and refused).
    fn mailbox<'m>(
        &mut self,
        mailbox: &'m ast::Mailbox,
        backends: &NameTable<'_, u32>,
    ) -> Option<Mailbox<'m>>
    where
        'a: 'm,
    {
        let backend = *backends.get(self.db.text(&mailbox.backend))?;
        Some(Mailbox {
            name: self.db.text(&mailbox.name),
            backend,
            password_hash: mailbox.password.as_ref().map(|p| self.db.text(p)),
            source: self.at(mailbox.span),
        })
    }

    fn group(&mut self, group: &ast::Group, names: &Recipients<'_>) -> Group {
        let members = group
            .members
            .iter()
            .map(|m| {
                let text = self.db.text(m);
                if let Some(i) = names.mailbox(text) {
                    Member::Mailbox(i)
                } else if let Some(&i) = names.groups.get(text) {
                    Member::Group(i)
                } else {
                    Member::External(mailgw_plan::normalize_address(text))
                }
            })
            .collect();
        Group {
            name: self.db.text(&group.name).to_owned(),
            members,
            source: self.at(group.span),
        }
    }

    /// A connector, or `None` without a `deliver` statement.
    fn connector(
        &mut self,
        connector: &ast::Connector,
        names: &Recipients<'_>,
    ) -> Option<Connector> {
        let deliver = match &connector.deliver.as_ref()?.value {
            ast::Deliver::Smarthost { host, port } => Deliver::Smarthost {
                host: host.clone(),
                port: *port,
            },
            ast::Deliver::Mx { port } => Deliver::Mx { port: *port },
        };
        let address_spaces = connector
            .address_spaces
            .iter()
            .filter_map(|space| {
                Some(AddressSpace {
                    pattern: DomainPattern::parse(&space.pattern.value).ok()?,
                    cost: space.cost.value,
                    source: self.at(space.span),
                })
            })
            .collect();
        let senders = |list: &[crate::source::Spanned<ast::SenderRef>]| -> Vec<SenderMatch> {
            list.iter().map(|s| sender(&s.value, names)).collect()
        };
        Some(Connector {
            name: connector.name.value.clone(),
            address_spaces,
            deliver,
            tls: match connector.tls.as_ref().map(|t| t.value) {
                Some(ast::TlsPolicy::None) => TlsPolicy::None,
                Some(ast::TlsPolicy::Opportunistic) | None => TlsPolicy::Opportunistic,
                Some(ast::TlsPolicy::Require) => TlsPolicy::Require,
            },
            credentials: connector.credentials.as_ref().map(|c| absolute(&c.value)),
            ca: connector.ca.as_ref().map(|c| absolute(&c.value)),
            accept_from: senders(&connector.accept_from),
            reject_from: senders(&connector.reject_from),
            source: self.at(connector.span),
        })
    }

    /// A relay rule. A condition that cannot be lowered fails closed: an
    /// `allow` rule with one is left out, a `deny` rule loses it (and so
    /// denies more).
    fn relay_rule(&mut self, rule: &ast::RelayRule) -> Option<RelayRule> {
        let action = match rule.action.value {
            ast::Action::Allow => RelayAction::Allow,
            ast::Action::Deny => RelayAction::Deny,
        };
        let mut conditions = Vec::with_capacity(rule.conditions.len());
        for condition in &rule.conditions {
            let lowered = match &condition.value {
                ast::Condition::Authenticated => Some(Condition::Authenticated),
                ast::Condition::From(n) => Network::new(n.addr, n.prefix).ok().map(Condition::From),
                ast::Condition::To(p) => AddressPattern::parse(p).ok().map(Condition::To),
                ast::Condition::Sender(p) => AddressPattern::parse(p).ok().map(Condition::Sender),
            };
            match (lowered, action) {
                (Some(c), _) => conditions.push(c),
                (None, RelayAction::Allow) => return None,
                (None, RelayAction::Deny) => {}
            }
        }
        Some(RelayRule {
            action,
            conditions,
            source: self.at(rule.span),
        })
    }
}

/// A delivery restriction entry. A name that is no mailbox or group, or a
/// pattern that does not parse, matches no sender: it is kept as an exact
/// "address" no real address equals.
fn sender(sender: &ast::SenderRef, names: &Recipients<'_>) -> SenderMatch {
    match sender {
        ast::SenderRef::Mailbox(name) => match names.mailbox(name) {
            Some(i) => SenderMatch::Mailbox(i),
            None => SenderMatch::Pattern(AddressPattern::Address(name.clone())),
        },
        ast::SenderRef::Group(name) => match names.groups.get(name.as_str()) {
            Some(&i) => SenderMatch::Group(i),
            None => SenderMatch::Pattern(AddressPattern::Address(name.clone())),
        },
        ast::SenderRef::Pattern(text) => SenderMatch::Pattern(
            AddressPattern::parse(text).unwrap_or_else(|_| AddressPattern::Address(text.clone())),
        ),
    }
}

/// The recipient table of every mailbox address (normalized, with their
/// mailboxes) and group address. An address that appears twice (the checks
/// refuse that) belongs to its first owner: mailboxes in order, then groups
/// in order.
fn recipient_table<'a>(
    db: &'a SourceDb,
    mut mailbox_addresses: Vec<(Cow<'a, str>, Target)>,
    groups: &'a [ast::Group],
) -> RecipientTable {
    let group_addresses = groups.iter().enumerate().flat_map(|(i, g)| {
        g.addresses
            .iter()
            .map(move |a| (normalized_address(db.text(a)), Target::Group(index(i))))
    });
    // An address listed twice on one recipient is only a warning, so the
    // first definition is kept.
    mailbox_addresses.extend(group_addresses);
    RecipientTable::build_first_wins(mailbox_addresses)
}

fn auth(auth: Option<&ast::Auth>) -> AuthPlan {
    let mut out = AuthPlan::default();
    if let Some(a) = auth {
        if let Some(verify) = &a.verify {
            out.verify = match verify.value {
                ast::Verify::Directory => Verify::Directory,
                ast::Verify::BackendImap => Verify::BackendImap,
            };
        }
        if let Some(n) = &a.max_failures {
            out.max_failures = n.value;
        }
        if let Some(ms) = &a.failure_delay {
            out.failure_delay_ms = ms.value;
        }
    }
    out
}

fn queue(queue: Option<&ast::Queue>) -> Queue {
    let mut out = Queue::default();
    if let Some(q) = queue {
        if let Some(spool) = &q.spool {
            out.spool = absolute(&spool.value);
        }
        if !q.retry.is_empty() {
            out.retry = q.retry.iter().map(|r| saturate(r.value)).collect();
        }
        if let Some(w) = &q.warn_after {
            out.warn_after_s = saturate(w.value);
        }
        if let Some(e) = &q.expire {
            out.expire_s = saturate(e.value);
        }
        if let Some(c) = &q.concurrency {
            out.concurrency = c.value.max(1);
        }
        if let Some(c) = &q.per_destination {
            out.per_destination = c.value.max(1);
        }
    }
    out
}

fn log(log: Option<&ast::Log>) -> Log {
    let mut out = Log::default();
    if let Some(l) = log {
        if let Some(level) = &l.level {
            out.level = match level.value.as_str() {
                "error" => LogLevel::Error,
                "warn" => LogLevel::Warn,
                "debug" => LogLevel::Debug,
                "trace" => LogLevel::Trace,
                _ => LogLevel::Info,
            };
        }
        if let Some(trace) = &l.protocol_trace {
            out.protocol_trace = trace.value;
        }
    }
    out
}

fn direction(d: ast::Direction) -> Direction {
    match d {
        ast::Direction::Inbound => Direction::Inbound,
        ast::Direction::Outbound => Direction::Outbound,
        ast::Direction::Both => Direction::Both,
    }
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An absolute path as text: the runtime may run in another directory.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// `path` relative to the directory `root`, `/`-separated; `None` when one
/// is absolute and the other is not.
fn relative(path: &Path, root: &Path) -> Option<String> {
    if path.is_absolute() != root.is_absolute() {
        return None;
    }
    let path: Vec<Component<'_>> = path
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    let root: Vec<Component<'_>> = root
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    let common = path.iter().zip(&root).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = root[common..].iter().map(|_| "..".to_owned()).collect();
    parts.extend(
        path[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Diagnostics;
    use crate::reader;
    use mailgw_plan::{parse_mailbox, Resolution};

    /// Reads `text` as `test.mailgw` (no file needed) and lowers it; the
    /// reader must accept it. Checks are not run: lowering must cope.
    fn lowered(text: &str) -> Plan {
        let (db, config) = read(text);
        lower(&db, &config)
    }

    fn read(text: &str) -> (SourceDb, Config) {
        let mut db = SourceDb::new();
        let mut diagnostics = Diagnostics::new();
        let config = reader::read_text(
            &mut db,
            &mut diagnostics,
            Path::new("test.mailgw"),
            text.to_owned(),
        );
        let errors: Vec<String> = diagnostics.iter().map(|d| d.message.clone()).collect();
        assert!(!diagnostics.has_errors(), "reader errors: {errors:?}");
        (db, config)
    }

    fn line(plan: &Plan, source: SourceRef) -> String {
        plan.sources.describe(source)
    }

    const CONFIG: &str = r#"gateway { hostname "mail.example.com"; postmaster "postmaster@Example.COM" }
tls "public" { self-signed }
listener "mx" {
    protocol smtp
    bind 0.0.0.0:25
    tls starttls offer "public"
    auth off
    timeout command 2m, data 90s
    min-data-rate 1KiB
    max-connections 50
}
mailbox "alice" on "mbx2" { address "alice@example.com", "A.Smith@Example.COM." }
backend "mbx1" { host "10.0.0.11"; lmtp 24 }
backend "mbx2" { host "10.0.0.12"; lmtp 24; ca "ca.pem" }
domain "example.com" local
group "all" { address "all@example.com"; member "sales", "bob", "Partner@Foreign.Example." }
mailbox "bob" on "mbx1" { address "bob@example.com" }
group "sales" { address "sales@example.com"; member "alice" }
connector "out" {
    address-space "*" cost 5
    deliver mx
    accept-from group "sales", mailbox "bob", "*@example.com"
}
relay {
    allow authenticated
    deny all
}
auth { verify directory; max-failures 3; failure-delay 2s }
dns { server 192.0.2.53:53, [2001:db8::53]:53 }
unknown-recipients forward to catchall.example.com:25
"#;

    #[test]
    fn names_become_indices_of_first_definitions() {
        let plan = lowered(CONFIG);
        assert_eq!(plan.backends[1].name, "mbx2");
        let mailbox = |i| plan.mailboxes.get(i).expect("lowered");
        let alice = mailbox(0);
        assert_eq!((alice.name, alice.backend), ("alice", 1));
        assert_eq!(mailbox(1).backend, 0, "bob is on mbx1");
        assert_eq!(plan.listeners[0].tls.profile, Some(0));
        assert_eq!(plan.listeners[0].tls.mode, TlsMode::StartTlsOffer);
        let out = &plan.connectors[0];
        assert_eq!(
            out.accept_from,
            [
                SenderMatch::Group(1),
                SenderMatch::Mailbox(1),
                SenderMatch::Pattern(AddressPattern::parse("*@example.com").expect("valid")),
            ]
        );
        assert_eq!(out.deliver, Deliver::Mx { port: 25 });
        assert_eq!(out.tls, TlsPolicy::Opportunistic, "the default policy");
        // Every index points somewhere: the plan survives its own loader.
        assert_eq!(Plan::from_bytes(&plan.to_bytes()).expect("loads"), plan);
    }

    #[test]
    fn group_members_are_mailboxes_groups_or_external_addresses() {
        let plan = lowered(CONFIG);
        assert_eq!(plan.groups[0].name, "all");
        assert_eq!(
            plan.groups[0].members,
            [
                Member::Group(1),
                Member::Mailbox(1),
                Member::External("Partner@foreign.example".to_owned()),
            ]
        );
        assert_eq!(plan.groups[1].members, [Member::Mailbox(0)]);
    }

    #[test]
    fn recipient_table_finds_every_address() {
        let plan = lowered(CONFIG);
        let lookup = |a: &str| plan.recipients.lookup(&mailgw_plan::normalize_address(a));
        assert_eq!(lookup("alice@example.com"), Some(Target::Mailbox(0)));
        assert_eq!(lookup("A.Smith@example.com"), Some(Target::Mailbox(0)));
        assert_eq!(lookup("a.smith@example.com"), None, "local parts keep case");
        assert_eq!(lookup("bob@EXAMPLE.com"), Some(Target::Mailbox(1)));
        assert_eq!(lookup("all@example.com"), Some(Target::Group(0)));
        assert_eq!(lookup("sales@example.com"), Some(Target::Group(1)));
        assert_eq!(plan.recipients.len(), 5);
        assert_eq!(
            plan.gateway.postmaster.as_deref(),
            Some("postmaster@example.com")
        );
        let resolved = plan.resolve(&parse_mailbox("A.Smith@example.com").expect("valid"));
        assert!(matches!(
            resolved,
            Resolution::Mailbox {
                mailbox: 0,
                backend: 1,
                ..
            }
        ));
    }

    #[test]
    fn every_item_points_at_its_line() {
        let plan = lowered(CONFIG);
        assert_eq!(plan.sources.files, ["test.mailgw"]);
        assert_eq!(line(&plan, plan.tls[0].source), "test.mailgw:2");
        assert_eq!(line(&plan, plan.listeners[0].source), "test.mailgw:3");
        let mailbox = |i| plan.mailboxes.get(i).expect("lowered").source;
        assert_eq!(line(&plan, mailbox(0)), "test.mailgw:12");
        assert_eq!(line(&plan, plan.backends[0].source), "test.mailgw:13");
        assert_eq!(line(&plan, plan.domains[0].source), "test.mailgw:15");
        assert_eq!(line(&plan, plan.groups[0].source), "test.mailgw:16");
        assert_eq!(line(&plan, mailbox(1)), "test.mailgw:17");
        assert_eq!(line(&plan, plan.connectors[0].source), "test.mailgw:19");
        assert_eq!(
            line(&plan, plan.connectors[0].address_spaces[0].source),
            "test.mailgw:20"
        );
        let rules: Vec<String> = plan.relay.iter().map(|r| line(&plan, r.source)).collect();
        assert_eq!(rules, ["test.mailgw:25", "test.mailgw:26"]);
        assert_eq!(
            plan.unknown_recipients_source
                .map(|s| line(&plan, s))
                .as_deref(),
            Some("test.mailgw:30")
        );
    }

    #[test]
    fn settings_reach_the_plan() {
        let plan = lowered(CONFIG);
        let limits = plan.listeners[0].limits;
        assert_eq!(limits.command_timeout_s, 120);
        assert_eq!(limits.data_timeout_s, 90);
        assert_eq!(limits.min_data_rate, 1024);
        assert_eq!(limits.max_connections, 50);
        assert_eq!(
            limits.greeting_timeout_s,
            Limits::default().greeting_timeout_s
        );
        assert_eq!(
            plan.tls[0].certificate,
            TlsSource::SelfSigned {
                hostnames: vec!["mail.example.com".to_owned()]
            }
        );
        assert_eq!(plan.auth.verify, Verify::Directory);
        assert_eq!(
            (plan.auth.max_failures, plan.auth.failure_delay_ms),
            (3, 2000)
        );
        assert_eq!(
            plan.dns.servers,
            [
                "192.0.2.53:53".parse().expect("addr"),
                "[2001:db8::53]:53".parse().expect("addr")
            ]
        );
        let ca = plan.backends[1].ca.as_deref().expect("ca");
        assert!(
            Path::new(ca).is_absolute() && ca.ends_with("ca.pem"),
            "{ca}"
        );
        assert_eq!(
            plan.unknown_recipients,
            UnknownRecipients::Forward {
                host: "catchall.example.com".to_owned(),
                port: 25
            }
        );
    }

    #[test]
    fn absent_blocks_get_defaults() {
        let plan = lowered("domain \"example.com\" local\ntls \"t\" { self-signed }\n");
        assert_eq!(plan.gateway.hostname, DEFAULT_HOSTNAME);
        assert_eq!(plan.gateway.postmaster, None);
        assert_eq!(
            plan.tls[0].certificate,
            TlsSource::SelfSigned {
                hostnames: vec!["localhost".to_owned()]
            }
        );
        assert_eq!(plan.auth, AuthPlan::default());
        assert_eq!(
            (plan.auth.max_failures, plan.auth.failure_delay_ms),
            (5, 1000)
        );
        assert_eq!(plan.queue, Queue::default());
        assert_eq!(plan.unknown_recipients, UnknownRecipients::Reject);
        assert_eq!(plan.unknown_recipients_source, None);
        assert!(plan.dns.servers.is_empty());
        assert!(plan.relay.is_empty());
    }

    #[test]
    fn same_sources_same_bytes() {
        assert_eq!(lowered(CONFIG).to_bytes(), lowered(CONFIG).to_bytes());
    }

    #[test]
    fn broken_references_are_skipped_not_panicked_on() {
        // The checks refuse all of this; lowering must still give a plan
        // the loader accepts.
        let plan = lowered(
            r#"listener "mx" { protocol smtp; bind 0.0.0.0:25; tls implicit "nope" }
mailbox "ghost" on "nowhere" { address "ghost@example.com" }
mailbox "alice" on "mbx" { address "alice@example.com" }
mailbox "alice" on "mbx" { address "alice@example.com", "twice@example.com" }
backend "mbx" { host "10.0.0.1"; lmtp 24 }
group "g" { member "ghost", "nobody" }
connector "c" { address-space "*" cost 1; deliver mx; accept-from group "missing"; reject-from mailbox "ghost" }
"#,
        );
        assert!(plan.listeners.is_empty(), "no TLS profile: left out");
        let names: Vec<&str> = plan.mailboxes.iter().map(|m| m.name).collect();
        assert_eq!(names, ["alice", "alice"]);
        assert_eq!(
            plan.recipients.lookup("alice@example.com"),
            Some(Target::Mailbox(0)),
            "the first owner of a duplicate address keeps it"
        );
        assert_eq!(
            plan.recipients.lookup("twice@example.com"),
            Some(Target::Mailbox(1))
        );
        assert_eq!(plan.recipients.lookup("ghost@example.com"), None);
        assert_eq!(
            plan.groups[0].members,
            [
                Member::External("ghost".to_owned()),
                Member::External("nobody".to_owned())
            ]
        );
        // An unknown name in accept-from matches nobody: the restriction
        // stays closed; in reject-from it rejects nobody.
        let alice = parse_mailbox("alice@example.com").expect("valid");
        assert!(plan.connector_accepts(0, Some(&alice)).is_err());
        plan.connectors[0].reject_from.iter().for_each(|m| {
            assert!(matches!(
                m,
                SenderMatch::Pattern(AddressPattern::Address(_))
            ));
        });
        assert!(Plan::from_bytes(&plan.to_bytes()).is_ok());
    }

    #[test]
    fn unusable_relay_conditions_fail_closed() {
        let (db, mut config) = read("relay { allow authenticated\n deny authenticated }\n");
        let relay = config.relay.as_mut().expect("relay");
        for rule in &mut relay.rules {
            let span = rule.span;
            rule.conditions.push(crate::source::Spanned::new(
                ast::Condition::To("a*b@example.com".to_owned()),
                span,
            ));
        }
        let plan = lower(&db, &config);
        assert_eq!(plan.relay.len(), 1, "the allow rule is left out");
        assert_eq!(plan.relay[0].action, RelayAction::Deny);
        assert_eq!(plan.relay[0].conditions, [Condition::Authenticated]);
    }

    #[test]
    fn source_names_are_relative_to_the_main_file() {
        assert_eq!(
            relative(
                Path::new("/etc/mailgw/users/a.toml"),
                Path::new("/etc/mailgw")
            ),
            Some("users/a.toml".to_owned())
        );
        assert_eq!(
            relative(Path::new("/etc/common.mailgw"), Path::new("/etc/mailgw")),
            Some("../common.mailgw".to_owned())
        );
        assert_eq!(
            relative(Path::new("test.mailgw"), Path::new("")),
            Some("test.mailgw".to_owned())
        );
        assert_eq!(relative(Path::new("/a"), Path::new("b")), None);
    }
}
