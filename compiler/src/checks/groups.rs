//! `mailgw::group::empty` (warning): a group without members.
//!
//! Mail to the group's addresses is accepted and then delivered to nobody;
//! the sender never learns. Usually the members were forgotten or moved to a
//! directory file under another group's name.

use super::Context;
use crate::diagnostic::{Code, Diagnostic, Label};

/// Runs this check.
pub fn check(cx: &mut Context<'_>) {
    let (db, config) = (cx.db, cx.config);
    for group in config.groups.iter().filter(|g| g.members.is_empty()) {
        let name = db.text(&group.name);
        let why = if group.addresses.is_empty() {
            "it delivers to nobody".to_owned()
        } else {
            "mail to its addresses is accepted and delivered to nobody".to_owned()
        };
        cx.report(
            Diagnostic::warning(
                Code::EmptyGroup,
                format!("group `{name}` has no members: {why}"),
                Label::new(group.name.span, "no members"),
            )
            .with_help(format!(
                "add members (`member \"MAILBOX\", \"someone@example.org\"`, or `members = [...]` in a directory) or remove the group `{name}`"
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::with_code;
    use crate::diagnostic::Severity;

    #[test]
    fn empty_group() {
        let t = "group \"sales\" { address \"sales@example.com\" }\n\
                 group \"team\" { member \"bob@example.org\" }\n";
        let found = with_code(t, Code::EmptyGroup);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        let span = found[0].primary.span;
        assert_eq!(&t[span.start as usize..span.end as usize], "\"sales\"");
        assert!(found[0]
            .message
            .contains("accepted and delivered to nobody"));
    }

    #[test]
    fn groups_with_members() {
        let t = "group \"team\" { member \"bob@example.org\" }\n";
        assert!(with_code(t, Code::EmptyGroup).is_empty());
    }
}
