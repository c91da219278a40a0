//! A socket's threads: each one a member of the shared per-(thread, principal) poll
//! ([`crate::stream::fanout`]) with the last `thread_seq` the socket has sent, caught up on its
//! own poll when a shared page does not follow on without a gap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::limits::{Full, Outbox};
use super::proto::{self, Runtime};
use crate::credential::Credential;
use crate::stream::fanout::Update;
use crate::stream::{group_key, Page, Poller};
use crate::App;

/// A thread as the check routes list it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Info {
    pub thread_id: String,
    pub last_seq: i64,
    pub participation_mode: String,
    #[serde(default)]
    pub is_archived: bool,
}

#[derive(Deserialize)]
struct List {
    threads: Vec<Info>,
}

impl Info {
    /// The `threads` of a check route's body; nothing for anything else.
    pub fn parse(body: &str) -> Vec<Info> {
        serde_json::from_str::<List>(body)
            .map(|l| l.threads)
            .unwrap_or_default()
    }

    fn runtime(&self) -> Runtime {
        Runtime {
            participation_mode: self.participation_mode.clone(),
            is_archived: self.is_archived,
        }
    }
}

/// One thread of a socket.
struct Watch {
    poller: Arc<Poller>,
    last: Option<i64>,
    rt: Runtime,
    /// Forwards the group's pages to the socket; aborting it leaves the group.
    forward: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

/// How an own poll ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    Ok,
    /// The thread can no longer be read (403/404): drop it.
    Lost,
    /// The credential was refused (401).
    Unauthorized,
    /// Refused for rate (429): retried at the next re-check.
    Limited,
    /// The database failed.
    Failed,
    /// The client's queue is full or gone.
    Gone(Full),
}

/// A socket's thread set.
pub struct Threads {
    app: Arc<App>,
    cred: Credential,
    principal: String,
    ip: IpAddr,
    route: &'static str,
    map: HashMap<Arc<str>, Watch>,
    /// Threads whose own poll was refused for rate: caught up again at the next re-check.
    behind: std::collections::HashSet<Arc<str>>,
    /// Shared pages of every thread, tagged with it.
    pub tx: mpsc::Sender<(Arc<str>, Update)>,
}

