//! Agent tokens, visitor tokens and internal API keys: thin adapters around `ama_core::token`.
//!
//! Verification checks the format and CRC32 first (no database work for a mistyped or forged
//! token), then probes the unique index on the SHA-256 directly (`probe`: no SPI, parser or
//! planner) and compares the stored hash in constant time. Nothing is cached: the probe reads
//! under the statement's snapshot, so a revocation holds for the very next statement on every
//! connection. `last_used_at` is written at most once a minute per credential, by the SECURITY
//! DEFINER `ama._credential_used()`, so the verifiers need no SECURITY DEFINER of their own.

use ama_core::token::{self, TokenKind};
use pgrx::prelude::*;

use std::ffi::CStr;

use crate::probe::{self, Key};
use crate::{errors, prepared, rawfn, v1_function};

/// A verified credential.
pub struct Verified {
    /// token_id or key_id.
    pub id: String,
    /// The actor the credential speaks for (`agent:...`, `visitor:...`, `service:<name>`).
    pub actor_id: String,
    /// The user who owns an agent token, whose plan applies to it.
    pub owner: Option<pgrx::Uuid>,
    /// The one thread a visitor token is valid for.
    pub thread: Option<pgrx::Uuid>,
}

/// A user's plan, read through the users primary key.
pub fn user_plan(user: &pgrx::Uuid) -> Option<String> {
    probe::lookup(c"users", c"users_pkey", &[Key::Uuid(user)], |row| {
        row.text(c"plan")
    })
    .flatten()
}

pub fn kind_from_name(kind: &str) -> TokenKind {
    kind.parse()
        .unwrap_or_else(|e: token::UnknownKind| errors::bad_input(&e.to_string()))
}

/// Where a credential kind lives.
struct Table {
    table: &'static CStr,
    /// The unique index on the hash column.
    index: &'static CStr,
    id: &'static CStr,
    hash: &'static CStr,
    /// The actor column, or the key name (`service:<name>`).
    actor: &'static CStr,
    expires: Option<&'static CStr>,
    /// The owning user, whose plan applies.
    owner: Option<&'static CStr>,
    /// The one thread the credential is bound to.
    thread: Option<&'static CStr>,
    /// The kind, by whose name `ama._credential_used()` knows it.
    kind: TokenKind,
}

const AGENT: Table = Table {
    table: c"agent_tokens",
    index: c"agent_tokens_token_hash_key",
    id: c"token_id",
    hash: c"token_hash",
    actor: c"agent_actor_id",
    expires: Some(c"expires_at"),
    owner: Some(c"owner_user_id"),
    thread: None,
    kind: TokenKind::Agent,
};

const VISITOR: Table = Table {
    table: c"visitor_tokens",
    index: c"visitor_tokens_token_hash_key",
    id: c"token_id",
    hash: c"token_hash",
    actor: c"visitor_actor_id",
    expires: Some(c"expires_at"),
    owner: None,
    thread: Some(c"thread_id"),
    kind: TokenKind::Visitor,
};

const KEY: Table = Table {
    table: c"internal_keys",
    index: c"internal_keys_key_hash_key",
    id: c"key_id",
    hash: c"key_hash",
    actor: c"name",
    expires: None,
    owner: None,
    thread: None,
    kind: TokenKind::InternalKey,
};

/// `last_used_at` is written when it is older than this (microseconds).
const TOUCH_EVERY_US: i64 = 60_000_000;

/// Marks a credential used (at most once a minute; an internal key's use is audited). The
/// SECURITY DEFINER SQL function does the write, so the verifier itself needs no privilege; it
/// takes the credential's hash, which only a holder of the raw credential can compute.
const TOUCH: &str = "SELECT ama._credential_used($1, $2)";

/// What the probe copies out of a credential row.
struct Found {
    id: pgrx::Uuid,
    actor: String,
    stored: Vec<u8>,
    live: bool,
    stale: bool,
    owner: Option<pgrx::Uuid>,
    thread: Option<pgrx::Uuid>,
}

