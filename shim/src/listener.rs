//! The shared `LISTEN ama_events` connection: one per shim, reconnecting after database
//! restarts, fanning notifications out to the streams through a broadcast channel.

use std::sync::Arc;
use std::time::Duration;

use ama_core::events;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel the database notifies on. Payloads are sealed (`ama_core::events`) under the key
/// `ama.events_key()` returns to the shim's login role, so other listeners learn nothing.
pub const CHANNEL: &str = "ama_events";
/// The statement that subscribes to [`CHANNEL`].
const LISTEN_SQL: &str = "LISTEN ama_events";
/// A wake-up for the streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A new event in this thread.
    Thread(Arc<str>, i64),
    /// Something may have been missed (listener reconnected): everyone re-polls.
    All,
    /// An ephemeral typing notice (WebSocket streams only): who, in which thread, started or
    /// stopped.
    Typing {
        thread: Arc<str>,
        actor: Arc<str>,
        started: bool,
    },
}

/// Opens a sealed notification payload; `None` for anything not sealed under `key`.
pub fn parse_payload(key: &[u8; events::KEY_LEN], p: &str) -> Option<Notice> {
    let p = p.trim();
    if let Some((thread, seq)) = events::open(key, p) {
        let thread = uuid::Uuid::from_bytes(thread).to_string();
        return Some(Notice::Thread(Arc::from(thread), seq));
    }
    // a typing notice issued long ago (or far ahead) is a replayed copy: dropped
    let now_ms = ama_core::time::unix_ms_now();
    let (thread, actor, started) = events::open_typing(key, p, now_ms)?;
    Some(Notice::Typing {
        thread: Arc::from(uuid::Uuid::from_bytes(thread).to_string()),
        actor: Arc::from(actor),
        started,
    })
}

/// The reconnect delay: doubles after each failed attempt up to a cap, and starts again from
/// the first step once a connection has been made, so live delivery resumes within `FIRST` of the
/// database's return however long the outage was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(250);
    pub const MAX: Duration = Duration::from_secs(1);

    /// The delay before the next attempt; the one after it is twice as long (up to [`Self::MAX`]).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    /// A connection succeeded.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

/// Runs the shared listener until shutdown, reconnecting after database restarts. `connected`
/// is 1 while the LISTEN connection is up (`/ready` and `/metrics` report it).
pub async fn run_listener(
    mut cfg: tokio_postgres::Config,
    tx: broadcast::Sender<Notice>,
    mut shutdown: watch::Receiver<bool>,
    connected: Gauge,
) {
    cfg.keepalives_idle(Duration::from_secs(30));
    let mut backoff = Backoff::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let result = listen_once(&cfg, &tx, &mut shutdown, &mut backoff, &connected).await;
        connected.set(0);
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "event listener disconnected; reconnecting");
                // wake every stream: notifications may have been lost
                let _ = tx.send(Notice::All);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Why the listener connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("connect: {0}")]
    Connect(tokio_postgres::Error),
    #[error("events key: {0}")]
    EventsKey(tokio_postgres::Error),
    #[error("events key: not a 32-byte key")]
    BadEventsKey,
    #[error("LISTEN: {0}")]
    Listen(tokio_postgres::Error),
    #[error("listener connection: {0}")]
    Connection(tokio_postgres::Error),
    #[error("listener connection closed")]
    Closed,
    #[error("listener connection check failed")]
    CheckFailed,
}

async fn listen_once(
    cfg: &tokio_postgres::Config,
    tx: &broadcast::Sender<Notice>,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
    connected: &Gauge,
) -> Result<(), ListenError> {
    let (client, mut conn) = cfg.connect(NoTls).await.map_err(ListenError::Connect)?;
    let (ntx, mut nrx) = mpsc::unbounded_channel::<Result<String, ListenError>>();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if ntx.send(Ok(n.payload().to_string())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = ntx.send(Err(ListenError::Connection(e)));
                    return;
                }
                None => {
                    let _ = ntx.send(Err(ListenError::Closed));
                    return;
                }
            }
        }
    });
    let result = async {
        let row = client
            .query_one("SELECT ama.events_key()", &[])
            .await
            .map_err(ListenError::EventsKey)?;
        let key: [u8; events::KEY_LEN] = row
            .try_get::<_, Vec<u8>>(0)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or(ListenError::BadEventsKey)?;
        client.batch_execute(LISTEN_SQL).await.map_err(ListenError::Listen)?;
        tracing::info!("event listener connected");
        backoff.reset();
        connected.set(1);
        let _ = tx.send(Notice::All);
        let mut check = tokio::time::interval(Duration::from_secs(30));
        check.tick().await;
        loop {
            tokio::select! {
                m = nrx.recv() => match m {
                    Some(Ok(payload)) => {
                        if let Some(n) = parse_payload(&key, &payload) {
                            let _ = tx.send(n);
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err(ListenError::Closed),
                },
                _ = check.tick() => {
                    match tokio::time::timeout(Duration::from_secs(5), client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        _ => return Err(ListenError::CheckFailed),
                    }
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
    .await;
    drop(client);
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_after_a_connection() {
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 1000, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Backoff::FIRST);
    }

    #[test]
    fn listens_on_the_channel() {
        assert_eq!(LISTEN_SQL, format!("LISTEN {CHANNEL}"));
    }

    #[test]
    fn payloads() {
        let key = [3u8; events::KEY_LEN];
        let t = uuid::Uuid::parse_str("0D1C6F4E-8a43-4a4e-9a53-0c1f2d3e4f50").unwrap();
        let sealed = events::seal(&key, t.as_bytes(), 42);
        assert_eq!(
            parse_payload(&key, &sealed),
            Some(Notice::Thread(
                Arc::from("0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50"),
                42
            ))
        );
        // Another key, the old clear-text format and garbage are ignored.
        assert_eq!(parse_payload(&[4u8; events::KEY_LEN], &sealed), None);
        assert_eq!(parse_payload(&key, &format!("{t}:42")), None);
        assert_eq!(parse_payload(&key, "x"), None);
        assert_eq!(parse_payload(&key, ":1"), None);
        let now = ama_core::time::unix_ms_now();
        let typing = events::seal_typing(&key, t.as_bytes(), "agent:x-y-z", false, now).unwrap();
        assert_eq!(
            parse_payload(&key, &typing),
            Some(Notice::Typing {
                thread: Arc::from("0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50"),
                actor: Arc::from("agent:x-y-z"),
                started: false,
            })
        );
        assert_eq!(parse_payload(&[4u8; events::KEY_LEN], &typing), None);
        // a copy replayed after its window is dropped
        let old = now - events::TYPING_MAX_AGE_MS - 60_000;
        let replayed = events::seal_typing(&key, t.as_bytes(), "agent:x-y-z", true, old).unwrap();
        assert_eq!(parse_payload(&key, &replayed), None);
    }
}
