//! Coalesced live polls: the streams of one (thread, principal) share one `events.poll` per
//! notification, fanned out to each of them, instead of one poll per stream. A stream still polls
//! on its own to catch up (its backlog, a gap it notices in a shared page, a shared poll that
//! failed) and at least every `--sse-recheck-secs`, which re-checks its own credential's access.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::broadcast;

use super::{Page, Poller};
use crate::listener::Notice;

/// Which streams may share a poll: the same thread, read as the same principal (the poll's
/// answer depends on nothing else; a credential's own access is re-checked by its stream).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub thread: Arc<str>,
    pub kind: &'static str,
    pub principal: String,
}

/// What a shared poll sends to the streams of its group.
#[derive(Debug, Clone)]
pub enum Update {
    /// A page of `events.poll`, framed once for every stream.
    Page(Arc<Page>),
    /// The shared poll failed or was refused: every stream re-polls on its own.
    Recheck,
}

/// The groups of streams, by key.
#[derive(Default)]
pub struct Fanout {
    groups: Mutex<HashMap<Key, Arc<Group>>>,
}

struct Group {
    tx: broadcast::Sender<Update>,
    state: Mutex<State>,
}

struct State {
    /// The last event the group's polls have sent.
    last: Option<i64>,
    /// The members' pollers; the newest live one polls for the group.
    pollers: Vec<Weak<Poller>>,
}

/// A stream's place in its group: shared pages arrive on `rx`.
pub struct Member {
    pub rx: broadcast::Receiver<Update>,
}

/// How often a group with no members left notices and ends.
const SWEEP: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Fanout {
    /// Joins the group of `key` (creating it, and its polling task subscribed to `notices`, if
    /// needed). `last` is the last event this stream has sent. What was committed before the
    /// join is the stream's to catch up with: its own subscription, made before its backlog
    /// poll, holds those notices.
    pub fn join(
        self: &Arc<Self>,
        key: Key,
        poller: &Arc<Poller>,
        last: Option<i64>,
        notices: &broadcast::Sender<Notice>,
    ) -> Member {
        let mut groups = lock(&self.groups);
        if let Some(g) = groups.get(&key) {
            let mut st = lock(&g.state);
            st.pollers.retain(|p| p.strong_count() > 0);
            st.pollers.push(Arc::downgrade(poller));
            st.last = st.last.max(last);
            return Member {
                rx: g.tx.subscribe(),
            };
        }
        let (tx, rx) = broadcast::channel(64);
        let group = Arc::new(Group {
            tx,
            state: Mutex::new(State {
                last,
                pollers: vec![Arc::downgrade(poller)],
            }),
        });
        groups.insert(key.clone(), group.clone());
        tokio::spawn(run_group(self.clone(), key, group, notices.subscribe()));
        Member { rx }
    }

    /// Groups with a polling task now.
    pub fn groups(&self) -> usize {
        lock(&self.groups).len()
    }

    /// Ends `key`'s group if it has no member left (under the map's lock, so no stream joins
    /// a group that is ending). Returns whether it ended.
    fn end_if_empty(&self, key: &Key, group: &Group) -> bool {
        let mut groups = lock(&self.groups);
        if group.tx.receiver_count() > 0 {
            return false;
        }
        groups.remove(key);
        true
    }
}

impl Group {
    /// The newest member's poller whose credential is still usable.
    fn poller(&self) -> Option<Arc<Poller>> {
        let st = lock(&self.state);
        st.pollers
            .iter()
            .rev()
            .filter_map(Weak::upgrade)
            .find(|p| !p.jwt_expired())
    }
}

/// Whether a notice means a poll after `last` would find something new.
pub fn wakes(notice: &Notice, thread: &str, last: Option<i64>) -> bool {
    match notice {
        Notice::Thread(t, seq) => **t == *thread && last.is_none_or(|l| *seq > l),
        Notice::All => true,
        Notice::Typing { .. } => false,
    }
}

/// The group's task: one poll per notification (and per queued burst of them), sent to every
/// member; ends when the last member has gone.
async fn run_group(
    fanout: Arc<Fanout>,
    key: Key,
    group: Arc<Group>,
    mut notices: broadcast::Receiver<Notice>,
) {
    let mut sweep = tokio::time::interval_at(tokio::time::Instant::now() + SWEEP, SWEEP);
    loop {
        let poll = tokio::select! {
            n = notices.recv() => match n {
                Ok(n) => wakes(&n, &key.thread, lock(&group.state).last),
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = sweep.tick() => {
                if fanout.end_if_empty(&key, &group) {
                    return;
                }
                false
            }
        };
        if !poll {
            continue;
        }
        // notifications already queued are answered by this same poll
        while notices.try_recv().is_ok() {}
        poll_for_group(&group).await;
        if fanout.end_if_empty(&key, &group) {
            return;
        }
    }
    fanout.end_if_empty(&key, &group);
}

/// Polls after the group's last event until there is no more, sending each page.
async fn poll_for_group(group: &Group) {
    loop {
        let Some(poller) = group.poller() else {
            let _ = group.tx.send(Update::Recheck);
            return;
        };
        let after = lock(&group.state).last;
        poller.app.metrics.stream_poll("shared");
        let env = match poller.poll(after.map(|l| l.to_string())).await {
            Ok(env) if env.status == 200 => env,
            // refused (this credential's access, a limit) or failed: each stream finds out
            // for itself with its own credential
            _ => {
                let _ = group.tx.send(Update::Recheck);
                return;
            }
        };
        let body = Arc::new(Page::parse(env.body.get()));
        let more = body.has_more;
        let top = body.events.iter().map(|(s, _)| *s).max();
        if let Some(top) = top {
            let mut st = lock(&group.state);
            st.last = st.last.max(Some(top));
        }
        let _ = group.tx.send(Update::Page(body.clone()));
        if !more || top.is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_that_wake_a_group() {
        let t: Arc<str> = Arc::from("t1");
        assert!(wakes(&Notice::Thread(t.clone(), 3), "t1", Some(2)));
        assert!(!wakes(&Notice::Thread(t.clone(), 2), "t1", Some(2)));
        assert!(!wakes(&Notice::Thread(t, 9), "t2", None));
        assert!(wakes(&Notice::All, "t2", Some(100)));
    }
}
