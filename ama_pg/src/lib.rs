//! `ama_pg`: the AMA2 security core as a PostgreSQL extension.
//!
//! The hand-written SQL in `../sql` creates the roles, tables, policies and the SQL API; the Rust
//! modules here are thin adapters around `ama_core`:
//! - [`gucs`]: the request-context settings (SUSET, so no session can forge them);
//! - [`credentials`]: agent tokens, visitor tokens and internal keys (format, hash, lookup);
//! - [`ratelimit`]: the shared-memory GCRA ledger;
//! - [`cache_generation`]: the shared-memory counter that tells backends to reload the cached
//!   plans, rate policies and routes;
//! - [`membership`]: the current actor's membership of a thread, memoised per snapshot, for the
//!   RLS policies; [`capabilities`]: capability names;
//! - [`prepared`]: SPI statements prepared once per backend;
//! - [`request`]: the Rust half of `ama.request()`, the one statement the shim sends per request;
//!   [`route_call`]: its route call through the function manager, and the API's timestamps;
//! - [`webhooks`]: the webhook settings, callback URL check, sealed secrets and signatures.

use pgrx::prelude::*;

#[cfg(not(panic = "unwind"))]
compile_error!("ama_pg must be built with panic = \"unwind\" (see the workspace Cargo.toml)");

mod cache_generation;
mod capabilities;
mod credentials;
mod errors;
mod events;
mod gucs;
mod membership;
mod prepared;
mod probe;
mod ratelimit;
mod rawfn;
mod request;
mod route_call;
mod webhooks;

::pgrx::pg_module_magic!();

pgrx::extension_sql_file!("../../sql/001_roles.sql", name = "roles", bootstrap);
pgrx::extension_sql_file!(
    "../../sql/010_tables.sql",
    name = "tables",
    requires = ["roles"]
);
pgrx::extension_sql_file!(
    "../../sql/020_context.sql",
    name = "context",
    requires = ["tables"]
);
pgrx::extension_sql_file!(
    "../../sql/030_policies.sql",
    name = "policies",
    requires = ["context"]
);
pgrx::extension_sql_file!(
    "../../sql/035_events.sql",
    name = "events_sql",
    requires = ["policies", events::event_payload]
);
pgrx::extension_sql_file!(
    "../../sql/040_ratelimit.sql",
    name = "ratelimit_sql",
    requires = [
        "events_sql",
        cache_generation::_bump_cache_generation,
        ratelimit::rate_buckets,
        ratelimit::rate_counters
    ]
);
pgrx::extension_sql_file!(
    "../../sql/045_audit.sql",
    name = "audit_sql",
    requires = ["ratelimit_sql"]
);
pgrx::extension_sql_file!(
    "../../sql/050_sql_api.sql",
    name = "sql_api",
    requires = ["audit_sql", credentials::token_new, credentials::token_hash]
);
pgrx::extension_sql_file!(
    "../../sql/060_http_api.sql",
    name = "http_api",
    requires = [
        "sql_api",
        route_call::ts,
        route_call::uuid_field,
        route_call::int_field
    ]
);
pgrx::extension_sql_file!(
    "../../sql/065_webhooks.sql",
    name = "webhooks_sql",
    requires = [
        "http_api",
        webhooks::check_url,
        webhooks::secret_new,
        webhooks::sign,
        webhooks::backoff_ms
    ]
);
pgrx::extension_sql_file!(
    "../../sql/070_request.sql",
    name = "request_sql",
    requires = ["webhooks_sql", request::request_begin, errors::http_error]
);
pgrx::extension_sql_file!(
    "../../sql/067_realtime.sql",
    name = "realtime_sql",
    requires = ["http_api", events::typing_payload]
);
pgrx::extension_sql_file!("../../sql/090_grants.sql", name = "grants", finalize);

/// Registers the settings and, when preloaded, the rate-limit ledger's shared memory.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        ratelimit::init_shmem();
        cache_generation::init_shmem();
    }
}

#[cfg(any(test, feature = "pg_test"))]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'ama_pg'"]
    }
}
