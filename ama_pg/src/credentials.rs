//! Agent tokens, visitor tokens and internal API keys: thin adapters around `ama_core::token`.
//!
//! Verification checks the format and CRC32 first (no database work for a mistyped or forged
//! token), then looks the SHA-256 up through a unique index and compares the stored hash in
//! constant time. Nothing is cached, so a revocation holds for the very next request on every
//! connection. `last_used_at` is written at most once a minute per credential.

use ama_core::token::{self, TokenKind};
use pgrx::prelude::*;

use crate::{errors, plans};

/// A verified credential.
pub struct Verified {
    /// token_id or key_id.
    pub id: String,
    /// The actor the credential speaks for (`agent:...`, `visitor:...`, `service:<name>`).
    pub actor_id: String,
    /// The plan that applies (the owning user's plan for an agent; empty otherwise).
    pub plan: String,
}

pub fn kind_from_name(kind: &str) -> TokenKind {
    match kind {
        "agent" => TokenKind::Agent,
        "visitor" => TokenKind::Visitor,
        "internal" => TokenKind::InternalKey,
        _ => errors::bad_input("token kind must be one of agent, visitor, internal"),
    }
}

const AGENT_LOOKUP: &str = "SELECT t.token_id::text, t.agent_actor_id, t.token_hash, \
       (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())), \
       (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'), u.plan \
  FROM ama.agent_tokens t JOIN ama.users u ON u.user_id = t.owner_user_id \
 WHERE t.token_hash = $1";

const VISITOR_LOOKUP: &str = "SELECT t.token_id::text, t.visitor_actor_id, t.token_hash, \
       (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())), \
       (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'), ''::text \
  FROM ama.visitor_tokens t WHERE t.token_hash = $1";

const KEY_LOOKUP: &str = "SELECT k.key_id::text, 'service:' || k.name, k.key_hash, \
       (k.revoked_at IS NULL), \
       (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute'), ''::text \
  FROM ama.internal_keys k WHERE k.key_hash = $1";

const AGENT_TOUCH: &str =
    "UPDATE ama.agent_tokens SET last_used_at = now() WHERE token_id = $1::uuid";
const VISITOR_TOUCH: &str =
    "UPDATE ama.visitor_tokens SET last_used_at = now() WHERE token_id = $1::uuid";
const KEY_TOUCH: &str = "WITH k AS (UPDATE ama.internal_keys SET last_used_at = now() \
     WHERE key_id = $1::uuid RETURNING key_id, name) \
  INSERT INTO ama.audit_log (event, actor_id, subject) \
  SELECT 'key_used', 'service:' || k.name, k.key_id::text FROM k";

/// Verifies a raw credential of `kind`. Returns `None` for anything that is not a live,
/// well-formed, known credential, without saying which check failed.
pub fn verify(kind: TokenKind, raw: &str) -> Option<Verified> {
    token::check_format(kind, raw).ok()?;
    let hash = token::hash(raw);
    let (lookup, touch) = match kind {
        TokenKind::Agent => (AGENT_LOOKUP, AGENT_TOUCH),
        TokenKind::Visitor => (VISITOR_LOOKUP, VISITOR_TOUCH),
        TokenKind::InternalKey => (KEY_LOOKUP, KEY_TOUCH),
    };
    let row = Spi::connect(|client| {
        let plan = plans::plan(client, lookup, &[plans::BYTEA]);
        let rows = client
            .select(&*plan, Some(1), &[hash.to_vec().into()])
            .ok()?;
        let row = rows.first();
        let id: String = row.get(1).ok()??;
        let actor: String = row.get(2).ok()??;
        let stored: Vec<u8> = row.get(3).ok()??;
        let live: bool = row.get(4).ok()??;
        let stale: bool = row.get(5).ok()??;
        let plan: String = row.get(6).ok()?.unwrap_or_default();
        Some((id, actor, stored, live, stale, plan))
    })?;
    let (id, actor_id, stored, live, stale, plan) = row;
    if !token::hashes_equal(&stored, &hash) || !live {
        return None;
    }
    if stale {
        let _ = Spi::run_with_args(touch, &[id.clone().into()]);
    }
    Some(Verified { id, actor_id, plan })
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

/// Verifies an external agent token for trusted services: returns its token id and agent, or
/// raises 28000 without saying which check failed.
#[pg_extern(volatile, security_definer, name = "verify_agent_token")]
#[search_path(pg_catalog)]
fn verify_agent_token(
    raw_token: Option<&str>,
) -> TableIterator<'static, (name!(token_id, String), name!(agent_actor_id, String))> {
    let raw = raw_token.unwrap_or_else(|| errors::null_input("raw_token must not be NULL"));
    match verify(TokenKind::Agent, raw) {
        Some(v) => TableIterator::once((v.id, v.actor_id)),
        None => errors::unauthorized(),
    }
}

/// Verifies an internal API key for trusted services: returns its key id and name.
#[pg_extern(volatile, security_definer, name = "verify_internal_key")]
#[search_path(pg_catalog)]
fn verify_internal_key(
    raw_key: Option<&str>,
) -> TableIterator<'static, (name!(key_id, String), name!(actor_id, String))> {
    let raw = raw_key.unwrap_or_else(|| errors::null_input("raw_key must not be NULL"));
    match verify(TokenKind::InternalKey, raw) {
        Some(v) => TableIterator::once((v.id, v.actor_id)),
        None => errors::unauthorized(),
    }
}
