//! Server-Sent Events over `events.poll`: a backlog, then live events woken by the shared
//! listener ([`crate::listener`]). Authorization is re-checked on every poll, at least every
//! `sse_recheck`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc};
use tracing::Instrument;

use crate::context::Ctx;
use crate::credential::Credential;
use crate::db::{DbError, Reply};
use crate::response::{
    db_error_response, envelope_response, server_timing, set_header, set_rate_headers, Body,
    SERVER_TIMING,
};
use crate::routes::EVENTS_POLL;
use crate::App;

pub mod fanout;
pub mod page;
use fanout::{wakes, Key, Update};
pub use page::Page;

/// Events fetched per poll.
pub const PAGE: &str = "200";

pub const HEARTBEAT: &str = ": ping\n\n";

/// The first frame of every stream: how long a client waits before reconnecting (with
/// `Last-Event-ID`) when the stream ends, in milliseconds, so clients back off during an outage.
pub const RETRY_HINT: &str = "retry: 2000\n\n";

/// Where the backlog starts: `Last-Event-ID` (a reconnecting client) wins over `after_seq`
/// (alias `last_thread_seq`). A non-numeric query value is passed on for the database to reject.
pub fn start_after(query: &Map<String, Value>, last_event_id: Option<&str>) -> Option<String> {
    if let Some(id) = last_event_id
        .map(str::trim)
        .filter(|s| s.parse::<u64>().is_ok())
    {
        return Some(id.to_string());
    }
    query
        .get("after_seq")
        .or_else(|| query.get("last_thread_seq"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A response body fed by a channel.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// What a stream request asks for.
pub struct StreamRequest {
    pub thread_id: String,
    pub query: Map<String, Value>,
    pub last_event_id: Option<String>,
}

/// Polls `events.poll` (or `public.events`, for a visitor's WebSocket) for one stream, with its
/// credential.
pub struct Poller {
    app: Arc<App>,
    cred: Credential,
    thread_id: String,
    ip: std::net::IpAddr,
    route: &'static str,
}

impl Poller {
    /// A poller of `route` for one thread, as `cred` from `ip` (the WebSocket streams' pollers).
    pub(crate) fn new(
        app: Arc<App>,
        cred: Credential,
        thread_id: String,
        ip: std::net::IpAddr,
        route: &'static str,
    ) -> Poller {
        Poller {
            app,
            cred,
            thread_id,
            ip,
            route,
        }
    }

    pub(crate) async fn poll(&self, after: Option<String>) -> Result<Reply, DbError> {
        let mut query = Map::new();
        if let Some(a) = after {
            query.insert("after_seq".into(), Value::String(a));
        }
        query.insert("limit".into(), Value::String(PAGE.into()));
        let args = json!({"path": {"thread_id": self.thread_id}, "query": query, "body": null});
        let r = self
            .app
            .db
            .request(
                self.route,
                self.cred.kind(),
                self.cred.raw(),
                self.cred.claims(),
                self.ip,
                &args,
            )
            .await;
        if let Ok((env, d)) = &r {
            self.app.metrics.db_latency(*d);
            if env.status == 429 {
                if let Some(rate) = &env.rate {
                    self.app.metrics.rate_limited(&rate.policy);
                }
            }
        }
        r.map(|(e, _)| e)
    }

    pub(crate) fn jwt_expired(&self) -> bool {
        match &self.cred {
            Credential::Jwt(v) => {
                crate::jwt::now_secs() > v.exp.saturating_add(crate::jwt::LEEWAY_SECS)
            }
            _ => false,
        }
    }
}

/// Sends the events of a page after `last`, returns false when the client is gone.
async fn emit(tx: &mpsc::Sender<Bytes>, page: &Page, last: &mut Option<i64>) -> (bool, bool) {
    for (seq, frame) in &page.events {
        if last.is_some_and(|l| *seq <= l) {
            continue;
        }
        if tx.send(frame.clone()).await.is_err() {
            return (false, page.has_more);
        }
        *last = Some(*seq);
    }
    (true, page.has_more)
}

/// Polls until `has_more` is false. Returns false when the stream must end.
async fn catch_up(
    p: &Poller,
    tx: &mpsc::Sender<Bytes>,
    last: &mut Option<i64>,
    after: Option<String>,
) -> bool {
    let mut after = after;
    loop {
        if p.jwt_expired() {
            return false;
        }
        p.app.metrics.stream_poll("own");
        let env = match p
            .poll(after.take().or_else(|| last.map(|l| l.to_string())))
            .await
        {
            Ok(env) if env.status == 200 => Page::parse(env.body.get()),
            Ok(env) => {
                tracing::info!(status = env.status, "event stream ends: access lost");
                return false;
            }
            Err(e) => {
                tracing::warn!(error = ?e, "event stream ends: database error");
                return false;
            }
        };
        let before = *last;
        let (alive, more) = emit(tx, &env, last).await;
        if !alive {
            return false;
        }
        if !more || *last == before {
            return true;
        }
    }
}

/// Which streams share their polls: those of one thread and one user (any of the user's JWTs), or
/// of one thread and one token (a revoked token's stream must not live on another token's polls);
/// a stream without a principal shares with nobody.
pub(crate) fn group_key(
    thread: &str,
    cred: &Credential,
    principal: Option<&str>,
    rid: &str,
) -> Key {
    use std::hash::{Hash, Hasher};
    let principal = match (principal, cred.raw()) {
        (Some(p), None) => p.to_string(),
        (Some(p), Some(raw)) => {
            let mut h = std::hash::DefaultHasher::new();
            raw.hash(&mut h);
            format!("{p}#{:016x}", h.finish())
        }
        (None, _) => format!("stream:{rid}"),
    };
    Key {
        thread: Arc::from(thread.to_ascii_lowercase()),
        kind: cred.kind(),
        principal,
    }
}

/// Answers `GET .../events/stream`: a normal JSON error when the first poll fails, else the stream.
pub async fn open(
    ctx: &Ctx,
    cred: Credential,
    req: StreamRequest,
    auth: Duration,
) -> Response<Body> {
    let app = ctx.app.clone();
    // subscribe before the backlog query so nothing falls between the two
    let mut notices = app.notices.subscribe();
    let after = start_after(&req.query, req.last_event_id.as_deref());
    let poller = Arc::new(Poller {
        app: app.clone(),
        cred,
        thread_id: req.thread_id.clone(),
        ip: ctx.ip,
        route: EVENTS_POLL,
    });
    let db_start = std::time::Instant::now();
    app.metrics.stream_poll("own");
    let first = poller.poll(after.clone()).await;
    let db = db_start.elapsed();
    let env = match first {
        Err(e) => return db_error_response(&app.metrics, &e, &ctx.rid),
        Ok(env) => env,
    };
    ctx.record_auth(&poller.cred, env.status);
    ctx.set_principal(env.principal.as_deref());
    if env.status != 200 {
        return envelope_response(&app.metrics, env, &ctx.rid);
    }
    let body = Page::parse(env.body.get());
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut resp = Response::new(ChannelBody { rx }.boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    set_header(
        &mut resp,
        SERVER_TIMING,
        &server_timing(auth, db, ctx.start.elapsed()),
    );
    if let Some(rate) = &env.rate {
        set_rate_headers(&mut resp, rate, 200);
    }
    let mut shutdown = app.shutdown.clone();
    let heartbeat_every = app.cfg.sse_heartbeat;
    let recheck_every = app.cfg.sse_recheck;
    let key = group_key(
        &req.thread_id,
        &poller.cred,
        env.principal.as_deref(),
        &ctx.rid,
    );
    tokio::spawn(
        async move {
            let app = poller.app.clone();
            app.metrics.stream_opened();
            let thread = key.thread.clone();
            let mut last: Option<i64> = after.as_deref().and_then(|a| a.parse().ok());
            let hinted = tx
                .send(Bytes::from_static(RETRY_HINT.as_bytes()))
                .await
                .is_ok();
            let (alive, more) = emit(&tx, &body, &mut last).await;
            let mut ok = hinted && alive;
            if ok && more {
                ok = catch_up(&poller, &tx, &mut last, None).await;
            }
            let mut member = app.fanout.join(key, &poller, last, &app.notices);
            // what was committed before the join: this stream's own subscription (made before its
            // first poll) has the notices, and it catches up on its own
            let mut missed = false;
            loop {
                match notices.try_recv() {
                    Ok(n) => missed |= wakes(&n, &thread, last),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => missed = true,
                    Err(_) => break,
                }
            }
            drop(notices);
            if ok && missed {
                ok = catch_up(&poller, &tx, &mut last, None).await;
            }
            let mut heartbeat = tokio::time::interval_at(
                tokio::time::Instant::now() + heartbeat_every,
                heartbeat_every,
            );
            let mut recheck = tokio::time::interval_at(
                tokio::time::Instant::now() + recheck_every,
                recheck_every,
            );
            while ok {
                let mut repoll = false;
                tokio::select! {
                    _ = tx.closed() => break,
                    _ = shutdown.changed() => break,
                    u = member.rx.recv() => match u {
                        // an expired JWT ends its stream before the next event, as its own poll would
                        Ok(Update::Page(_)) if poller.jwt_expired() => break,
                        Ok(Update::Page(body)) if body.fits(last) => {
                            ok = emit(&tx, &body, &mut last).await.0;
                        }
                        // a gap, a failed shared poll, or pages missed: catch up on its own
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => repoll = true,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    // at least this often, the stream's own credential is checked again
                    _ = recheck.tick() => repoll = true,
                    _ = heartbeat.tick() => {
                        if tx.send(Bytes::from_static(HEARTBEAT.as_bytes())).await.is_err() {
                            break;
                        }
                    }
                }
                if repoll {
                    ok = catch_up(&poller, &tx, &mut last, None).await;
                    recheck.reset();
                }
            }
            drop(member);
            app.metrics.stream_closed();
        }
        .instrument(ctx.span.clone()),
    );
    resp
}

#[cfg(test)]
mod tests;
