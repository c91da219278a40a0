//! The database side: one pooled, prepared `ama.request_json(...)` call per API request.

mod reply;
pub use reply::{JsonText, Reply};

mod cancel;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use serde_json::Value;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

use crate::budget::RouteBudgets;
use crate::config::DbPooler;

use crate::metrics::PoolGauges;

/// The single statement of every API request. It answers the envelope as `json` text, so the
/// body the route shaped reaches the client without being parsed on either side.
pub const REQUEST_SQL: &str =
    "SELECT ama.request_json($1::text, $2::text, $3::text, $4::jsonb, $5::inet, $6::jsonb)";

pub use ama_core::envelope::Rate;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// Pool timeout, connection refused or broken, client-side timeout.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// An error raised by the database, with its SQLSTATE.
    #[error("database error {code}: {message}")]
    Sql { code: String, message: String },
    /// The function answered something that is not an envelope.
    #[error("bad answer from ama.request_json: {0}")]
    Protocol(String),
}

/// Why the pool could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("invalid database_url (cannot parse the connection string)")]
    BadUrl,
    #[error("cannot build the database pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
}

pub struct Db {
    pool: Pool,
    pg_config: tokio_postgres::Config,
    deadline: Duration,
    pooler: DbPooler,
    budgets: RouteBudgets,
}

/// How long each step with the database may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbTimeouts {
    /// Longest wait for a free pooled connection.
    pub pool_wait: Duration,
    /// Longest TCP + startup of a new connection.
    pub connect: Duration,
    /// `statement_timeout` sent at connect (zero: none sent, e.g. behind some poolers).
    pub statement: Duration,
    /// The whole of one request's database work (pool wait and call): past it the request gets
    /// 503 with `Retry-After`, the statement is cancelled and its connection dropped, so a frozen
    /// database never holds a client longer than this.
    pub deadline: Duration,
}

/// Builds the connection configuration from the authenticator's connection string.
pub fn pg_config(
    url: &str,
    connect_timeout: Duration,
    statement_timeout: Duration,
) -> Result<tokio_postgres::Config, DbSetupError> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|_| DbSetupError::BadUrl)?;
    cfg.connect_timeout(connect_timeout);
    if cfg.get_application_name().is_none() {
        cfg.application_name("ama-shim");
    }
    if !statement_timeout.is_zero() {
        let existing = cfg.get_options().unwrap_or("").to_string();
        cfg.options(
            format!(
                "{existing} -c statement_timeout={}",
                statement_timeout.as_millis()
            )
            .trim(),
        );
    }
    Ok(cfg)
}

impl Db {
    pub fn new(
        url: &str,
        pool_size: usize,
        t: DbTimeouts,
        pooler: DbPooler,
        budgets: RouteBudgets,
    ) -> Result<Db, DbSetupError> {
        // a transaction pooler refuses startup options: statement_timeout goes on the role
        let statement = match pooler {
            DbPooler::None => t.statement,
            DbPooler::Transaction => Duration::ZERO,
        };
        let cfg = pg_config(url, t.connect, statement)?;
        let mgr = Manager::from_config(
            cfg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(pool_size)
            .wait_timeout(Some(t.pool_wait.min(t.deadline)))
            .create_timeout(Some(t.connect.min(t.deadline)))
            .recycle_timeout(Some(t.connect.min(t.deadline)))
            .runtime(Runtime::Tokio1)
            .build()?;
        Ok(Db {
            pool,
            pg_config: cfg,
            deadline: t.deadline,
            pooler,
            budgets,
        })
    }

    /// The per-route budgets (for metrics and tests).
    pub fn budgets(&self) -> &RouteBudgets {
        &self.budgets
    }

    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.pg_config
    }

