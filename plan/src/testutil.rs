//! A small plan shared by the unit tests. Line numbers stand in for source
//! positions so that tests can check which line decided.

use crate::*;

/// Line `line` of file 0.
pub fn src(line: u32) -> SourceRef {
    SourceRef::new(0, line)
}

/// Parses a mailbox or panics.
pub fn addr(text: &str) -> Address {
    parse_mailbox(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn pattern(text: &str) -> AddressPattern {
    AddressPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn space(text: &str, cost: u32, line: u32) -> AddressSpace {
    AddressSpace {
        pattern: DomainPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")),
        cost,
        source: src(line),
    }
}

fn connector(name: &str, line: u32, spaces: Vec<AddressSpace>) -> Connector {
    Connector {
        name: name.to_owned(),
        address_spaces: spaces,
        deliver: Deliver::Mx { port: 25 },
        tls: TlsPolicy::Opportunistic,
        credentials: None,
        ca: None,
        accept_from: Vec::new(),
        reject_from: Vec::new(),
        source: src(line),
    }
}

/// A mailbox on backend 0, and its addresses for the recipient table.
fn mailbox<'a>(name: &'a str, addresses: &[&str], line: u32) -> (Mailbox<'a>, Vec<String>) {
    let mailbox = Mailbox {
        name,
        backend: 0,
        password_hash: None,
        source: src(line),
    };
    (
        mailbox,
        addresses.iter().map(|a| normalize_address(a)).collect(),
    )
}

/// The test plan: two local domains, three mailboxes, two nested groups
/// that form a cycle, five connectors and four relay rules.
pub fn sample_plan() -> Plan {
    let mut plan = Plan::empty("mail.example.com");
    plan.sources.add("examples/frontend.mailgw");
    plan.gateway.postmaster = Some("postmaster@example.com".into());
    plan.tls.push(TlsProfile {
        name: "public".into(),
        certificate: TlsSource::Files {
            certificate: "certs/mail.pem".into(),
            key: "certs/mail.key".into(),
        },
        source: src(2),
    });
    plan.listeners.push(Listener {
        name: "mx".into(),
        protocol: Protocol::Smtp,
        binds: vec![
            "0.0.0.0:25".parse().expect("addr"),
            "[::]:25".parse().expect("addr"),
        ],
        tls: ListenerTls {
            mode: TlsMode::StartTlsOffer,
            profile: Some(0),
        },
        auth: AuthMode::Off,
        limits: Limits::default(),
        filter_return: false,
        source: src(3),
    });
    plan.listeners.push(Listener {
        name: "submission".into(),
        protocol: Protocol::Smtp,
        binds: vec!["0.0.0.0:587".parse().expect("addr")],
        tls: ListenerTls {
            mode: TlsMode::StartTlsRequire,
            profile: Some(0),
        },
        auth: AuthMode::Require,
        limits: Limits::default(),
        filter_return: false,
        source: src(4),
    });
    plan.backends.push(Backend {
        name: "mbx1".into(),
        host: "10.0.0.11".into(),
        imap: Some(Endpoint {
            port: 143,
            tls: EndpointTls::StartTls,
        }),
        pop3: Some(Endpoint {
            port: 110,
            tls: EndpointTls::None,
        }),
        lmtp: Some(Endpoint {
            port: 24,
            tls: EndpointTls::None,
        }),
        smtp: None,
        forward_client: true,
        ca: Some("certs/backend-ca.pem".into()),
        source: src(5),
    });
    plan.domains.push(LocalDomain {
        name: "example.com".into(),
        source: src(10),
    });
    plan.domains.push(LocalDomain {
        name: "example.org".into(),
        source: src(11),
    });
    let mut entries = Vec::new();
    for (mailbox, addresses) in [
        mailbox("alice", &["alice@example.com", "a.smith@example.com"], 20),
        mailbox("bob", &["bob@example.org"], 21),
        mailbox("carol", &["carol@example.org"], 22),
    ] {
        let target = Target::Mailbox(plan.mailboxes.len() as u32);
        entries.extend(addresses.into_iter().map(|a| (a, target)));
        plan.mailboxes.push(mailbox);
    }
    plan.groups.push(Group {
        name: "sales".into(),
        members: vec![
            Member::Mailbox(0),
            Member::Group(1),
            Member::External("partner@foreign.example".into()),
            Member::External("ghost@example.com".into()),
            Member::External("bob@example.org".into()),
            Member::External("not an address".into()),
        ],
        source: src(30),
    });
    plan.groups.push(Group {
        name: "team".into(),
        members: vec![
            Member::Mailbox(1),
            Member::Mailbox(0),
            Member::Group(0),
            Member::External("partner@Foreign.Example.".into()),
        ],
        source: src(31),
    });
    entries.push(("sales@example.com".into(), Target::Group(0)));
    entries.push(("team@example.com".into(), Target::Group(1)));
    plan.recipients = RecipientTable::build(entries).expect("no duplicates");

    let mut internet = connector("internet", 50, vec![space("*", 1, 51)]);
    internet.deliver = Deliver::Smarthost {
        host: "relay.isp.example".into(),
        port: 587,
    };
    internet.tls = TlsPolicy::Require;
    internet.credentials = Some("secrets/isp.toml".into());
    internet.accept_from = vec![SenderMatch::Group(0)];
    internet.reject_from = vec![SenderMatch::Mailbox(2)];
    plan.connectors.push(internet);
    plan.connectors
        .push(connector("backup", 52, vec![space("*", 1, 53)]));
    plan.connectors
        .push(connector("slow", 54, vec![space("*", 5, 55)]));
    plan.connectors.push(connector(
        "tochter",
        60,
        vec![
            space("*.tochter.example", 1, 61),
            space("hq.tochter.example", 3, 62),
        ],
    ));
    plan.connectors.push(connector(
        "eu",
        63,
        vec![
            space("hq.tochter.example", 2, 64),
            space("*.eu.tochter.example", 1, 65),
        ],
    ));

    plan.relay = vec![
        RelayRule {
            action: RelayAction::Allow,
            conditions: vec![Condition::Authenticated],
            source: src(40),
        },
        RelayRule {
            action: RelayAction::Deny,
            conditions: vec![Condition::From(
                Network::parse("10.66.0.0/16").expect("net"),
            )],
            source: src(41),
        },
        RelayRule {
            action: RelayAction::Allow,
            conditions: vec![Condition::From(Network::parse("10.0.0.0/8").expect("net"))],
            source: src(42),
        },
        RelayRule {
            action: RelayAction::Allow,
            conditions: vec![
                Condition::To(pattern("*.tochter.example")),
                Condition::Sender(pattern("*@example.com")),
            ],
            source: src(43),
        },
    ];
    plan.journal = Some(Journal {
        to: "journal@example.com".into(),
        scope: JournalScope::Both,
        source: src(70),
    });
    plan.disclaimers.push(Disclaimer {
        direction: Direction::Outbound,
        position: Position::Append,
        text: "This message is confidential.".into(),
        source: src(71),
    });
    plan.filters.push(Filter {
        direction: Direction::Inbound,
        host: "127.0.0.1".into(),
        port: 10024,
        source: src(72),
    });
    plan.etrn.push(Etrn {
        domains: vec![DomainPattern::parse("*.tochter.example").expect("pattern")],
        from: vec![Network::new("192.0.2.0".parse().expect("ip"), 24).expect("network")],
        source: src(73),
    });
    plan.ndr.copy_to.push("postmaster@example.com".into());
    plan.dns
        .servers
        .push("192.0.2.53:53".parse().expect("addr"));
    plan
}
