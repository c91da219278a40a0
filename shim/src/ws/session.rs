//! One socket's life: authentication (if it came as a first message), the thread set and its
//! shared polls, typing, focus, pings, re-checks, and the close.
//!
//! Delivery rules: messages come from the shared per-(thread, principal) `events.poll`
//! (`public.events` for a visitor) with each thread's `thread_seq` sequence kept gap-free (a page
//! that does not follow on is replaced by the socket's own poll). The thread set is read again
//! through `ws.threads` (`ws.public`) at least every `--sse-recheck-secs`: a 401 (revoked or
//! expired credential) closes the socket with 4401, a thread that left the set is dropped with a
//! `thread_runtime` `left` event. A JWT socket is closed at the token's `exp`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{broadcast, oneshot};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::io::{close_msg, gone, writer, End, Ws};
use super::limits::{Budgets, Outbox};
use super::proto::{self, close, ClientMsg};
use super::threads::{Polled, Threads};
use super::{Notices, Opened, Stream};
use crate::credential::Credential;
use crate::listener::Notice;
use crate::stream::fanout::Update;
use crate::App;

/// Threads a socket may focus at once.
const MAX_FOCUS: usize = 64;

/// A socket about to run.
pub(crate) struct Socket {
    pub app: Arc<App>,
    pub rid: String,
    pub ip: IpAddr,
    pub stream: Stream,
    pub notices: Notices,
}

impl Socket {
    /// Runs the socket to its end.
    pub async fn run(mut self, ws: Ws, opened: Option<Opened>) {
        let app = self.app.clone();
        app.metrics.ws_opened();
        let (sink, mut source) = ws.split();
        let (out, rx) = Outbox::new(app.cfg.ws_send_queue);
        let (kill, killed) = oneshot::channel();
        let mut writer = tokio::spawn(writer(sink, rx, killed));
        let opened = match opened {
            Some(o) => Ok(o),
            None => self.first_message(&mut source).await,
        };
        let end = match opened {
            Ok(o) => self.live(o, &mut source, &out).await,
            Err(e) => e,
        };
        let End(code, reason) = end;
        app.metrics.ws_closed(reason);
        if reason == "slow consumer" {
            let _ = kill.send(());
        } else {
            let _ = out.frame(close_msg(code, reason));
        }
        drop(out);
        if tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
        app.metrics.ws_socket_ended();
    }

