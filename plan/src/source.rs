//! Source references: which configuration line a plan item came from.

use serde::{Deserialize, Serialize};

/// A line in one of the configuration files, kept so that the runtime can
/// name the rule behind each decision (`examples/frontend.mailgw:41`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceRef {
    /// Index into [`SourceMap::files`].
    pub file: u32,
    /// One-based line number.
    pub line: u32,
}

impl SourceRef {
    /// A reference to `line` (one-based) of file number `file`.
    pub fn new(file: u32, line: u32) -> SourceRef {
        SourceRef { file, line }
    }
}

/// The files a plan was compiled from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SourceMap {
    /// File paths as given, relative to the main file's directory; the main
    /// file is usually first.
    pub files: Vec<String>,
}

impl SourceMap {
    /// Adds a file (or finds it if already present) and returns its index.
    pub fn add(&mut self, path: &str) -> u32 {
        let index = match self.files.iter().position(|f| f == path) {
            Some(i) => i,
            None => {
                self.files.push(path.to_owned());
                self.files.len() - 1
            }
        };
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// The file path of a reference, if the index is valid.
    pub fn file(&self, source: SourceRef) -> Option<&str> {
        self.files.get(source.file as usize).map(String::as_str)
    }

    /// `path:line`, e.g. `examples/frontend.mailgw:41`; an unknown file index
    /// prints as `<file N>` rather than failing.
    pub fn describe(&self, source: SourceRef) -> String {
        match self.file(source) {
            Some(path) => format!("{path}:{}", source.line),
            None => format!("<file {}>:{}", source.file, source.line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_file_and_line() {
        let mut map = SourceMap::default();
        let main = map.add("examples/frontend.mailgw");
        let users = map.add("users.toml");
        assert_eq!(map.add("examples/frontend.mailgw"), main);
        assert_eq!(
            map.describe(SourceRef::new(main, 41)),
            "examples/frontend.mailgw:41"
        );
        assert_eq!(map.describe(SourceRef::new(users, 3)), "users.toml:3");
        assert_eq!(map.describe(SourceRef::new(9, 1)), "<file 9>:1");
    }
}
