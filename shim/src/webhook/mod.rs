//! The webhook deliverer: one per shim (`--webhook-workers`, 0 turns it off).
//!
//! It holds one database session of its own (the LISTEN URL: behind a transaction pooler it must
//! be direct), listens on `ama_webhooks` (the outbox trigger notifies at commit) and polls every
//! [`POLL_EVERY`] for retries that fell due. It claims at most as many deliveries as it has free
//! workers (`ama.webhook_claim`, `FOR UPDATE SKIP LOCKED`, one in flight per subscription), so
//! several shims share the work and memory stays bounded; each worker POSTs one signed delivery
//! through the guarded client ([`client`]) and reports the outcome (`ama.webhook_report`). A
//! worker that dies or a report that is lost leaves the delivery leased for 30 s, after which any
//! deliverer claims it again: delivery is at least once, and receivers deduplicate on
//! `webhook-id`. Logs name the subscription, the delivery and the status, never a secret,
//! signature or body.

pub mod client;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::listener::Backoff;

/// The channel the outbox trigger notifies on.
pub const CHANNEL: &str = "ama_webhooks";
/// How often the deliverer looks for due retries without a notification.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// The deliverer's settings.
#[derive(Clone)]
pub struct Settings {
    /// Concurrent deliveries (workers).
    pub workers: usize,
    /// Connect to private and loopback addresses too (tests only).
    pub allow_private_networks: bool,
}

/// Why a deliverer session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connect: {0}")]
    Connect(tokio_postgres::Error),
    #[error("LISTEN: {0}")]
    Listen(tokio_postgres::Error),
    #[error("claim: {0}")]
    Claim(tokio_postgres::Error),
    #[error("deliverer connection: {0}")]
    Connection(tokio_postgres::Error),
    #[error("deliverer connection closed")]
    Closed,
}

/// Runs the deliverer until shutdown, reconnecting after database restarts.
pub async fn run(
    mut pg: tokio_postgres::Config,
    settings: Settings,
    http: reqwest::Client,
    mut shutdown: watch::Receiver<bool>,
) {
    if settings.workers == 0 {
        return;
    }
    pg.keepalives_idle(Duration::from_secs(30));
    let workers = Arc::new(Semaphore::new(settings.workers));
    let wake = Arc::new(Notify::new());
    let mut backoff = Backoff::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let ctx = Ctx {
            settings: settings.clone(),
            http: http.clone(),
            workers: workers.clone(),
            wake: wake.clone(),
        };
        match session(&pg, &ctx, &mut shutdown, &mut backoff).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "webhook deliverer disconnected; reconnecting"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

struct Ctx {
    settings: Settings,
    http: reqwest::Client,
    workers: Arc<Semaphore>,
    wake: Arc<Notify>,
}

async fn session(
    pg: &tokio_postgres::Config,
    ctx: &Ctx,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Result<(), SessionError> {
    let (db, mut conn) = pg.connect(NoTls).await.map_err(SessionError::Connect)?;
    let (etx, mut erx) = mpsc::channel::<SessionError>(1);
    let wake = ctx.wake.clone();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = etx.send(SessionError::Connection(e)).await;
                    return;
                }
                None => {
                    let _ = etx.send(SessionError::Closed).await;
                    return;
                }
            }
        }
    });
    let db = Arc::new(db);
    let result = async {
        db.batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(SessionError::Listen)?;
        tracing::info!(
            workers = ctx.settings.workers,
            "webhook deliverer connected"
        );
        backoff.reset();
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let free = ctx.workers.available_permits();
            if free > 0 {
                let jobs = match store::claim(&db, free).await {
                    Ok(jobs) => jobs,
                    // the database refused (no webhook key configured, say): nothing is leased;
                    // try again at the next tick on the same session
                    Err(e) if e.as_db_error().is_some() => {
                        let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                        tracing::warn!(sqlstate = %code, error = %e, "webhook claim refused; retrying");
                        Vec::new()
                    }
                    Err(e) => return Err(SessionError::Claim(e)),
                };
                let full = jobs.len() == free;
                for job in jobs {
                    start(ctx, db.clone(), job).await;
                }
                if full {
                    // there may be more due: claim again as soon as a worker is free
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            tokio::select! {
                _ = ctx.wake.notified() => {}
                _ = tick.tick() => {}
                e = erx.recv() => return Err(e.unwrap_or(SessionError::Closed)),
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
    .await;
    driver.abort();
    result
}

/// Hands one job to a worker (a permit is free: the claim was bounded by them).
async fn start(ctx: &Ctx, db: Arc<tokio_postgres::Client>, job: store::Job) {
    let Ok(permit) = ctx.workers.clone().acquire_owned().await else {
        return;
    };
    let (http, wake) = (ctx.http.clone(), ctx.wake.clone());
    let allow_private = ctx.settings.allow_private_networks;
    tokio::spawn(async move {
        let outcome = client::deliver(&http, &job, allow_private).await;
        if outcome.blocked {
            tracing::warn!(subscription_id = %job.subscription_id, delivery_id = %job.delivery_id,
                attempt = job.attempt, "webhook delivery refused: the callback resolves to no allowed address (SSRF guard)");
        } else {
            tracing::info!(subscription_id = %job.subscription_id, delivery_id = %job.delivery_id,
                attempt = job.attempt, status = outcome.status, ok = outcome.ok, "webhook delivery attempted");
        }
        if let Err(e) = store::report(&db, &job.delivery_id, outcome.status, outcome.ok).await {
            // the lease runs out and another attempt follows: at least once
            tracing::warn!(subscription_id = %job.subscription_id, delivery_id = %job.delivery_id,
                error = %e, "webhook report failed; the delivery will be retried");
        }
        drop(permit);
        wake.notify_one();
    });
}