    /// The authenticated socket's loop.
    async fn live(
        &mut self,
        o: Opened,
        source: &mut futures_util::stream::SplitStream<Ws>,
        out: &Outbox,
    ) -> End {
        let app = self.app.clone();
        let cfg = &app.cfg;
        let Opened {
            cred,
            principal,
            threads: infos,
            _user_slot,
        } = o;
        let expires = match &cred {
            Credential::Jwt(v) => {
                let left = v.exp.saturating_sub(crate::jwt::now_secs()).max(0);
                Some(tokio::time::Instant::now() + Duration::from_secs(left as u64))
            }
            _ => None,
        };
        let (mut threads, mut updates) = Threads::new(
            app.clone(),
            cred.clone(),
            principal.clone(),
            self.ip,
            self.stream.poll,
        );
        let joined = match threads.sync(infos, out, false) {
            Ok(j) => j,
            Err(f) => return gone(f),
        };
        if let Some(e) = self.seam(&mut threads, &joined, out).await {
            return e;
        }
        if out.text(proto::ready(&principal, threads.len())).is_err() {
            return End(close::POLICY, "slow consumer");
        }
        let budgets = Budgets::new(cfg.ws_typing_per_sec);
        let mut focus: std::collections::HashSet<String> = Default::default();
        let mut shutdown = app.shutdown.clone();
        let idle = cfg.ws_idle_timeout;
        let mut last_seen = Instant::now();
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + idle / 3, idle / 3);
        let every = cfg.sse_recheck;
        let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // a slow re-check or catch-up delays the next tick instead of firing a burst of them
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let exp = async {
            match expires {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(exp);
        loop {
            let polled = tokio::select! {
                _ = &mut exp => return End(close::UNAUTHORIZED, "token expired"),
                _ = shutdown.changed() => return End(close::GOING_AWAY, "shutting down"),
                f = source.next() => {
                    last_seen = Instant::now();
                    let text = match f {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Binary(_))) => {
                            match self.refuse(&budgets, out, "bad_message", "text frames only") {
                                Ok(()) => continue,
                                Err(e) => return e,
                            }
                        }
                        Some(Ok(Message::Close(_))) | None => return End(1000, "closed by client"),
                        Some(Ok(_)) => continue,
                        Some(Err(WsError::Capacity(_))) => return End(close::TOO_BIG, "message too big"),
                        Some(Err(_)) => return End(close::POLICY, "protocol error"),
                    };
                    let msg = match proto::parse(text.as_str()) {
                        Ok(m) => m,
                        Err(b) => match self.refuse(&budgets, out, b.code, &b.message) {
                            Ok(()) => continue,
                            Err(e) => return e,
                        },
                    };
                    let r = match msg {
                        ClientMsg::Ping { id } => out.text(proto::pong(id.as_deref())).map(|_| Polled::Ok),
                        ClientMsg::Auth { .. } => {
                            match self.refuse(&budgets, out, "bad_message", "already authenticated") {
                                Ok(()) => continue,
                                Err(e) => return e,
                            }
                        }
                        _ if !self.stream.user => {
                            match self.refuse(&budgets, out, "unknown_type", "not on this stream") {
                                Ok(()) => continue,
                                Err(e) => return e,
                            }
                        }
                        ClientMsg::FocusThread { thread_id } => {
                            if !threads.contains(&thread_id) {
                                out.text(proto::error("not_found", "thread not found")).map(|_| Polled::Ok)
                            } else if focus.len() >= MAX_FOCUS && !focus.contains(&thread_id) {
                                out.text(proto::error("bad_message", "too many focused threads")).map(|_| Polled::Ok)
                            } else {
                                focus.insert(thread_id);
                                Ok(Polled::Ok)
                            }
                        }
                        ClientMsg::UnfocusThread { thread_id } => {
                            focus.remove(&thread_id);
                            Ok(Polled::Ok)
                        }
                        ClientMsg::Typing { thread_id, status } => {
                            self.typing(&cred, &threads, &budgets, out, &thread_id, status).await
                        }
                    };
                    match r {
                        Ok(p) => p,
                        Err(f) => return gone(f),
                    }
                }
                u = updates.recv() => match u {
                    Some((id, Update::Page(page))) => threads.page(&id, &page, out).await,
                    Some((id, Update::Recheck)) => threads.catch_up(&id, out).await,
                    None => return End(close::INTERNAL, "internal error"),
                },
                n = self.notices.recv() => {
                    match n {
                        Ok(Notice::Typing { thread, actor, started }) => {
                            let wanted = self.stream.user
                                && threads.contains(&thread)
                                && *actor != *principal
                                && (focus.is_empty() || focus.contains(&*thread));
                            if wanted {
                                if let Err(f) = out.text(proto::thread_typing(&thread, &actor, started)) {
                                    return gone(f);
                                }
                            }
                        }
                        // message notices wake the shared polls; typing lost to lag is only typing
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return End(close::GOING_AWAY, "shutting down"),
                    }
                    Polled::Ok
                }
                _ = recheck.tick() => {
                    match self.recheck(&cred, &mut threads, out).await {
                        Ok(()) => Polled::Ok,
                        Err(e) => return e,
                    }
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() >= idle {
                        return End(close::GOING_AWAY, "idle");
                    }
                    match out.frame(Message::Ping(Default::default())) {
                        Ok(()) => Polled::Ok,
                        Err(f) => return gone(f),
                    }
                }
            };
            if let Some(e) = self.settle(polled, &mut threads, out) {
                return e;
            }
        }
    }

    /// What a poll's outcome means for the socket.
    fn settle(&self, p: Polled, threads: &mut Threads, out: &Outbox) -> Option<End> {
        let _ = (threads, out);
        match p {
            Polled::Ok | Polled::Limited => None,
            // the next re-check drops the thread (and tells the client)
            Polled::Lost if self.stream.user => None,
            Polled::Lost => Some(End(close::FORBIDDEN, "forbidden")),
            Polled::Unauthorized => Some(End(close::UNAUTHORIZED, "unauthorized")),
            Polled::Failed => Some(End(close::INTERNAL, "internal error")),
            Polled::Gone(f) => Some(gone(f)),
        }
    }

    /// Catches up the threads just joined on the message notices queued on the socket's own
    /// subscription (made before the thread set was read): nothing falls between the read and
    /// the shared polls.
    async fn seam(
        &mut self,
        threads: &mut Threads,
        joined: &[Arc<str>],
        out: &Outbox,
    ) -> Option<End> {
        let mut behind: Vec<Arc<str>> = Vec::new();
        loop {
            match self.notices.try_recv() {
                Ok(Notice::Thread(t, seq)) => {
                    if joined.contains(&t)
                        && threads.last(&t).is_none_or(|l| seq > l)
                        && !behind.contains(&t)
                    {
                        behind.push(t);
                    }
                }
                Ok(Notice::All) | Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    behind = joined.to_vec();
                }
                Ok(Notice::Typing { .. }) => {}
                Err(_) => break,
            }
        }
        for t in behind {
            let p = threads.catch_up(&t, out).await;
            if let Some(e) = self.settle(p, threads, out) {
                return Some(e);
            }
        }
        None
    }

    /// Reads the thread set again with the socket's own credential.
    async fn recheck(
        &mut self,
        cred: &Credential,
        threads: &mut Threads,
        out: &Outbox,
    ) -> Result<(), End> {
        let app = &self.app;
        let args = json!({"path": self.stream.path, "query": {}, "body": null});
        let r = app
            .db
            .request(
                self.stream.check,
                cred.kind(),
                cred.raw(),
                cred.claims(),
                self.ip,
                &args,
            )
            .await;
        let env = match r {
            Ok((env, _)) => env,
            Err(_) => return Err(End(close::INTERNAL, "internal error")),
        };
        match env.status {
            200 => {}
            401 => return Err(End(close::UNAUTHORIZED, "unauthorized")),
            403 | 404 => return Err(End(close::FORBIDDEN, "forbidden")),
            429 => return Err(End(close::TRY_LATER, "try again later")),
            _ => return Err(End(close::INTERNAL, "internal error")),
        }
        let infos = super::threads::Info::parse(env.body.get());
        let joined = threads.sync(infos, out, true).map_err(gone)?;
        for id in threads.take_behind() {
            let p = threads.catch_up(&id, out).await;
            if let Some(e) = self.settle(p, threads, out) {
                return Err(e);
            }
        }
        match self.seam(threads, &joined, out).await {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
