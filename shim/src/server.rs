//! The accept loop: connection limit, plain-HTTP detection, TLS, HTTP/1.1 + HTTP/2, signals,
//! graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, watch};

use crate::budget::RouteBudgets;
use crate::config::Config;
use crate::conn_limit::{ConnLimit, ConnSlot};
use crate::conns::{Admission, Conn, Conns};
use crate::db::{Db, DbSetupError, DbTimeouts};
use crate::idle::{idle, Activity, ReceivingBody, TrackedBody};
use crate::jwt::{ClaimRules, JwksSource, Verifier};
use crate::limiter::ShimLimits;
use crate::metrics::Metrics;
use crate::net::{is_tls_handshake, PLAIN_HTTP_RESPONSE};
use crate::tls::TlsState;
use crate::App;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbSetupError),
    #[error("{0}")]
    Jwt(String),
    #[error("{0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

/// Builds the shared state from the configuration (no network I/O).
pub fn build_app(cfg: Config, shutdown: watch::Receiver<bool>) -> Result<Arc<App>, StartError> {
    let db = Db::new(
        secrecy::ExposeSecret::expose_secret(&cfg.database_url),
        cfg.pool_size,
        DbTimeouts {
            pool_wait: cfg.pool_timeout,
            connect: cfg.db_connect_timeout,
            statement: cfg.db_statement_timeout,
            deadline: cfg.db_deadline,
        },
        cfg.db_pooler,
        RouteBudgets::new(
            crate::routes::api_route_names(),
            crate::budget::per_route(cfg.pool_size, cfg.route_pool_share),
        ),
    )?;
    let verifier = Verifier::new(
        ClaimRules {
            audience: cfg.jwt_audience.clone(),
            issuer: cfg.jwt_issuer.clone(),
            max_lifetime_secs: cfg.jwt_max_lifetime_secs,
        },
        cfg.jwt_secret
            .as_ref()
            .map(|s| secrecy::ExposeSecret::expose_secret(s).as_bytes()),
        JwksSource {
            file: cfg.jwks_file.clone(),
            url: cfg.jwks_url.clone(),
        },
        cfg.jwks_cooldown,
        cfg.jwt_cache_size,
    )
    .map_err(StartError::Jwt)?;
    let (notices, _) = broadcast::channel(1024);
    let limits = ShimLimits::new(
        cfg.auth_failure_limit,
        cfg.shim_endpoint_limit,
        cfg.limiter_keys,
    );
    let conn_limit = ConnLimit::new(cfg.max_connections_per_ip);
    let cfg_ws = (cfg.ws_max_per_user, cfg.ws_max_per_ip);
    Ok(Arc::new(App {
        conn_limit,
        cfg,
        db,
        verifier,
        metrics: Metrics::default(),
        limits,
        notices,
        fanout: Default::default(),
        ws: crate::ws::limits::WsLimits::new(cfg_ws.0, cfg_ws.1),
        shutdown,
    }))
}

fn http_builder(cfg: &Config) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes)
        .max_headers(cfg.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(128)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Answers a plain-HTTP client with a short 400 and closes without a reset.
async fn refuse_plain_http(mut tcp: TcpStream) {
    let mut buf = vec![0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.write_all(PLAIN_HTTP_RESPONSE)).await;
    let _ = tcp.shutdown().await;
    // drain what the client still sends so closing does not reset the connection
    let drain = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

struct ConnGuard(Arc<App>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.metrics.connection_closed();
    }
}

/// An accepted connection with its slots.
struct Accepted {
    tcp: TcpStream,
    peer: SocketAddr,
    /// Its slot of `--max-connections`.
    conn: Conn,
    /// Its slot of its address's `--max-connections-per-ip` (none for a trusted proxy).
    _per_ip: Option<ConnSlot>,
}

/// Serves one admitted connection until it ends, idles out, or is shed for a new one.
async fn serve_conn(
    app: Arc<App>,
    tls: Arc<rustls::ServerConfig>,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    accepted: Accepted,
) {
    app.metrics.connection_opened();
    let _guard = ConnGuard(app.clone());
    let (peer, shed) = (accepted.peer, accepted.conn.shed.clone());
    let activity = accepted.conn.activity.clone();
    tokio::select! {
        _ = serve(app, tls, accepted.tcp, peer, builder, watcher, activity) => {}
        // every slot was taken and this was the longest-idle connection: close it
        _ = shed.notified() => tracing::debug!(%peer, "idle connection shed for a new one"),
    }
}

async fn serve(
    app: Arc<App>,
    tls: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    peer: SocketAddr,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    activity: Arc<Activity>,
) {
    let _ = tcp.set_nodelay(true);
    let deadline = app.cfg.header_read_timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return,
        Err(_) => {
            // not one byte in time: closed as idle, like a connection with no first request
            app.metrics.idle_closed();
            return;
        }
    }
    if !is_tls_handshake(&first) {
        tracing::debug!(%peer, "plain HTTP on the TLS port refused");
        refuse_plain_http(tcp).await;
        return;
    }
    let stream = match tokio::time::timeout(
        deadline,
        tokio_rustls::TlsAcceptor::from(tls).accept(tcp),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            app.metrics.idle_closed();
            return;
        }
    };
    let (first_request, idle_timeout) = (app.cfg.header_read_timeout, app.cfg.idle_timeout);
    let metrics_app = app.clone();
    let tracked = activity.clone();
    // an upgraded request (a WebSocket) outlives the HTTP connection's future: its hold keeps
    // this connection (and its slots) open until the socket ends
    let (held, mut released) = tokio::sync::mpsc::channel::<()>(1);
    let hold = crate::ws::Hold {
        activity: activity.clone(),
        conn: held,
    };
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let busy = tracked.begin();
        let mut req = req.map(|b| ReceivingBody::new(b, &tracked));
        req.extensions_mut().insert(hold.clone());
        async move {
            let resp = crate::handler::handle(app, req, peer).await;
            Ok::<_, Infallible>(resp.map(|b| TrackedBody::new(b, busy).boxed()))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    tokio::select! {
        r = watcher.watch(conn) => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        // nothing in flight for too long (or no first request in time): close it
        _ = idle(&activity, first_request, idle_timeout) => {
            metrics_app.metrics.idle_closed();
            tracing::debug!(%peer, "idle connection closed");
        }
    }
    // every hold dropped: no socket of this connection lives on
    let _ = released.recv().await;
}

