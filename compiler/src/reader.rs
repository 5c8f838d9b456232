//! The reader: files and statements in, the typed [`Config`] out.
//!
//! It loads the main file, its includes and directory files into the
//! [`SourceDb`], knows which keywords are allowed in which block, and reads
//! each statement's values. A wrong statement is reported and skipped; the
//! rest is still read, so one run reports every problem it can.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::args::{Args, Read};
use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic, Diagnostics, Label};
use crate::directory;
use crate::source::{FileId, SourceDb, SourceKind, Span, Spanned};
use crate::suggest;
use crate::syntax::{self, Statement};

/// Every top-level statement keyword.
pub const TOP: &[&str] = &[
    "gateway",
    "tls",
    "listener",
    "backend",
    "domain",
    "mailbox",
    "group",
    "directory",
    "auth",
    "connector",
    "relay",
    "unknown-recipients",
    "journal",
    "disclaimer",
    "filter",
    "etrn",
    "ndr",
    "queue",
    "log",
    "dns",
    "include",
];

/// Reads `main` and everything it includes into a configuration.
pub fn read(db: &mut SourceDb, diagnostics: &mut Diagnostics, main: &Path) -> Config {
    let mut reader = Reader {
        db,
        diagnostics,
        config: Config::default(),
        stack: Vec::new(),
        singles: BTreeMap::new(),
    };
    let errors_before = reader.diagnostics.error_count();
    reader.include(main, None);
    reader.finish(errors_before)
}

/// Reads a configuration given as text, as if it were the file `name`
/// (includes and other paths resolve against `name`'s directory).
pub fn read_text(
    db: &mut SourceDb,
    diagnostics: &mut Diagnostics,
    name: &Path,
    text: String,
) -> Config {
    let canonical = name.canonicalize().unwrap_or_else(|_| name.to_path_buf());
    db.add(&canonical, display_name(name), text, SourceKind::Config);
    let mut reader = Reader {
        db,
        diagnostics,
        config: Config::default(),
        stack: Vec::new(),
        singles: BTreeMap::new(),
    };
    let file = FileId(0);
    let errors_before = reader.diagnostics.error_count();
    match syntax::parse(file, &reader.db.file(file).text) {
        Ok(statements) => {
            reader.stack.push((canonical, None));
            for statement in &statements {
                reader.top(statement);
            }
        }
        Err(diagnostic) => reader.diagnostics.push(diagnostic),
    }
    reader.finish(errors_before)
}

struct Reader<'a> {
    db: &'a mut SourceDb,
    diagnostics: &'a mut Diagnostics,
    config: Config,
    /// Files being read, outermost first: an include of one of them is a cycle.
    stack: Vec<(PathBuf, Option<Span>)>,
    /// Top-level statements that may appear once, and where they first did.
    singles: BTreeMap<&'static str, Span>,
}

/// Loads a file into the database, reporting a missing or non-UTF-8 file at `from`.
pub fn load(
    db: &mut SourceDb,
    diagnostics: &mut Diagnostics,
    path: &Path,
    kind: SourceKind,
    from: Option<Span>,
) -> Option<FileId> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Some(id) = db.find(&canonical) {
        return Some(id);
    }
    let name = display_name(path);
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            let what = match error.kind() {
                std::io::ErrorKind::NotFound => "does not exist".to_owned(),
                std::io::ErrorKind::PermissionDenied => {
                    "cannot be read: permission denied".to_owned()
                }
                _ if path.is_dir() => "is a directory, not a file".to_owned(),
                _ => format!("cannot be read: {error}"),
            };
            let message = format!("the file `{name}` {what}");
            let diagnostic = match from {
                Some(span) => Diagnostic::error(Code::Io, message, Label::new(span, "named here"))
                    .with_help("paths are relative to the file that names them"),
                // A file named on the command line: the diagnostic is
                // about the path itself, at the start of an empty source,
                // so that it still names its file (JSON, CI annotations).
                None => {
                    let id = db.add(&canonical, name, String::new(), kind);
                    Diagnostic::error(
                        Code::Io,
                        message,
                        Label::new(Span::new(id, 0, 0), "named on the command line"),
                    )
                    .with_help("check the path: it is relative to the current directory")
                }
            };
            diagnostics.push(diagnostic);
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(db.add(&canonical, name, text, kind)),
        Err(error) => {
            let at = error.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(error.as_bytes()).into_owned();
            let lossy_at = String::from_utf8_lossy(&error.as_bytes()[..at]).len();
            let id = db.add(&canonical, name.clone(), text, kind);
            diagnostics.push(
                Diagnostic::error(
                    Code::Io,
                    format!("the file `{name}` is not UTF-8 text"),
                    Label::new(
                        Span::new(id, lossy_at, lossy_at + 3),
                        "this byte is not UTF-8",
                    ),
                )
                .with_help("save the file as UTF-8"),
            );
            None
        }
    }
}

fn display_name(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let relative = cwd
        .as_deref()
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .unwrap_or(path);
    relative.display().to_string()
}

/// Resolves `written` against the directory of the file `span` is in.
pub fn resolve_path(db: &SourceDb, span: Span, written: &str) -> PathBuf {
    let written = Path::new(written);
    if written.is_absolute() {
        return written.to_path_buf();
    }
    let base = db
        .file(span.file)
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let joined = lexical_normal(&base.join(written));
    let cwd = std::env::current_dir().ok();
    match cwd.as_deref().and_then(|c| joined.strip_prefix(c).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => joined,
    }
}

