//! The Rust half of `ama.request_json()` (and of `ama.request()`, which wraps it), the one statement the shim sends per HTTP request.
//!
//! `ama.request()` itself is PL/pgSQL (sql/070_request.sql), so that errors raised by route
//! functions reach the client with their exact SQLSTATE (pgrx re-raises errors that cross Rust
//! frames and keeps only the codes it knows). In one call, and so in one transaction and one
//! network round trip, it:
//! 1. looks the route up (`ama.routes`, cached per backend until a DBA changes it);
//! 2. authenticates the credential (JWT claims already verified by the shim; tokens and keys
//!    verified here), counting failures per (client IP, credential kind) so tokens cannot be
//!    guessed online; a credential that verifies is always served, whatever other clients of the
//!    same address did, and an agent acts only while its owner's plan has agent tokens;
//! 3. takes the route's rate-limit decision in the shared-memory ledger;
//! 4. sets the request context as transaction-local SUSET settings (`ama.actor_id`, ...) and
//!    Supabase's `request.jwt.claims`;
//! 5. switches to the request role (`anon`, `authenticated` or `service_role`), exactly as a
//!    SECURITY DEFINER boundary does, and calls the route's SQL function under RLS, with
//!    `ama._call_route()` ([`crate::route_call`]).
//!
//! Authentication failures and rate-limit denials are returned as an envelope rather than raised,
//! so their audit rows commit. Errors raised by the route function propagate with their SQLSTATE.

use ama_core::envelope::{self as msg, Envelope, Rate};
use ama_core::gcra;
use ama_core::token::TokenKind;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::collections::HashMap;

use crate::cache_generation::Cached;
use crate::{credentials, errors, gucs, ratelimit};

/// Policy that counts failed authentication attempts per (client IP, credential kind).
const AUTH_FAILURE_POLICY: &str = "auth_failures";

#[derive(Clone)]
struct Route {
    handler: pg_sys::Oid,
    policy: Option<String>,
    principals: Vec<String>,
    status: i32,
}

/// What the backend caches from the route and plan tables, reloaded when a DBA changes them.
#[derive(Default)]
struct Tables {
    routes: HashMap<String, Route>,
    /// Active agent tokens each plan allows; a plan with none has no working agent tokens.
    agent_tokens_by_plan: HashMap<String, i32>,
}

thread_local! {
    static TABLES: std::cell::RefCell<Cached<Tables>> = std::cell::RefCell::new(Cached::default());
}

fn load_tables() -> Tables {
    let agent_tokens_by_plan = Spi::connect(|client| {
        let rows = client
            .select("SELECT plan, max_agent_tokens FROM ama.plans", None, &[])
            .unwrap_or_else(|e| errors::internal(&format!("cannot load plans: {e}")));
        rows.filter_map(|row| Some((row.get::<String>(1).ok()??, row.get::<i32>(2).ok()??)))
            .collect()
    });
    Tables {
        routes: load_routes(),
        agent_tokens_by_plan,
    }
}

fn load_routes() -> HashMap<String, Route> {
    Spi::connect(|client| {
        let rows = client
            .select(
                "SELECT route, handler::oid, rate_policy, principals, success_status FROM ama.routes",
                None,
                &[],
            )
            .unwrap_or_else(|e| errors::internal(&format!("cannot load routes: {e}")));
        rows.filter_map(|row| {
            let name: String = row.get(1).ok()??;
            let handler: pg_sys::Oid = row.get(2).ok()??;
            let policy: Option<String> = row.get(3).ok()?;
            let principals: Vec<String> = row.get(4).ok()??;
            let status: i32 = row.get(5).ok()??;
            Some((
                name,
                Route {
                    handler,
                    policy,
                    principals,
                    status,
                },
            ))
        })
        .collect()
    })
}

fn with_tables<R>(f: impl FnOnce(&Tables) -> R) -> R {
    TABLES.with(|cell| f(cell.borrow_mut().get(load_tables)))
}

fn route(name: &str) -> Option<Route> {
    with_tables(|t| t.routes.get(name).cloned())
}

/// Whether a plan lets its users' agents act (it allows at least one agent token).
fn plan_has_agents(plan: &str) -> bool {
    with_tables(|t| t.agent_tokens_by_plan.get(plan).is_some_and(|n| *n > 0))
}

/// Who the request is, once authenticated.
struct Principal {
    kind: &'static str,
    actor_id: Option<String>,
    credential_id: Option<String>,
    /// Rate-limit key for credential-keyed policies.
    credential_key: String,
    /// Rate-limit key for user-keyed policies.
    user_key: Option<String>,
    plan: String,
    role: &'static str,
    claims: Value,
}

