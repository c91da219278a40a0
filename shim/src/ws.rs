//! The WebSocket streams: `GET /api/v1/chat/ws/user/threads` (all of a user's or agent's
//! threads) and `GET /api/v1/chat/ws/public/{custom_slug}/threads/{thread_id}` (a visitor's one
//! thread). An HTTP/1.1 upgrade served by `tokio-tungstenite` over hyper's upgrade.
//!
//! The credential comes in the `Authorization` header, in `Sec-WebSocket-Protocol` as
//! `bearer.<token>` next to `ama.v1` (browsers), as `?token=` (compatibility only: the shim never
//! logs a URL), or, with none of these, in a first `{"type":"auth","token":…}` message within
//! `--ws-auth-timeout-secs`. A credential given in the request is checked (like every route's)
//! before the upgrade: a bad one is the standard 401 envelope. Everything a socket carries is
//! authorised by the database for its principal (see [`session`]).

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::auth::authenticate;
use crate::context::Ctx;
use crate::credential::Credential;
use crate::errors::ApiError;
use crate::idle::Activity;
use crate::listener::Notice;
use crate::response::{db_error_response, envelope_response, error_response, full, Body};
use crate::routes::{self, Target, EVENTS_POLL, PUBLIC_EVENTS, WS_PUBLIC, WS_THREADS};

mod actions;
mod io;
pub mod limits;
pub mod proto;
mod session;
mod threads;

use limits::Slot;

/// Put in every request's extensions by the server: the connection's activity (a socket is a
/// request in flight for as long as it lives, so its connection is never idle or shed) and a
/// hold that keeps the connection's slots until the socket ends.
#[derive(Clone)]
pub struct Hold {
    pub activity: Arc<Activity>,
    pub conn: mpsc::Sender<()>,
}

/// What one socket serves.
#[derive(Clone)]
pub(crate) struct Stream {
    /// The route that opens and re-checks the thread set.
    pub check: &'static str,
    /// The route that polls a thread's events.
    pub poll: &'static str,
    /// The `path` of the check call.
    pub path: Value,
    /// Typing and focus are the user stream's.
    pub user: bool,
}

impl Stream {
    fn of(target: Target, params: &[(&'static str, String)]) -> Stream {
        if target == Target::WsPublic {
            Stream {
                check: WS_PUBLIC,
                poll: PUBLIC_EVENTS,
                path: Value::Object(routes::params_json(params)),
                user: false,
            }
        } else {
            Stream {
                check: WS_THREADS,
                poll: EVENTS_POLL,
                path: json!({}),
                user: true,
            }
        }
    }
}

/// A socket's authorised start: its credential, principal and first thread set.
pub(crate) struct Opened {
    pub cred: Credential,
    pub principal: String,
    pub threads: Vec<threads::Info>,
    pub _user_slot: Slot<String>,
}

/// Why opening failed: the HTTP answer before an upgrade, a close code after it.
pub(crate) struct Refusal {
    pub response: Response<Body>,
    pub close: u16,
}

fn refusal(response: Response<Body>) -> Refusal {
    let close = match response.status().as_u16() {
        401 => proto::close::UNAUTHORIZED,
        403 | 404 => proto::close::FORBIDDEN,
        429 => proto::close::TRY_LATER,
        _ => proto::close::INTERNAL,
    };
    Refusal { response, close }
}

/// The check call for a credential: the thread set, and a per-principal slot.
pub(crate) async fn open_as(
    ctx: &Ctx,
    stream: &Stream,
    cred: Credential,
) -> Result<Opened, Refusal> {
    let app = &ctx.app;
    let args = json!({"path": stream.path, "query": {}, "body": null});
    let r = app
        .db
        .request(
            stream.check,
            cred.kind(),
            cred.raw(),
            cred.claims(),
            ctx.ip,
            &args,
        )
        .await;
    let env = match r {
        Ok((env, d)) => {
            app.metrics.db_latency(d);
            env
        }
        Err(e) => return Err(refusal(db_error_response(&app.metrics, &e, &ctx.rid))),
    };
    ctx.record_auth(&cred, env.status);
    ctx.set_principal(env.principal.as_deref());
    if env.status != 200 {
        return Err(refusal(envelope_response(&app.metrics, env, &ctx.rid)));
    }
    let principal = env.principal.clone().unwrap_or_default();
    let Some(user_slot) = app.ws.per_user.take(principal.clone()) else {
        app.metrics.ws_closed("user_limit");
        return Err(refusal(error_response(
            &ApiError::status(429, "too many WebSocket streams for this principal"),
            &ctx.rid,
        )));
    };
    Ok(Opened {
        cred,
        principal,
        threads: threads::Info::parse(env.body.get()),
        _user_slot: user_slot,
    })
}

/// A header map carrying `token` as the bearer credential (the one verification path).
pub(crate) fn bearer(token: &str) -> Result<HeaderMap, ()> {
    let mut h = HeaderMap::new();
    let v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ())?;
    h.insert(http::header::AUTHORIZATION, v);
    Ok(h)
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(UPGRADE, "websocket") && has(CONNECTION, "upgrade")
}

/// The request's one `Sec-WebSocket-Key`, if it is the base64 of 16 bytes (RFC 6455 4.2.1).
fn websocket_key(headers: &HeaderMap) -> Option<Vec<u8>> {
    let mut keys = headers.get_all("sec-websocket-key").iter();
    let key = keys.next()?.as_bytes();
    if keys.next().is_some() || key.len() != 24 || !key.ends_with(b"==") {
        return None;
    }
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    // the last character before the padding carries 2 bits and 4 zero bits
    let canonical = matches!(key[21], b'A' | b'Q' | b'g' | b'w');
    (key[..22].iter().all(b64) && canonical).then(|| key.to_vec())
}

/// Whether the request announces a body (a chunked one, or a length other than 0).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0")
}