/// `path` without `.` components and with each `dir/..` removed, so that
/// `parts/../main.mailgw` is shown as `main.mailgw`. Lexical: the base a
/// relative path is joined to is already canonical, and a symbolic link
/// followed by `..` inside a written path is not worth the surprise.
fn lexical_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

impl Reader<'_> {
    /// The configuration read, after the checks that need all of it at once.
    ///
    /// A configuration without any `listener` (an empty file, one with only
    /// comments) would start a gateway that accepts no connection: a
    /// warning at the start of the main file. Not when reading found errors:
    /// the listeners may be in the part that could not be read.
    fn finish(self, errors_before: usize) -> Config {
        let main = self.db.files().next().map(|(id, _)| id);
        if let Some(main) = main {
            if self.config.listeners.is_empty() && self.diagnostics.error_count() == errors_before {
                self.diagnostics.push(
                    Diagnostic::warning(
                        Code::Statement,
                        "this configuration has no `listener`: the gateway would accept no connections",
                        Label::new(Span::new(main, 0, 0), "no listener in this file or the files it includes"),
                    )
                    .with_help("add one, e.g. `listener \"mx\" { protocol smtp; bind 0.0.0.0:25; auth off }`; examples/quickstart.mailgw is a complete configuration"),
                );
            }
        }
        self.config
    }

    fn report(&mut self, result: Read<()>) {
        if let Err(diagnostic) = result {
            self.diagnostics.push(diagnostic);
        }
    }

    fn include(&mut self, path: &Path, from: Option<Span>) {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(pos) = self.stack.iter().position(|(p, _)| *p == canonical) {
            if let Some(span) = from {
                let mut diagnostic = Diagnostic::error(
                    Code::IncludeCycle,
                    format!("`{}` includes itself", display_name(path)),
                    Label::new(span, "this include closes the cycle"),
                )
                .with_help("remove one of the includes in the cycle");
                for (_, via) in self.stack[pos + 1..].iter() {
                    if let Some(via) = via {
                        diagnostic = diagnostic.with_label(Label::new(*via, "included here"));
                    }
                }
                self.diagnostics.push(diagnostic);
            }
            return;
        }
        if self.db.find(&canonical).is_some() {
            // Included twice but not in a cycle: read once.
            return;
        }
        let Some(file) = load(self.db, self.diagnostics, path, SourceKind::Config, from) else {
            return;
        };
        let statements = match syntax::parse(file, &self.db.file(file).text) {
            Ok(statements) => statements,
            Err(diagnostic) => {
                self.diagnostics.push(diagnostic);
                return;
            }
        };
        self.stack.push((canonical, from));
        for statement in &statements {
            self.top(statement);
        }
        self.stack.pop();
    }

    fn top(&mut self, stmt: &Statement) {
        let Some(keyword) = known(self.diagnostics, stmt, TOP, "at the top level") else {
            return;
        };
        if matches!(
            keyword,
            "gateway"
                | "auth"
                | "relay"
                | "unknown-recipients"
                | "journal"
                | "ndr"
                | "queue"
                | "log"
                | "dns"
        ) {
            if let Some(first) = self.singles.get(keyword) {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::Statement,
                        format!("`{keyword}` appears twice; the configuration has one"),
                        Label::new(stmt.keyword.span, "second one"),
                    )
                    .with_label(Label::new(*first, "first one"))
                    .with_help("merge the two into one"),
                );
                return;
            }
            self.singles.insert(keyword, stmt.keyword.span);
        }
        let result = match keyword {
            "gateway" => self.gateway(stmt),
            "tls" => self.tls(stmt),
            "listener" => self.listener(stmt),
            "backend" => self.backend(stmt),
            "domain" => self.domain(stmt),
            "mailbox" => self.mailbox(stmt),
            "group" => self.group(stmt),
            "directory" => self.directory(stmt),
            "auth" => self.auth(stmt),
            "connector" => self.connector(stmt),
            "relay" => self.relay(stmt),
            "unknown-recipients" => self.unknown_recipients(stmt),
            "journal" => self.journal(stmt),
            "disclaimer" => self.disclaimer(stmt),
            "filter" => self.filter(stmt),
            "etrn" => self.etrn(stmt),
            "ndr" => self.ndr(stmt),
            "queue" => self.queue(stmt),
            "log" => self.log(stmt),
            "dns" => self.dns(stmt),
            _ => self.include_statement(stmt),
        };
        self.report(result);
    }

    /// Reports the first required statement of `stmt`'s block that is
    /// missing. Each entry: whether it is there, its keyword, what to add.
    fn require(&mut self, stmt: &Statement, required: &[(bool, &str, &str)]) {
        if let Some((_, keyword, what)) = required.iter().find(|(present, ..)| !present) {
            if let Some(diagnostic) = missing(stmt, keyword, what) {
                self.diagnostics.push(diagnostic);
            }
        }
    }

    fn include_statement(&mut self, stmt: &Statement) -> Read<()> {
        no_block(stmt)?;
        let mut args = Args::new(stmt);
        let file = args.string("a file name")?;
        args.end()?;
        let path = resolve_path(self.db, file.span, &file.value);
        self.include(&path, Some(file.span));
        Ok(())
    }

    /// The statements of `stmt`'s block whose keywords are in `allowed`;
    /// the others are reported. Statements listed in `once` may appear once.
    fn block<'s>(
        &mut self,
        stmt: &'s Statement,
        allowed: &[&'static str],
        once: &[&str],
    ) -> Read<Vec<(&'static str, &'s Statement)>> {
        let Some(block) = &stmt.block else {
            return Err(Diagnostic::error(
                Code::Statement,
                format!("`{}` needs a block `{{ ... }}`", stmt.keyword.value),
                Label::new(stmt.head(), "block missing"),
            ));
        };
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        let mut out = Vec::new();
        let context = format!("in `{}`", stmt.keyword.value);
        for inner in &block.statements {
            let Some(keyword) = known(self.diagnostics, inner, allowed, &context) else {
                continue;
            };
            if once.contains(&keyword) {
                if let Some(first) = seen.get(keyword) {
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::Statement,
                            format!("`{keyword}` is set twice in this `{}`", stmt.keyword.value),
                            Label::new(inner.keyword.span, "set again here"),
                        )
                        .with_label(Label::new(*first, "first set here"))
                        .with_help("keep one of them"),
                    );
                    continue;
                }
                seen.insert(keyword, inner.keyword.span);
            }
            if let Err(diagnostic) = no_block(inner) {
                self.diagnostics.push(diagnostic);
                continue;
            }
            out.push((keyword, inner));
        }
        Ok(out)
    }

    fn gateway(&mut self, stmt: &Statement) -> Read<()> {
        Args::new(stmt).end()?;
        let mut gateway = Gateway {
            hostname: None,
            postmaster: None,
            max_message_size: None,
            max_hops: None,
            span: stmt.keyword.span,
        };
        let all = ["hostname", "postmaster", "max-message-size", "max-hops"];
        for (keyword, inner) in self.block(stmt, &all, &all)? {
            let mut args = Args::new(inner);
            let result = (|| {
                match keyword {
                    "hostname" => {
                        let name = args.text("a host name")?;
                        let checked = crate::literal::domain(&name.value).map_err(|m| {
                            value_error(
                                m,
                                name.span,
                                "invalid host name",
                                "write a host name like `mail.example.com`",
                            )
                        })?;
                        gateway.hostname = Some(Spanned::new(checked, name.span));
                    }
                    "postmaster" => gateway.postmaster = Some(args.address()?),
                    "max-message-size" => gateway.max_message_size = Some(args.size()?),
                    _ => gateway.max_hops = Some(args.number("a hop count")?),
                }
                args.end()
            })();
            self.report(result);
        }
        self.config.gateway = Some(gateway);
        Ok(())
    }

    fn tls(&mut self, stmt: &Statement) -> Read<()> {
        let mut args = Args::new(stmt);
        let name = args.string("the TLS profile's name")?;
        args.end()?;
        let mut profile = TlsProfile {
            name,
            certificate: None,
            key: None,
            self_signed: None,
            span: stmt.head(),
        };
        let all = ["certificate", "key", "self-signed"];
        for (keyword, inner) in self.block(stmt, &all, &all)? {
            let mut args = Args::new(inner);
            let result = (|| {
                match keyword {
                    "certificate" | "key" => {
                        let file = args.string("a file name")?;
                        let path =
                            Spanned::new(resolve_path(self.db, file.span, &file.value), file.span);
                        if keyword == "key" {
                            profile.key = Some(path);
                        } else {
                            profile.certificate = Some(path);
                        }
                    }
                    _ => profile.self_signed = Some(inner.keyword.span),
                }
                args.end()
            })();
            self.report(result);
        }
        if let Some(span) = profile.self_signed {
            if profile.certificate.is_some() || profile.key.is_some() {
                self.diagnostics.push(Diagnostic::error(
                    Code::Statement,
                    "a TLS profile is either `self-signed` or has a certificate and key, not both",
                    Label::new(span, "self-signed here"),
                ));
            }
        } else {
            let neither = profile.certificate.is_none() && profile.key.is_none();
            self.require(
                stmt,
                &[
                    (
                        !neither,
                        "certificate",
                        "`certificate \"file.pem\"` and `key \"file.key\"`, or `self-signed`",
                    ),
                    (
                        profile.certificate.is_some(),
                        "certificate",
                        "the certificate file: `certificate \"file.pem\"`",
                    ),
                    (
                        profile.key.is_some(),
                        "key",
                        "the private key file: `key \"file.key\"`",
                    ),
                ],
            );
        }
        self.config.tls.push(profile);
        Ok(())
    }

    fn listener(&mut self, stmt: &Statement) -> Read<()> {
        let mut args = Args::new(stmt);
        let name = args.string("the listener's name")?;
        args.end()?;
        let mut listener = Listener {
            name,
            protocol: None,
            binds: Vec::new(),
            tls: None,
            auth: None,
            max_connections: None,
            max_per_client: None,
            timeouts: Vec::new(),
            min_data_rate: None,
            filter_return: None,
            span: stmt.head(),
        };
        let all = [
            "protocol",
            "bind",
            "tls",
            "auth",
            "max-connections",
            "max-per-client",
            "timeout",
            "min-data-rate",
            "filter-return",
        ];
        let once = [
            "protocol",
            "bind",
            "tls",
            "auth",
            "max-connections",
            "max-per-client",
            "min-data-rate",
            "filter-return",
        ];
        for (keyword, inner) in self.block(stmt, &all, &once)? {
            let mut args = Args::new(inner);
            let result = (|| {
                match keyword {
                    "protocol" => {
                        let p = args.choice("a protocol", &["smtp", "imap", "pop3"])?;
                        let protocol = match p.value {
                            "smtp" => Protocol::Smtp,
                            "imap" => Protocol::Imap,
                            _ => Protocol::Pop3,
                        };
                        listener.protocol = Some(Spanned::new(protocol, p.span));
                    }
                    "bind" => listener.binds = args.list(Args::socket)?,
                    "tls" => listener.tls = Some(listener_tls(&mut args)?),
                    "auth" => {
                        let a = args.choice("an auth mode", &["off", "offer", "require"])?;
                        let mode = match a.value {
                            "off" => AuthMode::Off,
                            "offer" => AuthMode::Offer,
                            _ => AuthMode::Require,
                        };
                        listener.auth = Some(Spanned::new(mode, a.span));
                    }
                    "max-connections" => {
                        listener.max_connections = Some(args.number("a connection count")?)
                    }
                    "max-per-client" => {
                        listener.max_per_client = Some(args.number("a connection count")?)
                    }
                    "timeout" => {
                        let timeouts = args.list(|args| {
                            let kind = args.choice(
                                "a timeout",
                                &["greeting", "command", "data", "idle", "session"],
                            )?;
                            let kind = Spanned::new(
                                match kind.value {
                                    "greeting" => TimeoutKind::Greeting,
                                    "command" => TimeoutKind::Command,
                                    "data" => TimeoutKind::Data,
                                    "idle" => TimeoutKind::Idle,
                                    _ => TimeoutKind::Session,
                                },
                                kind.span,
                            );
                            Ok((kind, args.duration_s()?))
                        })?;
                        listener.timeouts.extend(timeouts);
                    }
                    "min-data-rate" => listener.min_data_rate = Some(args.size()?),
                    _ => listener.filter_return = Some(inner.keyword.span),
                }
                args.end()
            })();
            self.report(result);
        }
        self.require(
            stmt,
            &[
                (
                    listener.protocol.is_some(),
                    "protocol",
                    "`protocol smtp`, `protocol imap` or `protocol pop3`",
                ),
                (
                    !listener.binds.is_empty(),
                    "bind",
                    "the addresses to listen on, like `bind 0.0.0.0:25`",
                ),
            ],
        );
        self.config.listeners.push(listener);
        Ok(())
    }

    fn backend(&mut self, stmt: &Statement) -> Read<()> {
        let mut args = Args::new(stmt);
        let name = args.string("the backend's name")?;
        args.end()?;
        let mut backend = Backend {
            name,
            host: None,
            imap: None,
            pop3: None,
            lmtp: None,
            smtp: None,
            forward_client: None,
            ca: None,
            span: stmt.head(),
        };
        let all = [
            "host",
            "imap",
            "pop3",
            "lmtp",
            "smtp",
            "forward-client",
            "ca",
        ];
        for (keyword, inner) in self.block(stmt, &all, &all)? {
            let mut args = Args::new(inner);
            let result = (|| {
                match keyword {
                    "host" => backend.host = Some(host(&mut args)?),
                    "forward-client" => backend.forward_client = Some(args.switch()?),
                    "ca" => {
                        let file = args.string("a CA file name")?;
                        backend.ca = Some(Spanned::new(
                            resolve_path(self.db, file.span, &file.value),
                            file.span,
                        ));
                    }
                    service => {
                        let port = args.port()?;
                        let mut tls = EndpointTls::None;
                        if args.eat("tls").is_some() {
                            tls = match args
                                .choice("a backend TLS mode", &["none", "starttls", "implicit"])?
                                .value
                            {
                                "starttls" => EndpointTls::StartTls,
                                "implicit" => EndpointTls::Implicit,
                                _ => EndpointTls::None,
                            };
                        }
                        let endpoint = Some(Spanned::new(
                            Endpoint {
                                port: port.value,
                                tls,
                            },
                            inner.head(),
                        ));
                        match service {
                            "imap" => backend.imap = endpoint,
                            "pop3" => backend.pop3 = endpoint,
                            "lmtp" => backend.lmtp = endpoint,
                            _ => backend.smtp = endpoint,
                        }
                    }
                }
                args.end()
            })();
            self.report(result);
        }
        self.require(
            stmt,
            &[(
                backend.host.is_some(),
                "host",
                "the backend's address: `host \"10.0.0.11\"`",
            )],
        );
        self.config.backends.push(backend);
        Ok(())
    }

    fn domain(&mut self, stmt: &Statement) -> Read<()> {
        no_block(stmt)?;
        let mut args = Args::new(stmt);
        let raw = args.string("a domain name")?;
        let name = crate::literal::domain(&raw.value).map_err(|m| {
            value_error(
                m,
                raw.span,
                "invalid domain",
                "write a domain name like `example.com`",
            )
        })?;
        args.expect("local")?;
        args.end()?;
        self.config.domains.push(Domain {
            name: Spanned::new(name, raw.span),
            span: stmt.head(),
        });
        Ok(())
    }

    fn mailbox(&mut self, stmt: &Statement) -> Read<()> {
        let mut args = Args::new(stmt);
        let name = args.string("the mailbox's name")?;
        args.expect("on")?;
        let backend = args.string("the backend's name")?;
        args.end()?;
        let mut mailbox = Mailbox {
            name: name.into(),
            backend: backend.into(),
            addresses: Vec::new(),
            password: None,
            span: stmt.head(),
        };
        if stmt.block.is_some() {
            for (keyword, inner) in self.block(stmt, &["address", "password"], &["password"])? {
                let mut args = Args::new(inner);
                let result = (|| {
                    if keyword == "address" {
                        let list = args.list(Args::address)?;
                        mailbox.addresses.extend(list.into_iter().map(Into::into));
                    } else {
                        mailbox.password = Some(args.string("a password hash")?.into());
                    }
                    args.end()
                })();
                self.report(result);
            }
        }
        self.config.mailboxes.push(mailbox);
        Ok(())
    }

    fn group(&mut self, stmt: &Statement) -> Read<()> {
        let mut args = Args::new(stmt);
        let name = args.string("the group's name")?;
        args.end()?;
        let mut group = Group {
            name: name.into(),
            addresses: Vec::new(),
            members: Vec::new(),
            span: stmt.head(),
        };
        for (keyword, inner) in self.block(stmt, &["member", "address"], &[])? {
            let mut args = Args::new(inner);
            let result = (|| {
                if keyword == "address" {
                    let list = args.list(Args::address)?;
                    group.addresses.extend(list.into_iter().map(Into::into));
                } else {
                    let list = args.list(|a| a.string("a mailbox, group or address"))?;
                    group.members.extend(list.into_iter().map(Into::into));
                }
                args.end()
            })();
            self.report(result);
        }
        self.config.groups.push(group);
        Ok(())
    }

    fn directory(&mut self, stmt: &Statement) -> Read<()> {
        no_block(stmt)?;
        let mut args = Args::new(stmt);
        let file = args.string("a directory file name")?;
        args.end()?;
        let path = resolve_path(self.db, file.span, &file.value);
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if self.db.find(&canonical).is_some() {
            // Named twice (from two included files, say): read once, like an include.
            return Ok(());
        }
        if let Some(id) = load(
            self.db,
            self.diagnostics,
            &path,
            SourceKind::Directory,
            Some(file.span),
        ) {
            directory::read(self.db, id, self.diagnostics, &mut self.config);
        }
        Ok(())
    }

    fn auth(&mut self, stmt: &Statement) -> Read<()> {
        Args::new(stmt).end()?;
        let mut auth = Auth {
            verify: None,
            max_failures: None,
            failure_delay: None,
            span: stmt.keyword.span,
        };
        let all = ["verify", "max-failures", "failure-delay"];
        for (keyword, inner) in self.block(stmt, &all, &all)? {
            let mut args = Args::new(inner);
            let result = (|| {
                match keyword {
                    "verify" => {
                        let how = args.choice("a verification", &["directory", "backend"])?;
                        let verify = if how.value == "backend" {
                            args.expect("imap")?;
                            Verify::BackendImap
                        } else {
                            Verify::Directory
                        };
                        auth.verify = Some(Spanned::new(verify, inner.head()));
                    }
                    "max-failures" => auth.max_failures = Some(args.number("a count")?),
                    _ => auth.failure_delay = Some(args.duration_ms()?),
                }
                args.end()
            })();
            self.report(result);
        }
        self.config.auth = Some(auth);
        Ok(())
    }

    fn connector(&mut self, stmt: &Statement) -> Read<()> {
        let mut args = Args::new(stmt);
        let name = args.string("the connector's name")?;
        args.end()?;
        let mut connector = Connector {
            name,
            address_spaces: Vec::new(),
            deliver: None,
            tls: None,
            credentials: None,
            ca: None,
            accept_from: Vec::new(),
            reject_from: Vec::new(),
            span: stmt.head(),
        };
        let all = ["address-space", "deliver", "accept-from", "reject-from"];
        for (keyword, inner) in self.block(stmt, &all, &["deliver"])? {
            let mut args = Args::new(inner);
            let result = (|| {
                match keyword {
                    "address-space" => {
                        let pattern = args.pattern()?;
                        if pattern.value.contains('@') {
                            return Err(value_error(
                                format!(
                                    "an address space names domains, not addresses: `{}`",
                                    pattern.value
                                ),
                                pattern.span,
                                "not a domain pattern",
                                "write a domain pattern like `*.example.com`, or `*` for every domain",
                            ));
                        }
                        args.expect("cost")?;
                        let cost = args.number("a cost")?;
                        connector.address_spaces.push(AddressSpace {
                            pattern,
                            cost,
                            span: inner.head(),
                        });
                    }
                    "deliver" => {
                        let how = args.choice("a delivery method", &["smarthost", "mx"])?;
                        let deliver = if how.value == "smarthost" {
                            let hp = args.host_port()?;
                            Spanned::new(
                                Deliver::Smarthost {
                                    host: hp.value.0,
                                    port: hp.value.1,
                                },
                                hp.span,
                            )
                        } else if args.eat("port").is_some() {
                            let port = args.port()?;
                            Spanned::new(Deliver::Mx { port: port.value }, how.span.to(port.span))
                        } else {
                            Spanned::new(Deliver::Mx { port: 25 }, how.span)
                        };
                        connector.deliver = Some(deliver);
                        while !args.is_done() {
                            let option =
                                args.choice("a delivery option", &["tls", "credentials", "ca"])?;
                            if option.value == "tls" {
                                let policy = args.choice(
                                    "a TLS policy",
                                    &["none", "opportunistic", "require"],
                                )?;
                                let tls = match policy.value {
                                    "none" => TlsPolicy::None,
                                    "opportunistic" => TlsPolicy::Opportunistic,
                                    _ => TlsPolicy::Require,
                                };
                                connector.tls = Some(Spanned::new(tls, policy.span));
                            } else if option.value == "ca" {
                                let file = args.string("a CA file name")?;
                                connector.ca = Some(Spanned::new(
                                    resolve_path(self.db, file.span, &file.value),
                                    file.span,
                                ));
                            } else {
                                let file = args.string("a credentials file")?;
                                connector.credentials = Some(Spanned::new(
                                    resolve_path(self.db, file.span, &file.value),
                                    file.span,
                                ));
                            }
                        }
                    }
                    restriction => {
                        let senders = args.list(sender_ref)?;
                        if restriction == "accept-from" {
                            connector.accept_from.extend(senders);
                        } else {
                            connector.reject_from.extend(senders);
                        }
                    }
                }
                args.end()
            })();
            self.report(result);
        }
        self.require(
            stmt,
            &[
                (
                    !connector.address_spaces.is_empty(),
                    "address-space",
                    "at least one `address-space \"*\" cost 1`",
                ),
                (
                    connector.deliver.is_some(),
                    "deliver",
                    "`deliver smarthost HOST:PORT` or `deliver mx`",
                ),
            ],
        );
        self.config.connectors.push(connector);
        Ok(())
    }

    fn relay(&mut self, stmt: &Statement) -> Read<()> {
        Args::new(stmt).end()?;
        let mut relay = Relay {
            rules: Vec::new(),
            span: stmt.keyword.span,
        };
        for (keyword, inner) in self.block(stmt, &["allow", "deny"], &[])? {
            let action = if keyword == "allow" {
                Action::Allow
            } else {
                Action::Deny
            };
            let result = relay_rule(inner).map(|conditions| {
                relay.rules.push(RelayRule {
                    action: Spanned::new(action, inner.keyword.span),
                    conditions,
                    span: inner.head(),
                });
            });
            self.report(result);
        }
        self.config.relay = Some(relay);
        Ok(())
    }

    fn unknown_recipients(&mut self, stmt: &Statement) -> Read<()> {
        no_block(stmt)?;
        let mut args = Args::new(stmt);
        let how = args.choice("an action", &["reject", "forward"])?;
        let value = if how.value == "reject" {
            UnknownRecipients::Reject
        } else {
            args.expect("to")?;
            let hp = args.host_port()?;
            UnknownRecipients::Forward {
                host: hp.value.0,
                port: hp.value.1,
                span: hp.span,
            }
        };
        args.end()?;
        self.config.unknown_recipients = Some(Spanned::new(value, stmt.head()));
        Ok(())
    }

    fn journal(&mut self, stmt: &Statement) -> Read<()> {
        no_block(stmt)?;
        let mut args = Args::new(stmt);
        args.expect("to")?;
        let to = args.address()?;
        let scope = if args.eat("scope").is_some() {
            direction(&mut args)?
        } else {
            Spanned::new(Direction::Both, to.span)
        };
        args.end()?;
        self.config.journal = Some(Journal {
            to,
            scope,
            span: stmt.head(),
        });
        Ok(())
    }

    fn disclaimer(&mut self, stmt: &Statement) -> Read<()> {
        no_block(stmt)?;
        let mut args = Args::new(stmt);
        let direction = direction(&mut args)?;
        let position = args.choice("a position", &["append", "prepend"])?;
        let position = Spanned::new(
            if position.value == "append" {
                Position::Append
            } else {
                Position::Prepend
            },
            position.span,
        );
        let text = args.string("the disclaimer text")?;
        args.end()?;
        self.config.disclaimers.push(Disclaimer {
            direction,
            position,
            text,
            span: stmt.head(),
        });
        Ok(())
    }

    fn filter(&mut self, stmt: &Statement) -> Read<()> {
        no_block(stmt)?;
        let mut args = Args::new(stmt);
        let direction = direction(&mut args)?;
        args.expect("smtp")?;
        let hp = args.host_port()?;
        args.end()?;
        self.config.filters.push(Filter {
            direction,
            host: Spanned::new(hp.value.0, hp.span),
            port: hp.value.1,
            span: stmt.head(),
        });
        Ok(())
    }

    fn etrn(&mut self, stmt: &Statement) -> Read<()> {
        no_block(stmt)?;
        let mut args = Args::new(stmt);
        let domains = args.list(Args::pattern)?;
        args.expect("from")?;
        let from = args.list(Args::network)?;
        args.end()?;
        self.config.etrn.push(Etrn {
            domains,
            from,
            span: stmt.head(),
        });
        Ok(())
    }

    fn ndr(&mut self, stmt: &Statement) -> Read<()> {
        let copy_to = self.list_block(stmt, "copy-to", |args| args.address())?;
        self.config.ndr = Some(Ndr {
            copy_to,
            span: stmt.keyword.span,
        });
        Ok(())
    }

    fn queue(&mut self, stmt: &Statement) -> Read<()> {
        Args::new(stmt).end()?;
        let mut queue = Queue {
            spool: None,
            retry: Vec::new(),
            warn_after: None,
            expire: None,
            concurrency: None,
            per_destination: None,
            span: stmt.keyword.span,
        };
        let all = [
            "spool",
            "retry",
            "warn-after",
            "expire",
            "concurrency",
            "per-destination",
        ];
        for (keyword, inner) in self.block(stmt, &all, &all)? {
            let mut args = Args::new(inner);
            let result = (|| {
                match keyword {
                    "spool" => {
                        let dir = args.string("a directory")?;
                        queue.spool = Some(Spanned::new(
                            resolve_path(self.db, dir.span, &dir.value),
                            dir.span,
                        ));
                    }
                    "retry" => queue.retry = args.list(Args::duration_s)?,
                    "warn-after" => queue.warn_after = Some(args.duration_s()?),
                    "concurrency" => queue.concurrency = Some(args.number("a connection count")?),
                    "per-destination" => {
                        queue.per_destination = Some(args.number("a connection count")?)
                    }
                    _ => queue.expire = Some(args.duration_s()?),
                }
                args.end()
            })();
            self.report(result);
        }
        self.config.queue = Some(queue);
        Ok(())
    }

    fn log(&mut self, stmt: &Statement) -> Read<()> {
        Args::new(stmt).end()?;
        let mut log = Log {
            level: None,
            protocol_trace: None,
            span: stmt.keyword.span,
        };
        let all = ["level", "protocol-trace"];
        for (keyword, inner) in self.block(stmt, &all, &all)? {
            let mut args = Args::new(inner);
            let result = (|| {
                if keyword == "level" {
                    let level =
                        args.choice("a log level", &["error", "warn", "info", "debug", "trace"])?;
                    log.level = Some(Spanned::new(level.value.to_owned(), level.span));
                } else {
                    log.protocol_trace = Some(args.switch()?);
                }
                args.end()
            })();
            self.report(result);
        }
        self.config.log = Some(log);
        Ok(())
    }

    fn dns(&mut self, stmt: &Statement) -> Read<()> {
        let servers = self.list_block(stmt, "server", |args| args.socket())?;
        self.config.dns = Some(Dns {
            servers,
            span: stmt.keyword.span,
        });
        Ok(())
    }

    /// A block whose statements are all `keyword` followed by a list of
    /// values: the values of all of them, in order.
    fn list_block<T>(
        &mut self,
        stmt: &Statement,
        keyword: &'static str,
        item: fn(&mut Args<'_>) -> Read<Spanned<T>>,
    ) -> Read<Vec<Spanned<T>>> {
        Args::new(stmt).end()?;
        let mut values = Vec::new();
        for (_, inner) in self.block(stmt, &[keyword], &[])? {
            let mut args = Args::new(inner);
            let result = args.list(item).and_then(|list| {
                values.extend(list);
                args.end()
            });
            self.report(result);
        }
        Ok(values)
    }
}