/// Verifies a raw credential of `kind`. Returns `None` for anything that is not a live,
/// well-formed, known credential, without saying which check failed.
pub fn verify(kind: TokenKind, raw: &str) -> Option<Verified> {
    token::check_format(kind, raw).ok()?;
    let hash = token::hash(raw);
    let t = match kind {
        TokenKind::Agent => &AGENT,
        TokenKind::Visitor => &VISITOR,
        TokenKind::InternalKey => &KEY,
    };
    // now(): the transaction's start, as the SQL the verifier replaces used.
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let found = probe::lookup(t.table, t.index, &[Key::Bytea(&hash)], |row| {
        let expired = t
            .expires
            .and_then(|c| row.timestamp(c))
            .is_some_and(|at| at <= now);
        let revoked = row.timestamp(c"revoked_at").is_some();
        let stale = row
            .timestamp(c"last_used_at")
            .is_none_or(|at| at < now - TOUCH_EVERY_US);
        Some(Found {
            id: row.uuid(t.id)?,
            actor: row.text(t.actor)?,
            stored: row.bytes(t.hash)?,
            live: !revoked && !expired,
            stale,
            owner: t.owner.and_then(|c| row.uuid(c)),
            thread: t.thread.and_then(|c| row.uuid(c)),
        })
    })??;
    if !token::hashes_equal(&found.stored, &hash) || !found.live {
        return None;
    }
    if found.stale {
        Spi::connect(|client| {
            let touch = prepared::statement(client, TOUCH, &[prepared::TEXT, prepared::BYTEA]);
            client
                .select(
                    &*touch,
                    None,
                    &[t.kind.name().into(), hash.as_slice().into()],
                )
                .map(|_| ())
        })
        .unwrap_or_else(|e| errors::internal(&format!("cannot record credential use: {e}")));
    }
    let actor_id = if matches!(kind, TokenKind::InternalKey) {
        format!("service:{}", found.actor)
    } else {
        found.actor
    };
    Some(Verified {
        id: found.id.to_string(),
        actor_id,
        owner: found.owner,
        thread: found.thread,
    })
}

/// Generates a new credential of `kind`; the raw value is returned once and never stored.
#[pg_extern(volatile, parallel_safe, name = "_token_new")]
fn token_new(
    kind: &str,
) -> TableIterator<
    'static,
    (
        name!(raw_token, String),
        name!(token_hash, Vec<u8>),
        name!(token_prefix, String),
    ),
> {
    let issued = token::generate(kind_from_name(kind));
    TableIterator::once((issued.raw, issued.hash.to_vec(), issued.display_prefix))
}

/// SHA-256 of a raw credential after its format and checksum are checked (28000 otherwise).
#[pg_extern(immutable, parallel_safe, name = "token_hash")]
fn token_hash(raw_token: Option<&str>, kind: Option<&str>) -> Vec<u8> {
    let kind = kind_from_name(kind.unwrap_or_else(|| errors::null_input("kind must not be NULL")));
    let raw = raw_token.unwrap_or_else(|| errors::null_input("raw_token must not be NULL"));
    if token::check_format(kind, raw).is_err() {
        errors::unauthorized();
    }
    token::hash(raw).to_vec()
}

/// `ama.verify_agent_token(raw_token)` for trusted services: the token id and agent of a live
/// agent token, or 28000 without saying which check failed (22004 for NULL).
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn ama_verify_agent_token(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe { verify_sql(fcinfo, TokenKind::Agent, "raw_token must not be NULL") }
}
v1_function!(pg_finfo_ama_verify_agent_token);

/// `ama.verify_internal_key(raw_key)` for trusted services: the key id and `service:<name>`.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn ama_verify_internal_key(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe { verify_sql(fcinfo, TokenKind::InternalKey, "raw_key must not be NULL") }
}
v1_function!(pg_finfo_ama_verify_internal_key);

/// The SQL verifiers: (id, actor) of a live credential.
unsafe fn verify_sql(
    fcinfo: pg_sys::FunctionCallInfo,
    kind: TokenKind,
    null_message: &str,
) -> pg_sys::Datum {
    let raw = unsafe { pgrx::fcinfo::pg_getarg::<&str>(fcinfo, 0) }
        .unwrap_or_else(|| errors::null_input(null_message));
    let v = verify(kind, raw).unwrap_or_else(|| errors::unauthorized());
    let id = v.id.into_datum();
    let actor = v.actor_id.into_datum();
    let mut values =
        [id, actor].map(|d| d.unwrap_or_else(|| errors::internal("ama_pg: NULL datum")));
    unsafe { rawfn::record(fcinfo, &mut values) }
}