/// Answers a WebSocket route: refusals as ordinary JSON errors, else `101 Switching Protocols`
/// and the socket's task.
pub async fn open<B>(
    ctx: &Ctx,
    mut req: Request<B>,
    target: Target,
    params: &[(&'static str, String)],
) -> Response<Body> {
    let app = ctx.app.clone();
    let headers = req.headers();
    if req.version() != Version::HTTP_11 || !is_upgrade(headers) {
        return error_response(
            &ApiError::bad_request("a WebSocket upgrade over HTTP/1.1 is expected"),
            &ctx.rid,
        );
    }
    if headers
        .get("sec-websocket-version")
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut r = error_response(
            &ApiError::status(426, "WebSocket version 13 is expected"),
            &ctx.rid,
        );
        r.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return r;
    }
    let Some(key) = websocket_key(headers) else {
        return error_response(
            &ApiError::bad_request("one valid Sec-WebSocket-Key is expected"),
            &ctx.rid,
        );
    };
    if has_body(headers) {
        // a handshake carries no body: bytes after the head are the socket's, never a body's
        return error_response(
            &ApiError::bad_request("a WebSocket upgrade has no body"),
            &ctx.rid,
        );
    }
    let protocols = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let Some((offered, sub_token)) = proto::subprotocols(protocols) else {
        return error_response(&ApiError::unauthorized(), &ctx.rid);
    };
    if sub_token.is_some() && !offered {
        return error_response(
            &ApiError::bad_request("a bearer subprotocol needs ama.v1 offered too"),
            &ctx.rid,
        );
    }
    let query = routes::parse_query(req.uri().query());
    let query_token = query
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_string);
    let in_header = headers.contains_key(http::header::AUTHORIZATION)
        || headers.contains_key(crate::credential::X_INTERNAL_API_KEY);
    let given = [in_header, sub_token.is_some(), query_token.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return error_response(
            &ApiError::bad_request("give the credential once: header, subprotocol or token"),
            &ctx.rid,
        );
    }
    let Some(ip_slot) = app.ws.admit_ip(ctx.ip) else {
        app.metrics.ws_closed("ip_limit");
        return error_response(
            &ApiError::status(429, "too many WebSocket streams from this address"),
            &ctx.rid,
        );
    };
    let stream = Stream::of(target, params);
    // subscribe before the thread set is read, so nothing falls between the two
    let notices = app.notices.subscribe();
    let presented = match (in_header, sub_token.or(query_token.as_deref())) {
        (true, _) => Some(authenticate(ctx, req.headers()).await),
        (false, Some(t)) => Some(match bearer(t) {
            Ok(h) => authenticate(ctx, &h).await,
            Err(()) => Err(error_response(&ApiError::unauthorized(), &ctx.rid)),
        }),
        (false, None) => None,
    };
    let opened = match presented {
        None => None,
        Some(Err(resp)) => return resp,
        Some(Ok(Credential::None)) => return error_response(&ApiError::unauthorized(), &ctx.rid),
        Some(Ok(cred)) => match open_as(ctx, &stream, cred).await {
            Ok(o) => Some(o),
            Err(r) => return r.response,
        },
    };
    let hold = req.extensions().get::<Hold>().cloned();
    let busy = hold.as_ref().map(|h| h.activity.begin());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(&key)) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    if offered {
        // never the bearer entry: the token is not echoed
        h.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(proto::SUBPROTOCOL),
        );
    }
    let span = ctx.span.clone();
    let (rid, ip) = (ctx.rid.clone(), ctx.ip);
    tokio::spawn(
        async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            let cfg = &app.cfg;
            // small buffers: an idle socket should cost little (tungstenite's defaults are
            // 128 KiB each); every frame is flushed by the writer anyway
            let config = WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(0)
                .max_message_size(Some(cfg.ws_max_message_bytes))
                .max_frame_size(Some(cfg.ws_max_message_bytes))
                .max_write_buffer_size(1 << 20);
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            let socket = session::Socket {
                app,
                rid,
                ip,
                stream,
                notices,
            };
            socket.run(ws, opened).await;
            drop((ip_slot, busy, hold));
        }
        .instrument(span),
    );
    resp
}

/// The broadcast of notices a socket listens to.
pub(crate) type Notices = broadcast::Receiver<Notice>;

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn only_one_canonical_16_byte_key_is_taken() {
        let k = "dGhlIHNhbXBsZSBub25jZQ==";
        assert!(websocket_key(&h(&[("sec-websocket-key", k)])).is_some());
        for bad in [
            "",
            "x",
            "dGhlIHNhbXBsZSBub25jZR==",
            "dGhlIHNhbXBsZSBub25jZQ=!",
        ] {
            assert!(
                websocket_key(&h(&[("sec-websocket-key", bad)])).is_none(),
                "{bad}"
            );
        }
        assert!(websocket_key(&h(&[("sec-websocket-key", k), ("sec-websocket-key", k)])).is_none());
        assert!(websocket_key(&h(&[])).is_none());
    }

    #[test]
    fn a_body_is_announced_by_length_or_chunking() {
        assert!(!has_body(&h(&[])));
        assert!(!has_body(&h(&[("content-length", "0")])));
        assert!(has_body(&h(&[("content-length", "5")])));
        assert!(has_body(&h(&[("transfer-encoding", "chunked")])));
    }
}
