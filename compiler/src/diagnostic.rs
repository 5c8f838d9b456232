//! Diagnostics as typed data: a stable code, a severity, spans, one sentence, help.
//!
//! The library never renders colours or boxes: it implements
//! [`miette::Diagnostic`] through [`Report`], and the `mailgwc` binary picks
//! the handler. [`Diagnostic::to_json`] gives the machine-readable form used by
//! `mailgwc check --format json`.

use std::fmt;

use miette::{LabeledSpan, NamedSource, SourceSpan};

use crate::source::{SourceDb, Span};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration cannot be built.
    Error,
    /// The configuration builds, but something is probably wrong.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $name:ident = $code:literal,)*) => {
        /// The stable code of a diagnostic. Codes never change meaning; new
        /// findings get new codes. `docs/diagnostics.md` lists them all.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[doc = $doc])* $name,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code as written in reports, e.g. `mailgw::relay::open`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $code,)*
                }
            }

            /// The one-paragraph explanation of the code (its doc comment).
            pub fn explanation(self) -> &'static str {
                match self {
                    $(Code::$name => concat!($($doc, "\n",)*),)*
                }
            }
        }
    };
}

codes! {
    /// A file could not be read: missing, unreadable, or not UTF-8.
    Io = "mailgw::io",
    /// The text does not follow the grammar: an unexpected character or token.
    Syntax = "mailgw::syntax",
    /// A keyword that is not allowed at this place (misspelt, or in the wrong block).
    UnknownKeyword = "mailgw::syntax::keyword",
    /// A statement is missing a value, has one too many, or has one of the wrong kind.
    Arguments = "mailgw::syntax::arguments",
    /// A statement that may appear once appears twice, or a required one is missing.
    /// A configuration without any `listener` is a warning with this code.
    Statement = "mailgw::syntax::statement",
    /// A literal that has the right shape but a wrong value: a port of 0, an
    /// octet over 255, a prefix longer than the address, an unknown unit.
    Value = "mailgw::value",
    /// An `include` that includes itself, directly or through other files.
    IncludeCycle = "mailgw::include::cycle",
    /// A directory (TOML) file that is not valid TOML or not a directory.
    Directory = "mailgw::directory",
    /// A name used but never defined: a backend, TLS profile, mailbox or group.
    UnknownReference = "mailgw::reference::unknown",
    /// Two listeners, backends, connectors, TLS profiles, mailboxes or groups share a name.
    DuplicateName = "mailgw::name::duplicate",
    /// One SMTP address belongs to two recipients.
    DuplicateAddress = "mailgw::address::duplicate",
    /// A recipient address in a domain that is not local.
    ForeignAddress = "mailgw::address::foreign",
    /// Two listeners bind the same address and port (`0.0.0.0` overlaps every IPv4 address).
    PortConflict = "mailgw::listener::port-conflict",
    /// An unauthenticated client anywhere on the internet may relay to any domain.
    OpenRelay = "mailgw::relay::open",
    /// Relaying is allowed by client network: addresses are easy to misjudge and spoof.
    RelayByAddress = "mailgw::relay::by-address",
    /// A relay rule can never match because an earlier rule matches everything it does.
    RelayUnreachableRule = "mailgw::relay::unreachable-rule",
    /// Authentication offered where the password would cross the network in clear text.
    CleartextCredentials = "mailgw::auth::cleartext",
    /// A listener nobody can use: `auth require` without a usable mechanism, or an
    /// MX listener on port 25 that requires authentication.
    UnreachableListener = "mailgw::listener::unreachable",
    /// An internet-facing SMTP listener not on port 25: remote MTAs will not find it.
    NonStandardPort = "mailgw::listener::non-standard-port",
    /// A content filter's return listener other machines can reach: mail sent
    /// there skips the filter and the journal.
    FilterReturnExposed = "mailgw::listener::filter-return-exposed",
    /// A smarthost, forward host or filter that is this gateway itself.
    RoutingLoop = "mailgw::route::loop",
    /// A connector's address space that can never be chosen.
    ShadowedAddressSpace = "mailgw::connector::shadowed",
    /// Mail that can never be delivered: a mailbox on a backend without LMTP or SMTP,
    /// a group that contains itself, a journal to an address that is no recipient.
    Unroutable = "mailgw::route::unroutable",
    /// Inbound mail is accepted but there is no postmaster to send reports from.
    NoPostmaster = "mailgw::postmaster::missing",
    /// A certificate or key that is missing, unreadable, mismatched, expired or
    /// does not cover the gateway's host name.
    File = "mailgw::file",
    /// The retry schedule or the delay warning reaches past the queue's expiry.
    QueueSchedule = "mailgw::queue::schedule",
    /// A TLS profile, backend or connector that nothing uses.
    Unused = "mailgw::unused",
    /// A group without members.
    EmptyGroup = "mailgw::group::empty",
    /// A local domain with no recipient in it and no forwarding of unknown recipients.
    EmptyDomain = "mailgw::domain::empty",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span with the short text shown under it.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What is there, in a few words.
    pub text: String,
}

