//! (to be written)

use super::Context;

/// Runs this check.
pub fn check(_cx: &mut Context<'_>) {}
