//! Capability names: a thin adapter around `ama_core::caps`.

use pgrx::prelude::*;

/// Maps capability names and aliases (observe, speak, manage_thread, manage_participants) to the
/// canonical set read, send, run, manage, in that order; raises 22023 on an unknown name.
#[pg_extern(immutable, parallel_safe, name = "canonical_capabilities")]
fn canonical_capabilities(caps: Option<Vec<Option<String>>>) -> Vec<String> {
    let caps = caps.unwrap_or_else(|| crate::errors::null_input("capabilities must not be NULL"));
    match ama_core::caps::canonical_set(caps.iter().map(|c| c.as_deref())) {
        Ok(set) => set.into_iter().map(str::to_string).collect(),
        Err(bad) => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("unknown capability \"{bad}\""),
                "capabilities are read, send, run, manage (aliases: observe, speak, manage_thread, manage_participants)"
            );
        }
    }
}