/// The keyword of `stmt` if it is one of `allowed`; otherwise reports it.
fn known(
    diagnostics: &mut Diagnostics,
    stmt: &Statement,
    allowed: &[&'static str],
    context: &str,
) -> Option<&'static str> {
    if let Some(k) = allowed.iter().find(|k| **k == stmt.keyword.value) {
        return Some(k);
    }
    let word = &stmt.keyword.value;
    let mut diagnostic = Diagnostic::error(
        Code::UnknownKeyword,
        format!("`{word}` is not a statement {context}"),
        Label::new(stmt.keyword.span, "unknown keyword"),
    );
    diagnostic = match suggest::closest(word, allowed.iter().copied()) {
        Some(s) => diagnostic.with_help(format!("did you mean `{s}`?")),
        None if TOP.contains(&word.as_str()) => diagnostic.with_help(format!(
            "`{word}` is a top-level statement: move it out of this block"
        )),
        None => {
            let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
            diagnostic.with_help(format!("allowed here: {}", list.join(", ")))
        }
    };
    diagnostics.push(diagnostic);
    None
}

fn no_block(stmt: &Statement) -> Read<()> {
    match &stmt.block {
        None => Ok(()),
        Some(block) => Err(Diagnostic::error(
            Code::Statement,
            format!("`{}` does not take a block", stmt.keyword.value),
            Label::new(block.span, "unexpected block"),
        )),
    }
}