impl Label {
    /// A label at `span` saying `text`.
    pub fn new(span: Span, text: impl Into<String>) -> Label {
        Label {
            span,
            text: text.into(),
        }
    }
}

/// One finding of the compiler.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// The stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// One sentence saying what is wrong and why it matters.
    pub message: String,
    /// The main place (for a file named on the command line that cannot
    /// be read: the start of an empty source under its name).
    pub primary: Label,
    /// Other places involved, e.g. the first definition of a duplicate.
    pub secondary: Vec<Label>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with a primary label.
    pub fn error(code: Code, message: impl Into<String>, at: Label) -> Diagnostic {
        Diagnostic::new(code, Severity::Error, message, at)
    }

    /// A warning with a primary label.
    pub fn warning(code: Code, message: impl Into<String>, at: Label) -> Diagnostic {
        Diagnostic::new(code, Severity::Warning, message, at)
    }

    /// A diagnostic with every field but the optional ones.
    pub fn new(
        code: Code,
        severity: Severity,
        message: impl Into<String>,
        primary: Label,
    ) -> Diagnostic {
        Diagnostic {
            code,
            severity,
            message: message.into(),
            primary,
            secondary: Vec::new(),
            help: None,
        }
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, label: Label) -> Diagnostic {
        self.secondary.push(label);
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Turns the diagnostic into a warning or error.
    pub fn with_severity(mut self, severity: Severity) -> Diagnostic {
        self.severity = severity;
        self
    }

    /// The JSON object `mailgwc check --format json` prints for this diagnostic.
    pub fn to_json(&self, db: &SourceDb) -> serde_json::Value {
        let mut object = serde_json::json!({
            "code": self.code.as_str(),
            "severity": self.severity.as_str(),
            "message": self.message,
            "help": self.help,
        });
        let primary = &self.primary;
        let file = db.file(primary.span.file);
        let (line, column) = file.line_col(primary.span.start);
        let (end_line, end_column) = file.line_col(primary.span.end);
        object["file"] = file.name.clone().into();
        object["line"] = line.into();
        object["column"] = column.into();
        object["end_line"] = end_line.into();
        object["end_column"] = end_column.into();
        object["label"] = primary.text.clone().into();
        object
    }

    /// Sort key giving a stable, reader-friendly order: by file, position, code.
    pub fn sort_key(&self) -> (u32, u32, Code, String) {
        let span = self.primary.span;
        (span.file.0, span.start, self.code, self.message.clone())
    }
}

/// The findings of one run, with counts.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// No findings yet.
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }

    /// Records a finding.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.list.push(diagnostic);
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.list
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.list.len() - self.error_count()
    }

    /// True when there is at least one error.
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// The findings in a stable order (file, position, code), duplicates removed.
    pub fn sorted(mut self) -> Vec<Diagnostic> {
        self.list.sort_by_key(Diagnostic::sort_key);
        self.list.dedup();
        self.list
    }

    /// The findings in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.into_iter()
    }
}

impl Extend<Diagnostic> for Diagnostics {
    fn extend<T: IntoIterator<Item = Diagnostic>>(&mut self, iter: T) {
        self.list.extend(iter);
    }
}

/// A diagnostic bound to its sources, ready for any miette report handler.
///
/// Labels in the primary file are shown together; a label in another file
/// (a duplicate address in the directory TOML, say) becomes a related report.
#[derive(Debug)]
pub struct Report {
    diagnostic: Diagnostic,
    source: NamedSource<String>,
    labels: Vec<LabeledSpan>,
    related: Vec<Report>,
}

impl Report {
    /// Binds `diagnostic` to the files it points into.
    pub fn new(db: &SourceDb, diagnostic: &Diagnostic) -> Report {
        let primary = &diagnostic.primary;
        let file = db.file(primary.span.file);
        let source = NamedSource::new(file.name.clone(), file.text.clone());
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(primary.text.clone()),
            to_source_span(primary.span),
        )];
        let mut related = Vec::new();
        for label in &diagnostic.secondary {
            if label.span.file == primary.span.file {
                labels.push(LabeledSpan::new_with_span(
                    Some(label.text.clone()),
                    to_source_span(label.span),
                ));
            } else {
                let other = Diagnostic {
                    code: diagnostic.code,
                    severity: diagnostic.severity,
                    message: label.text.clone(),
                    primary: Label::new(label.span, "here"),
                    secondary: Vec::new(),
                    help: None,
                };
                related.push(Report::new(db, &other));
            }
        }
        Report {
            diagnostic: diagnostic.clone(),
            source,
            labels,
            related,
        }
    }
}

fn to_source_span(span: Span) -> SourceSpan {
    SourceSpan::new((span.start as usize).into(), span.len())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diagnostic.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().cloned()))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related.iter().map(|r| r as &dyn miette::Diagnostic),
        ))
    }
}