impl Threads {
    pub fn new(
        app: Arc<App>,
        cred: Credential,
        principal: String,
        ip: IpAddr,
        route: &'static str,
    ) -> (Threads, mpsc::Receiver<(Arc<str>, Update)>) {
        let (tx, rx) = mpsc::channel(256);
        let t = Threads {
            app,
            cred,
            principal,
            ip,
            route,
            map: HashMap::new(),
            behind: Default::default(),
            tx,
        };
        (t, rx)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains(&self, thread: &str) -> bool {
        self.map.contains_key(thread)
    }

    pub fn last(&self, thread: &str) -> Option<i64> {
        self.map.get(thread).and_then(|w| w.last)
    }

    /// Replaces the set with `infos` (the database's answer): new threads join (live from their
    /// `last_seq`), missing ones leave, changed modes are reported. Returns the joined threads
    /// (the caller catches them up on the notices it holds) or the queue's failure.
    pub fn sync(
        &mut self,
        infos: Vec<Info>,
        out: &Outbox,
        report: bool,
    ) -> Result<Vec<Arc<str>>, Full> {
        let mut joined = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for info in infos {
            let id: Arc<str> = Arc::from(info.thread_id.to_ascii_lowercase());
            seen.insert(id.clone());
            let rt = info.runtime();
            if let Some(w) = self.map.get_mut(&id) {
                if w.rt != rt {
                    w.rt = rt;
                    out.text(proto::thread_runtime(&id, "changed", Some(&w.rt)))?;
                }
                continue;
            }
            self.join(id.clone(), Some(info.last_seq), rt.clone());
            if report {
                out.text(proto::thread_runtime(&id, "joined", Some(&rt)))?;
            }
            joined.push(id);
        }
        let gone: Vec<Arc<str>> = self
            .map
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for id in gone {
            self.leave(&id, out)?;
        }
        Ok(joined)
    }

    /// The threads left behind by a refused poll (see [`Polled::Limited`]), to catch up now.
    pub fn take_behind(&mut self) -> Vec<Arc<str>> {
        self.behind.drain().collect()
    }

    /// Drops a thread (access lost) and tells the client.
    pub fn leave(&mut self, id: &str, out: &Outbox) -> Result<(), Full> {
        if self.map.remove(id).is_some() {
            out.text(proto::thread_runtime(id, "left", None))?;
        }
        Ok(())
    }

    fn join(&mut self, id: Arc<str>, last: Option<i64>, rt: Runtime) {
        let poller = Arc::new(Poller::new(
            self.app.clone(),
            self.cred.clone(),
            id.to_string(),
            self.ip,
            self.route,
        ));
        let key = group_key(&id, &self.cred, Some(&self.principal), "");
        let mut member = self.app.fanout.join(key, &poller, last, &self.app.notices);
        let tx = self.tx.clone();
        let tid = id.clone();
        let forward = tokio::spawn(async move {
            loop {
                let u = match member.rx.recv().await {
                    Ok(u) => u,
                    Err(broadcast::error::RecvError::Lagged(_)) => Update::Recheck,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send((tid.clone(), u)).await.is_err() {
                    return;
                }
            }
        });
        self.map.insert(
            id,
            Watch {
                poller,
                last,
                rt,
                forward,
            },
        );
    }

    /// A shared page for `id`: sent when it follows on, else the thread catches up on its own.
    pub async fn page(&mut self, id: &str, page: &Page, out: &Outbox) -> Polled {
        let Some(w) = self.map.get_mut(id) else {
            return Polled::Ok;
        };
        if w.poller.jwt_expired() {
            return Polled::Unauthorized;
        }
        if !page.fits(w.last) {
            return self.catch_up(id, out).await;
        }
        match emit(id, page, &mut w.last, out) {
            Ok(()) => Polled::Ok,
            Err(f) => Polled::Gone(f),
        }
    }

    /// Polls `id` on this socket's own credential until it is up to date.
    pub async fn catch_up(&mut self, id: &str, out: &Outbox) -> Polled {
        let Some(w) = self.map.get_mut(id) else {
            return Polled::Ok;
        };
        loop {
            self.app.metrics.stream_poll("own");
            let env = match w.poller.poll(w.last.map(|l| l.to_string())).await {
                Ok(env) => env,
                Err(_) => return Polled::Failed,
            };
            match env.status {
                200 => {}
                401 => return Polled::Unauthorized,
                403 | 404 => return Polled::Lost,
                429 => {
                    if let Some((k, _)) = self.map.get_key_value(id) {
                        self.behind.insert(k.clone());
                    }
                    return Polled::Limited;
                }
                _ => return Polled::Failed,
            }
            let page = Page::parse(env.body.get());
            let before = w.last;
            if let Err(f) = emit(id, &page, &mut w.last, out) {
                return Polled::Gone(f);
            }
            if !page.has_more || w.last == before {
                return Polled::Ok;
            }
        }
    }
}

/// Queues the page's events after `last` as `thread_message` frames.
fn emit(thread: &str, page: &Page, last: &mut Option<i64>, out: &Outbox) -> Result<(), Full> {
    for ((seq, _), raw) in page.events.iter().zip(&page.raw) {
        if last.is_some_and(|l| *seq <= l) {
            continue;
        }
        out.text(proto::thread_message(thread, *seq, raw))?;
        *last = Some(*seq);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_lists_parse() {
        let l = Info::parse(
            r#"{"threads":[{"thread_id":"a","last_seq":3,"participation_mode":"open","is_archived":false}]}"#,
        );
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].last_seq, 3);
        assert!(Info::parse("null").is_empty());
        assert!(Info::parse(r#"{"threads":5}"#).is_empty());
    }

    #[test]
    fn emit_sends_only_what_follows() {
        let (out, mut rx) = Outbox::new(8);
        let page = Page::parse(r#"{"events":[{"thread_seq":2},{"thread_seq":3}]}"#);
        let mut last = Some(2);
        emit("t", &page, &mut last, &out).expect("queued");
        assert_eq!(last, Some(3));
        let m = rx.try_recv().expect("one frame");
        assert!(m.to_text().unwrap().contains(r#""thread_seq":3"#));
        assert!(rx.try_recv().is_err(), "seq 2 was sent before");
    }
}