/// The error for a required statement missing from `stmt`'s block. A
/// statement that is there but was wrong has been reported already, so it
/// counts as present: one mistake, one diagnostic. So does a misspelt one
/// (`adress-space`), which was reported with a did-you-mean.
fn missing(stmt: &Statement, keyword: &str, what: &str) -> Option<Diagnostic> {
    let present = stmt.block.as_ref().is_some_and(|b| {
        b.statements.iter().any(|s| {
            s.keyword.value == keyword || suggest::closest(&s.keyword.value, [keyword]).is_some()
        })
    });
    if present {
        return None;
    }
    Some(
        Diagnostic::error(
            Code::Statement,
            format!("this `{}` has no `{keyword}`", stmt.keyword.value),
            Label::new(stmt.head(), format!("`{keyword}` missing")),
        )
        .with_help(format!("add {what}")),
    )
}

fn value_error(message: String, span: Span, label: &str, help: &str) -> Diagnostic {
    Diagnostic::error(Code::Value, message, Label::new(span, label)).with_help(help)
}

fn host(args: &mut Args<'_>) -> Read<Spanned<String>> {
    let host = args.text("a host name or address")?;
    if host.value.parse::<std::net::IpAddr>().is_ok() {
        return Ok(host);
    }
    crate::literal::domain(&host.value)
        .map(|d| Spanned::new(d, host.span))
        .map_err(|m| {
            value_error(
                m,
                host.span,
                "invalid host",
                "write a host name like `smtp.example.com` or an IP address",
            )
        })
}

