//! What is queued for an accepted message: the session's envelope turned
//! into the spool's, with groups expanded into their members, the journal
//! address added, and where the message came from.
//!
//! Expansion happens here, before the message is committed, so that every
//! final recipient has a state of its own in the spool: one delivered
//! before a crash is never sent the message again.

use std::collections::{HashMap, HashSet};

use mailgw_plan::{
    normalized_address, parse_mailbox, JournalScope, Member, Plan, RelayQuery, RelayVerdict,
    Resolution, Target,
};

use crate::smtp::{self, Disposition};
use crate::spool::{self, Notify, Origin, Recipient, RecipientState};

/// An address for each mailbox that is a member of some group (the
/// table's first address of that mailbox), found once per plan.
#[derive(Debug, Default)]
pub struct MemberAddresses(HashMap<u32, String>);

impl MemberAddresses {
    /// Scans `plan`'s recipient table once, for the mailboxes named in
    /// groups only.
    pub fn of(plan: &Plan) -> MemberAddresses {
        let wanted: HashSet<u32> = plan
            .groups
            .iter()
            .flat_map(|g| &g.members)
            .filter_map(|m| match m {
                Member::Mailbox(i) => Some(*i),
                _ => None,
            })
            .collect();
        let mut found = HashMap::new();
        if wanted.is_empty() {
            return MemberAddresses(found);
        }
        for (address, target) in plan.recipients.iter() {
            if let Target::Mailbox(m) = target {
                if wanted.contains(&m) {
                    found.entry(m).or_insert_with(|| address.to_owned());
                }
            }
        }
        MemberAddresses(found)
    }

    fn get(&self, mailbox: u32) -> Option<&str> {
        self.0.get(&mailbox).map(String::as_str)
    }
}

/// The spool's envelope for a message accepted on a listener
/// (`filter_return`: the content filter's return listener).
pub fn spool_envelope(
    plan: &Plan,
    members: &MemberAddresses,
    e: &smtp::Envelope,
    filter_return: bool,
) -> spool::Envelope {
    let origin = Origin {
        inside: is_inside(plan, e),
        filtered: filter_return,
    };
    let mut recipients: Vec<Recipient> = Vec::with_capacity(e.recipients.len());
    let mut seen = HashSet::new();
    let mut push = |r: Recipient, recipients: &mut Vec<Recipient>| {
        if seen.insert(identity(plan, &r.address)) {
            recipients.push(r);
        }
    };
    for r in &e.recipients {
        let notify = r.notify.map(|n| match n {
            smtp::Notify::Never => Notify::default(),
            smtp::Notify::On {
                success,
                failure,
                delay,
            } => Notify {
                success,
                failure,
                delay,
            },
        });
        let orcpt = r
            .orcpt
            .as_ref()
            .map(|o| format!("{};{}", o.addr_type, o.address));
        let address = r.address.to_string();
        if matches!(r.disposition, Disposition::Group(_)) {
            let orcpt = orcpt.unwrap_or_else(|| format!("rfc822;{address}"));
            for member in expand(plan, members, &r.address) {
                push(
                    Recipient {
                        address: member,
                        orcpt: Some(orcpt.clone()),
                        notify,
                        state: RecipientState::Pending,
                        journal: false,
                    },
                    &mut recipients,
                );
            }
        } else {
            push(
                Recipient {
                    address,
                    orcpt,
                    notify,
                    state: RecipientState::Pending,
                    journal: false,
                },
                &mut recipients,
            );
        }
    }
    if let Some(journal) = plan.journal.as_ref().filter(|_| !filter_return) {
        let local = |r: &smtp::RecipientEntry| !matches!(r.disposition, Disposition::Relay);
        let wanted = match journal.scope {
            JournalScope::Both => true,
            JournalScope::Inbound => !origin.inside && e.recipients.iter().any(local),
            JournalScope::Outbound => e.recipients.iter().any(|r| !local(r)),
        };
        if wanted {
            recipients.push(Recipient {
                address: journal.to.clone(),
                orcpt: None,
                notify: Some(Notify::default()),
                state: RecipientState::Pending,
                journal: true,
            });
        }
    }
    spool::Envelope {
        sender: e.sender.as_ref().map(ToString::to_string),
        recipients,
        ret: e.ret.map(|r| match r {
            smtp::Ret::Full => spool::Ret::Full,
            smtp::Ret::Headers => spool::Ret::Hdrs,
        }),
        envid: e.envid.clone(),
        body: match e.body {
            smtp::Body::SevenBit => spool::BodyType::SevenBit,
            smtp::Body::EightBitMime => spool::BodyType::EightBitMime,
        },
        smtputf8: e.smtputf8 == smtp::Utf8::Yes,
        client_ip: e.client,
        helo: e.helo.clone(),
        auth_user: e.authenticated.clone(),
        received_at: e.received_at,
        size: 0,
        origin,
    }
}

