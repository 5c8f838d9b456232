//! Delivery to MX hosts, resolved through dnsmasq on loopback: preference
//! order, failover, null MX, the implicit MX, equal preferences shared.
//! The mail hosts are smtp-sinks on 127.0.0.x, all on one port, as
//! `deliver mx port N` has it.

mod delivery_support;
mod dovecot;
mod ports;

use std::net::Ipv4Addr;

use delivery_support::{client_with_dns, envelope, Dnsmasq, SmtpSink};
use mailgw_plan::{Dns, Plan, TlsPolicy};
use mailgw_runtime::delivery::{Client, NextHop, Outcome, SmtpHop, Status, Target};

fn mx(domain: &str, port: u16) -> NextHop {
    NextHop::Smtp(SmtpHop {
        target: Target::Mx {
            domain: domain.into(),
            port,
        },
        tls: TlsPolicy::Opportunistic,
        credentials: None,
        ca: None,
    })
}

fn records() -> Vec<String> {
    [
        // mx0 has no server, mx1 refuses the session, mx2 takes the mail.
        "--mx-host=mx.test,mx0.mx.test,5",
        "--mx-host=mx.test,mx2.mx.test,20",
        "--mx-host=mx.test,mx1.mx.test,10",
        "--host-record=mx0.mx.test,127.0.0.5",
        "--host-record=mx1.mx.test,127.0.0.2",
        "--host-record=mx2.mx.test,127.0.0.3",
        "--mx-host=null.test,.,0",
        "--host-record=aonly.test,127.0.0.4",
        "--mx-host=eq.test,a.eq.test,10",
        "--mx-host=eq.test,b.eq.test,10",
        "--host-record=a.eq.test,127.0.0.6",
        "--host-record=b.eq.test,127.0.0.7",
    ]
    .map(String::from)
    .to_vec()
}

fn sink(last: u8, port: u16, args: &[&str]) -> Option<SmtpSink> {
    SmtpSink::start_on(Ipv4Addr::new(127, 0, 0, last), port, args)
}

#[tokio::test]
async fn tries_the_mx_hosts_by_preference_until_one_takes_the_mail() {
    let Some(dns) = Dnsmasq::start(&records()) else {
        return;
    };
    // mx0 (preference 5) never has a server; mx1 (10) takes the mail or
    // refuses the session; mx2 (20) takes it.
    for (mx1_args, taker) in [
        (&[][..], "mx1.mx.test"),
        (&["-f", "connect"], "mx2.mx.test"),
    ] {
        let port = ports::free_port();
        let (Some(mx1), Some(mx2)) = (sink(2, port, mx1_args), sink(3, port, &[])) else {
            return;
        };
        let report = client_with_dns(dns.addr)
            .deliver(
                &mx("mx.test", port),
                &envelope(&["b@mx.test"]),
                b"Subject: mx\r\n\r\nx\r\n",
            )
            .await;
        assert!(
            matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
            "{report:?}"
        );
        let remote = report.remote.expect("remote");
        assert_eq!(remote.name, taker);
        let (took, idle, last) = if taker == "mx1.mx.test" {
            (&mx1, &mx2, 2)
        } else {
            (&mx2, &mx1, 3)
        };
        assert_eq!(remote.addr, (Ipv4Addr::new(127, 0, 0, last), port).into());
        assert_eq!(took.dumps(1).len(), 1);
        assert!(idle.dumps(0).is_empty());
    }
}

#[tokio::test]
async fn all_mx_hosts_failing_defers_with_the_last_reason() {
    let Some(dns) = Dnsmasq::start(&records()) else {
        return;
    };
    let port = ports::free_port();
    let Some(_mx1) = sink(2, port, &["-r", "connect"]) else {
        return;
    };
    // mx2 has no server either.
    let report = client_with_dns(dns.addr)
        .deliver(&mx("mx.test", port), &envelope(&["b@mx.test"]), b"x\r\n")
        .await;
    let [Outcome::Deferred(f)] = &report.outcomes[..] else {
        panic!("{report:?}");
    };
    assert_eq!(f.status, Status::new(4, 4, 1));
    assert!(f.reason.contains("mx2.mx.test"), "{}", f.reason);
}

#[tokio::test]
async fn null_mx_and_missing_domain_fail() {
    let Some(dns) = Dnsmasq::start(&records()) else {
        return;
    };
    let client = client_with_dns(dns.addr);
    for (domain, status) in [
        ("null.test", Status::new(5, 1, 10)),
        ("nx.test", Status::new(5, 1, 2)),
    ] {
        let report = client
            .deliver(
                &mx(domain, 25),
                &envelope(&["b@x.test", "c@x.test"]),
                b"x\r\n",
            )
            .await;
        let [Outcome::Failed(f), Outcome::Failed(g)] = &report.outcomes[..] else {
            panic!("{domain}: {report:?}");
        };
        assert_eq!(
            (f.status, g.status),
            (status, status),
            "{domain}: {}",
            f.reason
        );
        assert_eq!(report.remote, None);
    }
}

#[tokio::test]
async fn a_domain_without_mx_is_its_own_mail_host() {
    let Some(dns) = Dnsmasq::start(&records()) else {
        return;
    };
    let port = ports::free_port();
    let Some(host) = sink(4, port, &[]) else {
        return;
    };
    // Through the plan, as the queue manager will build it.
    let mut plan = Plan::empty("gw.test");
    plan.dns = Dns {
        servers: vec![dns.addr],
    };
    let client = Client::new(&plan).expect("client");
    let report = client
        .deliver(
            &mx("aonly.test", port),
            &envelope(&["b@aonly.test"]),
            b"x\r\n",
        )
        .await;
    assert!(
        matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
        "{report:?}"
    );
    assert_eq!(report.remote.expect("remote").name, "aonly.test");
    assert_eq!(host.dumps(1).len(), 1);
}

#[tokio::test]
async fn equal_preferences_share_the_load() {
    let Some(dns) = Dnsmasq::start(&records()) else {
        return;
    };
    let port = ports::free_port();
    let (Some(a), Some(b)) = (sink(6, port, &[]), sink(7, port, &[])) else {
        return;
    };
    let client = client_with_dns(dns.addr);
    for _ in 0..20 {
        let report = client
            .deliver(&mx("eq.test", port), &envelope(&["b@eq.test"]), b"x\r\n")
            .await;
        assert!(
            matches!(report.outcomes[..], [Outcome::Delivered { .. }]),
            "{report:?}"
        );
    }
    // Each of the 20 picks either host with even odds; one host taking
    // all of them has a chance of 2 in a million.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let (mut to_a, mut to_b) = (0, 0);
    while to_a + to_b < 20 && std::time::Instant::now() < deadline {
        (to_a, to_b) = (a.dumps(0).len(), b.dumps(0).len());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(to_a + to_b, 20);
    assert!(to_a > 0 && to_b > 0, "a {to_a}, b {to_b}");
}