fn listener_tls(args: &mut Args<'_>) -> Read<Spanned<ListenerTls>> {
    let mode = args.choice("a TLS mode", &["none", "starttls", "implicit"])?;
    let (mode_value, end) = match mode.value {
        "none" => (TlsMode::None, mode.span),
        "implicit" => (TlsMode::Implicit, mode.span),
        _ => {
            let how = args.choice("a STARTTLS mode", &["offer", "require"])?;
            let m = if how.value == "offer" {
                TlsMode::StartTlsOffer
            } else {
                TlsMode::StartTlsRequire
            };
            (m, how.span)
        }
    };
    let profile = if mode_value == TlsMode::None {
        None
    } else {
        Some(args.string("the TLS profile's name")?)
    };
    let span = profile
        .as_ref()
        .map_or(mode.span.to(end), |p| mode.span.to(p.span));
    Ok(Spanned::new(
        ListenerTls {
            mode: mode_value,
            profile,
        },
        span,
    ))
}

fn sender_ref(args: &mut Args<'_>) -> Read<Spanned<SenderRef>> {
    if let Some(kind) = args
        .eat("mailbox")
        .map(|s| (s, true))
        .or_else(|| args.eat("group").map(|s| (s, false)))
    {
        let name = args.string("a name")?;
        let span = kind.0.to(name.span);
        let value = if kind.1 {
            SenderRef::Mailbox(name.value)
        } else {
            SenderRef::Group(name.value)
        };
        return Ok(Spanned::new(value, span));
    }
    let pattern = args.pattern()?;
    Ok(Spanned::new(
        SenderRef::Pattern(pattern.value),
        pattern.span,
    ))
}