/// A final error envelope (401, 403, 429), returned instead of calling the route.
fn error_envelope(status: u16, code: &str, message: &str, rate: Option<Rate>) -> JsonB {
    JsonB(Envelope::error(status, code, message, rate).to_json())
}

fn rate(p: &ratelimit::CachedPolicy, d: &gcra::Decision) -> Rate {
    Rate {
        policy: p.name.clone(),
        limit: u64::from(d.limit),
        remaining: u64::from(d.remaining),
        reset: gcra::ceil_secs(d.reset_ns),
        retry_after: gcra::ceil_secs(d.retry_after_ns),
        window: p.window_secs(),
    }
}

/// Appends a security event through `ama._audit_as()`, naming the actor and the client itself:
/// the request's context is not set yet.
fn audit(event: &str, actor: Option<&str>, subject: Option<&str>, ip: &str, detail: Value) {
    let ip = ip.parse::<std::net::IpAddr>().ok().map(|a| a.to_string());
    let _ = Spi::run_with_args(
        "SELECT ama._audit_as($1, $2::inet, $3, $4, $5)",
        &[
            actor.into(),
            ip.into(),
            event.into(),
            subject.into(),
            JsonB(detail).into(),
        ],
    );
}

fn user_principal(mut claims: Value) -> Option<Principal> {
    // A user always acts as `authenticated`: a `role` claim in the token (even a signed
    // `service_role`) never reaches Supabase-style policies that read `auth.role()`.
    claims
        .as_object_mut()?
        .insert("role".into(), Value::String("authenticated".into()));
    let uid = ama_core::claims::user_id(claims.get("sub")?.as_str()?)?;
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .map(|e| e.chars().take(320).collect::<String>());
    let id = pgrx::Uuid::from_bytes(*uid.as_bytes());
    let plan = match credentials::user_plan(&id) {
        Some(p) => p,
        None => {
            // First sight of a Supabase user: provision the row on the default plan. The email is
            // never the display name (co-participants see display names).
            Spi::get_one_with_args::<String>(
                "SELECT ama._provision_user($1, $2)",
                &[id.into(), email.into()],
            )
            .ok()??
        }
    };
    let actor = format!("user:{uid}");
    Some(Principal {
        kind: "user",
        actor_id: Some(actor.clone()),
        credential_id: None,
        credential_key: actor.clone(),
        user_key: Some(actor),
        plan,
        role: "authenticated",
        claims,
    })
}

fn token_principal(kind: TokenKind, raw: &str) -> Option<Principal> {
    let v = credentials::verify(kind, raw)?;
    // An agent acts on its owner's plan.
    let plan = match &v.owner {
        Some(owner) => credentials::user_plan(owner)?,
        None => String::new(),
    };
    let pkind = kind.principal_kind();
    let (role, key_prefix) = match kind {
        TokenKind::Agent => ("authenticated", "tok"),
        TokenKind::Visitor => ("anon", "vst"),
        TokenKind::InternalKey => ("service_role", "key"),
    };
    let mut claims =
        json!({"principal_kind": pkind, "actor_id": v.actor_id, "credential_id": v.id});
    if let Some(thread) = &v.thread {
        // A visitor token is valid for its one thread (checked by ama._thread_for).
        claims["thread_id"] = Value::String(thread.to_string());
    }
    Some(Principal {
        kind: pkind,
        credential_key: format!("{key_prefix}:{}", v.id),
        credential_id: Some(v.id),
        user_key: None,
        actor_id: Some(v.actor_id),
        plan,
        role,
        claims,
    })
}

fn anon_principal(ip: &str) -> Principal {
    Principal {
        kind: "anon",
        actor_id: None,
        credential_id: None,
        credential_key: format!("ip:{ip}"),
        user_key: None,
        plan: String::new(),
        role: "anon",
        claims: json!({"principal_kind": "anon"}),
    }
}

/// Counts a failed authentication against (client IP, credential kind) and answers 401, or 429
/// once that pair is over its limit. Past the limit nothing is written but the counter.
fn auth_failure(route_name: &str, kind: &str, ip: &str, scope: &str) -> JsonB {
    let (allowed, rate) = match ratelimit::policy(AUTH_FAILURE_POLICY) {
        Some(fp) => {
            let key = auth_failure_key(scope, kind);
            let d = ratelimit::decide(fp.id, &fp.base, &key, 1, true).decision;
            (d.allowed, Some(rate(&fp, &d)))
        }
        None => (true, None),
    };
    if !allowed {
        return error_envelope(429, "RATE_LIMITED", msg::TOO_MANY_AUTH_FAILURES, rate);
    }
    audit(
        "auth_failed",
        None,
        Some(route_name),
        ip,
        json!({"credential_kind": kind}),
    );
    error_envelope(401, "UNAUTHORIZED", msg::UNAUTHORIZED, rate)
}

