//! Lowering: the checked configuration becomes a [`Plan`].

type Plan = ();

use crate::ast::Config;
use crate::source::SourceDb;

/// Builds the plan of a configuration that passed every check.
pub fn lower(_db: &SourceDb, _config: &Config) -> Plan {
    unimplemented!("lowering is written next")
}