fn direction(args: &mut Args<'_>) -> Read<Spanned<Direction>> {
    let d = args.choice("a direction", &["inbound", "outbound", "both"])?;
    let value = match d.value {
        "inbound" => Direction::Inbound,
        "outbound" => Direction::Outbound,
        _ => Direction::Both,
    };
    Ok(Spanned::new(value, d.span))
}

fn relay_rule(stmt: &Statement) -> Read<Vec<Spanned<Condition>>> {
    let mut args = Args::new(stmt);
    if let Some(_all) = args.eat("all") {
        args.end()?;
        return Ok(Vec::new());
    }
    let mut conditions = Vec::new();
    loop {
        let kind = args.choice(
            "a condition",
            &["authenticated", "from", "to", "sender", "all"],
        )?;
        let condition = match kind.value {
            "authenticated" => Spanned::new(Condition::Authenticated, kind.span),
            "from" => {
                let net = args.network()?;
                Spanned::new(Condition::From(net.value), kind.span.to(net.span))
            }
            "to" => {
                let p = args.pattern()?;
                Spanned::new(Condition::To(p.value), kind.span.to(p.span))
            }
            "sender" => {
                let p = args.pattern()?;
                Spanned::new(Condition::Sender(p.value), kind.span.to(p.span))
            }
            _ => {
                return Err(Diagnostic::error(
                    Code::Arguments,
                    "`all` stands alone: it cannot be combined with other conditions",
                    Label::new(kind.span, "here"),
                ))
            }
        };
        conditions.push(condition);
        if args.is_done() {
            return Ok(conditions);
        }
        args.expect("and")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{findings, with_code};
    use crate::diagnostic::Severity;

    #[test]
    fn misspelt_required_statement_is_reported_once() {
        let t = "connector \"internet\" {\n    adress-space \"*\" cost 1\n    deliver mx\n}\n";
        let found = findings(t);
        let keyword = with_code(t, Code::UnknownKeyword);
        assert_eq!(keyword.len(), 1, "{found:?}");
        assert_eq!(
            keyword[0].help.as_deref(),
            Some("did you mean `address-space`?")
        );
        assert!(
            with_code(t, Code::Statement)
                .iter()
                .all(|d| !d.message.contains("no `address-space`")),
            "{found:?}"
        );
        // Really missing: still reported.
        let t = "connector \"internet\" { deliver mx }\n";
        assert!(with_code(t, Code::Statement)
            .iter()
            .any(|d| d.message.contains("no `address-space`")));
    }

    #[test]
    fn parent_components_are_removed() {
        assert_eq!(
            lexical_normal(Path::new("/a/b/../c/./d.mailgw")),
            PathBuf::from("/a/c/d.mailgw")
        );
        assert_eq!(
            lexical_normal(Path::new("../x/../y")),
            PathBuf::from("../y")
        );
        assert_eq!(
            lexical_normal(Path::new("a/../../b")),
            PathBuf::from("../b")
        );
    }

    #[test]
    fn a_directory_named_twice_is_read_once() {
        let t = "directory \"../fixtures/users.toml\"\ndirectory \"./../fixtures/users.toml\"\n";
        let found = crate::check_text(Path::new("tests/cases/ok/twice.mailgw"), t).diagnostics;
        assert!(
            found
                .iter()
                .all(|d| d.code != Code::DuplicateName && d.code != Code::DuplicateAddress),
            "{found:?}"
        );
        assert!(
            found.iter().all(|d| d.code != Code::Io),
            "the fixture exists: {found:?}"
        );
    }

    #[test]
    fn a_configuration_without_listener_is_a_warning() {
        for t in ["", "# only a comment\n", "domain \"example.com\" local\n"] {
            let found = with_code(t, Code::Statement);
            assert_eq!(found.len(), 1, "{t:?}: {found:?}");
            assert_eq!(found[0].severity, Severity::Warning);
            assert!(found[0].message.contains("no `listener`"));
            let span = found[0].primary.span;
            assert_eq!((span.start, span.end), (0, 0));
        }
        // Not after an error: the listeners may be in the part that was not read.
        for t in [
            "listener \"mx\" {",
            "listner \"mx\" { protocol smtp; bind 0.0.0.0:25 }",
        ] {
            assert!(
                findings(t)
                    .iter()
                    .all(|d| !d.message.contains("no `listener`")),
                "{t:?}"
            );
        }
        let t = "listener \"mx\" { protocol smtp; bind 0.0.0.0:25; auth off }";
        assert!(findings(t)
            .iter()
            .all(|d| !d.message.contains("no `listener`")));
    }
}
