//! Hostile input: whatever bytes a client sends, in whatever chunks, the
//! session never panics, answers every step, and keeps its memory bounded.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;

use mailgw_plan::{
    AuthMode, Limits, Listener, ListenerTls, LocalDomain, Plan, Protocol, SourceRef, TlsMode,
};
use mailgw_runtime::smtp::{AuthOutcome, Session, SessionConfig, SpoolResult, Step};
use proptest::prelude::*;

fn session() -> Session {
    let mut plan = Plan::empty("mx.local.example");
    plan.gateway.max_message_size = 4096;
    plan.domains.push(LocalDomain {
        name: "local.example".into(),
        source: SourceRef::new(0, 1),
    });
    let listener = Listener {
        name: "mx".into(),
        protocol: Protocol::Smtp,
        binds: Vec::new(),
        tls: ListenerTls {
            mode: TlsMode::Implicit,
            profile: None,
        },
        auth: AuthMode::Offer,
        limits: Limits::default(),
        filter_return: false,
        source: SourceRef::new(0, 2),
    };
    let client: IpAddr = "203.0.113.9".parse().unwrap();
    let mut config = SessionConfig::new(&plan, &listener, client, "fuzz".into());
    config.max_command_line = 512;
    config.max_errors = u32::MAX;
    Session::new(config, Arc::new(plan))
}

/// Drives the session until it needs input; returns whether it closed.
fn drive(s: &mut Session, delivered: &mut usize) -> bool {
    for _ in 0..100_000 {
        match s.step() {
            Step::Reply(r) => assert!((200..600).contains(&r.code)),
            Step::NeedInput => return false,
            Step::Delay(_) => {}
            Step::StartTls(_) => s.tls_established(),
            Step::Authenticate(_) => s.auth_result(AuthOutcome::Failure),
            Step::Etrn(_) => s.etrn_result(Some(1)),
            Step::Deliver(d) => {
                assert!(d.message.len() < 4096 + 1024);
                *delivered += 1;
                s.spooled(SpoolResult::Queued("q".into()));
            }
            Step::Close => return true,
        }
    }
    panic!("the session never asked for input");
}

/// Fragments that make hostile input more likely to reach deep states.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(b"EHLO x\r\n".to_vec()),
        Just(b"MAIL FROM:<a@b.example>\r\n".to_vec()),
        Just(b"RCPT TO:<postmaster@local.example>\r\n".to_vec()),
        Just(b"DATA\r\n".to_vec()),
        Just(b"\r\n.\r\n".to_vec()),
        Just(b"\n.\n".to_vec()),
        Just(b"BDAT 10\r\n".to_vec()),
        Just(b"AUTH LOGIN\r\n".to_vec()),
        Just(b"AUTH PLAIN\r\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        Just(b"ETRN partner.example\r\n".to_vec()),
        Just(vec![b'x'; 3000]),
    ]
}

proptest! {
    #[test]
    fn never_panics(chunks in proptest::collection::vec(fragment(), 0..40)) {
        let mut s = session();
        let mut delivered = 0;
        for chunk in chunks {
            s.feed(&chunk);
            if drive(&mut s, &mut delivered) {
                break;
            }
        }
    }
}