/// Whether the socket peer is one of the trusted reverse proxies.
fn is_trusted_proxy(app: &App, peer: SocketAddr) -> bool {
    let ip = crate::net::canonical(peer.ip());
    app.cfg.trusted_proxies.iter().any(|n| n.contains(&ip))
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<(), StartError> {
    let tls = Arc::new(
        TlsState::new(cfg.tls_cert.clone(), cfg.tls_key.clone()).map_err(StartError::Tls)?,
    );
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(StartError::LocalAddr)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = build_app(cfg, shutdown_rx.clone())?;
    if !app.verifier.is_configured() {
        tracing::warn!("no JWT secret or JWKS configured: every user JWT will be refused");
    }
    if app.verifier.source().is_configured() {
        match app.verifier.refresh().await {
            Ok(n) => tracing::info!(keys = n, "JWKS loaded"),
            Err(e)
                if app.verifier.source().url.is_some() && app.verifier.source().file.is_none() =>
            {
                tracing::warn!(error = %e, "JWKS not loaded yet; will retry")
            }
            Err(e) => return Err(StartError::Jwt(e)),
        }
    }
    let mut sigterm = signal(SignalKind::terminate()).map_err(StartError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(StartError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(StartError::Signal)?;

    // LISTEN needs a session: behind a transaction pooler it has its own, direct URL
    let listen_config = match &app.cfg.listen_database_url {
        Some(url) => crate::db::pg_config(
            secrecy::ExposeSecret::expose_secret(url),
            app.cfg.db_connect_timeout,
            Duration::ZERO,
        )?,
        None => app.db.pg_config().clone(),
    };
    // the webhook deliverer: a session of its own on the same (direct) URL
    let webhook_http = crate::webhook::client::build(
        app.cfg.webhook_allow_private_networks,
        app.cfg.webhook_ca_file.as_deref(),
    )
    .map_err(StartError::Tls)?;
    if app.cfg.webhook_allow_private_networks {
        tracing::warn!("webhook deliveries may reach private and loopback addresses (--webhook-allow-private-networks): the SSRF guard is off");
    }
    tokio::spawn(crate::webhook::run(
        listen_config.clone(),
        crate::webhook::Settings {
            workers: app.cfg.webhook_workers,
            allow_private_networks: app.cfg.webhook_allow_private_networks,
        },
        webhook_http,
        shutdown_rx.clone(),
    ));
    tokio::spawn(crate::listener::run_listener(
        listen_config,
        app.notices.clone(),
        shutdown_rx.clone(),
        app.metrics.listener_gauge(),
    ));
    if app.verifier.source().is_configured() {
        let app = app.clone();
        let mut stop = shutdown_rx.clone();
        tokio::spawn(async move {
            let every = app.cfg.jwks_refresh;
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = t.tick() => {
                        if let Err(e) = app.verifier.refresh().await {
                            tracing::warn!(error = %e, "scheduled JWKS refresh failed");
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
        });
    }

    let builder = http_builder(&app.cfg);
    let graceful = GracefulShutdown::new();
    let conns = Conns::new(app.cfg.max_connections);
    tracing::info!("listening on https://{local}");
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => { reload(&app, &tls).await; continue; }
        };
        // one address may not take every slot; trusted proxies carry many clients and are exempt
        let slot = if is_trusted_proxy(&app, peer) {
            None
        } else {
            match app.conn_limit.admit(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    app.metrics.connection_refused();
                    tracing::debug!(%peer, "connection refused: too many from this address");
                    drop(tcp);
                    continue;
                }
            }
        };
        // a slot: a free one, or the longest-idle connection's; only when every connection has
        // a request in flight does the new one wait
        let (conn, admission) = tokio::select! {
            x = conns.admit(Duration::from_millis(20)) => x,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        };
        if admission == Admission::Shed {
            app.metrics.connection_shed();
        }
        tokio::spawn(serve_conn(
            app.clone(),
            tls.current(),
            builder.clone(),
            graceful.watcher(),
            Accepted {
                tcp,
                peer,
                conn,
                _per_ip: slot,
            },
        ));
    }
    tracing::info!("shutting down: draining in-flight requests");
    drop(listener);
    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(app.cfg.shutdown_timeout, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("shutdown timeout reached; closing remaining connections"),
    }
    Ok(())
}

async fn reload(app: &App, tls: &TlsState) {
    match tls.reload() {
        Ok(()) => tracing::info!("TLS certificate reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate")
        }
    }
    if app.verifier.source().is_configured() {
        match app.verifier.refresh().await {
            Ok(n) => tracing::info!(keys = n, "JWKS reloaded"),
            Err(e) => tracing::warn!(error = %e, "JWKS reload failed"),
        }
    }
}