/// What makes two recipients one: the local mailbox an address names (by
/// any of its addresses, so a member and a direct alias get one copy),
/// otherwise the address.
fn identity(plan: &Plan, address: &str) -> String {
    match plan.recipients.lookup(&normalized_address(address)) {
        Some(Target::Mailbox(m)) => format!("mailbox {m}"),
        _ => address.to_ascii_lowercase(),
    }
}

/// The final addresses of a group: its mailboxes (by an address of each)
/// and its external members, de-duplicated by the plan's expansion.
fn expand(plan: &Plan, members: &MemberAddresses, group: &mailgw_plan::Address) -> Vec<String> {
    let Resolution::Group { expanded, .. } = plan.resolve(group) else {
        return vec![group.to_string()];
    };
    expanded
        .into_iter()
        .filter_map(|member| match member {
            mailgw_plan::Recipient::Mailbox { mailbox, .. } => {
                let address = members.get(mailbox).map(str::to_owned);
                if address.is_none() {
                    let name = plan.mailboxes.get(mailbox as usize).map(|m| m.name);
                    tracing::warn!(%group, mailbox = ?name, "group member has no address; skipped");
                }
                address
            }
            mailgw_plan::Recipient::Remote { address, .. }
            | mailgw_plan::Recipient::UnknownLocal { address, .. }
            | mailgw_plan::Recipient::Unroutable { address } => Some(address),
            mailgw_plan::Recipient::Invalid { address, reason } => {
                tracing::warn!(%group, member = %address, %reason, "invalid group member; skipped");
                None
            }
        })
        .collect()
}

/// Whether the message comes from inside the organization: the client
/// logged in, or the relay rules let it relay (asked for an address in no
/// local domain).
fn is_inside(plan: &Plan, e: &smtp::Envelope) -> bool {
    if e.authenticated.is_some()
        || e.recipients
            .iter()
            .any(|r| matches!(r.disposition, Disposition::Relay))
    {
        return true;
    }
    let Ok(probe) = parse_mailbox("relay-probe@relay-probe.invalid") else {
        return false;
    };
    matches!(
        plan.relay(&RelayQuery {
            client: e.client,
            authenticated: None,
            sender: e.sender.as_ref(),
            recipient: &probe,
        }),
        RelayVerdict::Allowed { .. }
    )
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use mailgw_plan::{
        Group, LocalDomain, Mailbox, Member, Plan, RecipientTable, SourceRef, Target,
    };

    use super::*;
    use crate::smtp::{Body, Envelope, RecipientEntry, TlsState, Utf8};

    /// bob (two addresses) and the group team with bob as its member.
    fn plan() -> Plan {
        let mut plan = Plan::empty("gw.example");
        plan.domains.push(LocalDomain {
            name: "example.test".into(),
            source: SourceRef::new(0, 1),
        });
        plan.mailboxes.push(Mailbox {
            name: "bob",
            backend: 0,
            password_hash: None,
            source: SourceRef::new(0, 1),
        });
        plan.groups.push(Group {
            name: "team".into(),
            members: vec![Member::Mailbox(0)],
            source: SourceRef::new(0, 2),
        });
        plan.recipients = RecipientTable::build(vec![
            ("bob@example.test".to_owned(), Target::Mailbox(0)),
            ("robert@example.test".to_owned(), Target::Mailbox(0)),
            ("team@example.test".to_owned(), Target::Group(0)),
        ])
        .expect("a table");
        plan
    }

    fn entry(address: &str, disposition: Disposition) -> RecipientEntry {
        RecipientEntry {
            address: parse_mailbox(address).expect("an address"),
            orcpt: None,
            notify: None,
            disposition,
        }
    }

    #[test]
    fn a_mailbox_named_twice_by_different_addresses_is_one_recipient() {
        let plan = plan();
        let members = MemberAddresses::of(&plan);
        let envelope = Envelope {
            id: "s1.1".into(),
            sender: None,
            recipients: vec![
                entry("team@example.test", Disposition::Group(0)),
                entry("robert@example.test", Disposition::Mailbox(0)),
                entry("bob@Example.Test", Disposition::Mailbox(0)),
            ],
            body: Body::SevenBit,
            smtputf8: Utf8::No,
            ret: None,
            envid: None,
            client: "192.0.2.1".parse().expect("an IP"),
            helo: "client.example".into(),
            authenticated: None,
            tls: TlsState::Plain,
            received_at: SystemTime::UNIX_EPOCH,
        };
        let spooled = spool_envelope(&plan, &members, &envelope, false);
        let addresses: Vec<&str> = spooled
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(addresses, ["bob@example.test"], "the member, once");
        assert_eq!(
            spooled.recipients[0].orcpt.as_deref(),
            Some("rfc822;team@example.test")
        );
    }
}
