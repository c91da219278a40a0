//! Authentication of a request's credential: recognised and format-checked
//! ([`crate::credential`]), a JWT verified ([`crate::jwt`]); a refusal is the generic 401, or 429
//! once the client has had too many refused. Every route (and every WebSocket credential form)
//! goes through [`authenticate`].

use crate::context::Ctx;
use crate::credential::{classify, Credential, Presented};
use crate::errors::ApiError;
use crate::response::{error_response, limited_response, set_rate_headers, Body};
use http::Response;

/// A credential the shim refused by itself. The failure is counted against (client IP,
/// credential kind), an IPv6 client by its /64, only now, after the check failed, so a credential
/// that verifies never meets this limit: the generic 401 up to the limit, then 429.
fn refused(ctx: &Ctx, kind: &'static str) -> Response<Body> {
    let verdict = ctx.app.limits.auth_failure(ctx.ip, kind);
    if !verdict.allowed() {
        return limited_response(
            &ctx.app.metrics,
            &verdict,
            ama_core::envelope::TOO_MANY_AUTH_FAILURES,
            &ctx.rid,
        );
    }
    let mut r = error_response(&ApiError::unauthorized(), &ctx.rid);
    set_rate_headers(&mut r, &verdict.rate(), 401);
    r
}

/// Recognises and, for JWTs, verifies the credential. Failures are the generic 401, or 429 once
/// this client IP has had too many of this kind refused (see [`refused`]).
pub async fn authenticate(
    ctx: &Ctx,
    headers: &http::HeaderMap,
) -> Result<Credential, Response<Body>> {
    let app = &ctx.app;
    let presented = match classify(headers) {
        Ok(p) => p,
        Err(r) => {
            ctx.set_credential(r.kind);
            app.metrics.auth(r.kind, "rejected");
            tracing::debug!(kind = r.kind, reason = r.reason, "credential refused");
            return Err(refused(ctx, r.kind));
        }
    };
    match presented {
        Presented::None => {
            ctx.set_credential("none");
            Ok(Credential::None)
        }
        Presented::Token(k, t) => {
            ctx.set_credential(k.name());
            Ok(Credential::Token(k, t.to_string()))
        }
        Presented::Jwt(t) => {
            ctx.set_credential("jwt");
            match app.verifier.verify(t).await {
                Ok(v) => Ok(Credential::Jwt(v)),
                Err(e) => {
                    app.metrics.auth("jwt", "rejected");
                    tracing::debug!(reason = %e, "JWT refused");
                    Err(refused(ctx, "jwt"))
                }
            }
        }
    }
}