/// The ledger key of failed authentications: one per (client IP, credential kind).
fn auth_failure_key(ip: &str, kind: &str) -> String {
    format!("ip:{ip}|{kind}")
}

/// Everything `ama.request()` does before the route call: returns either a final envelope (401,
/// 403, 429: it has a `body`) or `{handler, role, status, rate, principal}` for the call.
#[pg_extern(volatile, parallel_unsafe, name = "_request_begin")]
fn request_begin(
    route_name: Option<&str>,
    credential_kind: Option<&str>,
    credential: Option<&str>,
    claims: Option<JsonB>,
    client_ip: Option<pgrx::datum::Inet>,
) -> JsonB {
    let route_name = route_name.unwrap_or_else(|| errors::null_input("route must not be NULL"));
    let Some(rt) = route(route_name) else {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "unknown route \"{}\"",
                route_name.chars().take(64).collect::<String>()
            )
        );
    };
    let addr = client_ip.and_then(|s| {
        s.0.split('/')
            .next()
            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
    });
    // The exact address for the audit log and the context; per-IP limits count an IPv6 client
    // by its /64 (it can choose any address in it).
    let ip = addr.map_or_else(|| "unknown".to_string(), |a| a.to_string());
    let scope = addr.map_or_else(
        || "unknown".to_string(),
        |a| ama_core::net::limit_scope(a).to_string(),
    );

    // Authentication. A credential that verifies is always served: failures are counted per
    // (client IP, credential kind), and only further failing attempts of that kind from that
    // address are refused, so one guesser behind a NAT cannot lock its neighbours out.
    let kind = credential_kind.unwrap_or("none");
    let principal = if kind == "none" {
        anon_principal(&scope)
    } else {
        let authenticated = match (kind, credential, claims) {
            ("jwt", _, Some(JsonB(c))) => user_principal(c),
            (name, Some(raw), _) => {
                TokenKind::from_name(name).and_then(|k| token_principal(k, raw))
            }
            _ => None,
        };
        let Some(p) = authenticated else {
            return auth_failure(route_name, kind, &ip, &scope);
        };
        p
    };

    // An agent acts on its owner's current plan: a downgrade takes effect on the next request.
    if principal.kind == "agent" && !plan_has_agents(&principal.plan) {
        return error_envelope(403, "FORBIDDEN", msg::AGENT_PLAN_REQUIRED, None);
    }

    if !rt.principals.iter().any(|k| k == principal.kind) {
        return if principal.kind == "anon" {
            error_envelope(401, "UNAUTHORIZED", msg::CREDENTIAL_REQUIRED, None)
        } else {
            error_envelope(
                403,
                "FORBIDDEN",
                &msg::principal_refused(principal.kind),
                None,
            )
        };
    }

    // Rate limit.
    let mut rate_state = None;
    if let Some(pname) = &rt.policy {
        if let Some(p) = ratelimit::policy(pname) {
            let key = match p.key_kind.as_str() {
                "ip" => format!("ip:{scope}"),
                "ip_kind" => auth_failure_key(&scope, principal.kind),
                "user" => principal
                    .user_key
                    .clone()
                    .unwrap_or_else(|| principal.credential_key.clone()),
                _ => principal.credential_key.clone(),
            };
            let out = ratelimit::decide(p.id, &p.for_plan(&principal.plan), &key, 1, true);
            let state = rate(&p, &out.decision);
            if !out.decision.allowed {
                if out.first_denial {
                    audit(
                        "rate_limited",
                        principal.actor_id.as_deref(),
                        Some(&key),
                        &ip,
                        json!({"policy": p.name, "route": route_name}),
                    );
                }
                return error_envelope(429, "RATE_LIMITED", msg::RATE_LIMITED, Some(state));
            }
            rate_state = Some(state);
        }
    }

    // Context, then the route under the request role.
    let claims_text = principal.claims.to_string();
    gucs::set_local("ama.principal_kind", principal.kind);
    gucs::set_local("ama.actor_id", principal.actor_id.as_deref().unwrap_or(""));
    gucs::set_local(
        "ama.credential_id",
        principal.credential_id.as_deref().unwrap_or(""),
    );
    gucs::set_local("ama.client_ip", if ip == "unknown" { "" } else { &ip });
    gucs::set_local("ama.plan", &principal.plan);
    gucs::set_local("ama.claims", &claims_text);
    if principal.kind == "user" {
        gucs::set_local("request.jwt.claims", &claims_text);
    }
    JsonB(json!({
        "handler": rt.handler.to_u32(),
        "role": principal.role,
        "status": rt.status,
        "rate": rate_state,
        "principal": principal.actor_id,
    }))
}