    pub fn gauges(&self) -> PoolGauges {
        let s = self.pool.status();
        PoolGauges {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }

    async fn client(&self) -> Result<Object, DbError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => {
                DbError::Unavailable("timed out waiting for a database connection".into())
            }
            PoolError::Backend(e) => {
                DbError::Unavailable(format!("cannot connect to the database: {e}"))
            }
            other => DbError::Unavailable(format!("database pool: {other}")),
        })
    }

    /// Calls `ama.request_json`. Returns its answer and the time spent on the call.
    pub async fn request(
        &self,
        route: &str,
        kind: &str,
        credential: Option<&str>,
        claims: Option<&Value>,
        ip: IpAddr,
        args: &Value,
    ) -> Result<(Reply, Duration), DbError> {
        let start = Instant::now();
        let deadline = tokio::time::Instant::from_std(start + self.deadline);
        // the route's own share of the pool first, so one slow route cannot hold all of it
        let _budget = match tokio::time::timeout_at(deadline, self.budgets.enter(route)).await {
            Ok(permit) => permit,
            Err(_) => {
                return Err(DbError::Unavailable(format!(
                    "request deadline reached waiting for route {route}'s share of the pool"
                )))
            }
        };
        let client = match tokio::time::timeout_at(deadline, self.client()).await {
            Ok(c) => c?,
            Err(_) => {
                return Err(DbError::Unavailable(
                    "request deadline reached waiting for a database connection".into(),
                ))
            }
        };
        let call = async {
            match self.pooler {
                DbPooler::None => {
                    let stmt = client.prepare_cached(REQUEST_SQL).await?;
                    client
                        .query_opt(&stmt, &[&route, &kind, &credential, &claims, &ip, args])
                        .await
                }
                // one unnamed statement with its types: no server-side prepared statement
                // outlives the transaction, so any pooled server connection can run it
                DbPooler::Transaction => client
                    .query_typed(
                        REQUEST_SQL,
                        &[
                            (&route, Type::TEXT),
                            (&kind, Type::TEXT),
                            (&credential, Type::TEXT),
                            (&claims, Type::JSONB),
                            (&ip, Type::INET),
                            (args, Type::JSONB),
                        ],
                    )
                    .await
                    .map(|rows| rows.into_iter().next()),
            }
        };
        let result = tokio::time::timeout_at(deadline, call).await;
        let elapsed = start.elapsed();
        match result {
            Err(_) => {
                // the connection is mid-statement: cancel the statement (bounded: a frozen server
                // may not answer that either) and never give the connection back to the pool
                let token = client.cancel_token();
                let conn = Object::take(client);
                let (config, pooled) =
                    (self.pg_config.clone(), self.pooler == DbPooler::Transaction);
                tokio::spawn(async move {
                    cancel::cancel(token, &config, pooled).await;
                    // closed only once the cancel is delivered: behind a transaction pooler the
                    // cancel reaches the server connection through this client connection, and
                    // a pooler drops a server connection whose client left mid-query without
                    // stopping its statement
                    drop(conn);
                });
                Err(DbError::Unavailable(
                    "request deadline reached in the database".into(),
                ))
            }
            Ok(Err(e)) => {
                if let Some(db) = e.as_db_error() {
                    return Err(DbError::Sql {
                        code: db.code().code().to_string(),
                        message: db.message().to_string(),
                    });
                }
                drop(Object::take(client));
                Err(DbError::Unavailable(format!(
                    "database connection error: {e}"
                )))
            }
            Ok(Ok(None)) => Err(DbError::Protocol("ama.request_json returned no row".into())),
            Ok(Ok(Some(row))) => {
                let text: Option<JsonText> = row
                    .try_get(0)
                    .map_err(|e| DbError::Protocol(format!("bad column: {e}")))?;
                let reply = text.and_then(|t| Reply::parse(t.0)).ok_or_else(|| {
                    DbError::Protocol("ama.request_json returned no valid envelope".into())
                })?;
                Ok((reply, elapsed))
            }
        }
    }

    /// Readiness: a pooled connection answers `SELECT 1` quickly.
    pub async fn ready(&self, within: Duration) -> bool {
        let check = async {
            let client = self.client().await.ok()?;
            client.simple_query("SELECT 1").await.ok()
        };
        matches!(tokio::time::timeout(within, check).await, Ok(Some(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_config() {
        let c = pg_config(
            "postgres://auth:pw@127.0.0.1:5432/ama",
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
        .expect("cfg");
        assert_eq!(c.get_options(), Some("-c statement_timeout=5000"));
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(2)));
        let c = pg_config(
            "host=/tmp user=auth",
            Duration::from_secs(2),
            Duration::ZERO,
        )
        .expect("cfg");
        assert_eq!(c.get_options(), None);
        assert!(pg_config("postgres://[", Duration::from_secs(1), Duration::ZERO).is_err());
    }
}
