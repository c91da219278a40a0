//! The deliverer's two statements: `ama.webhook_claim` and `ama.webhook_report`, executable only
//! by the shim's login role. A claimed delivery arrives signed; the secret never leaves the
//! database.

use tokio_postgres::Client;

/// One claimed delivery, ready to send (no `Debug`: the signature and body stay out of logs).
#[derive(Clone)]
pub struct Job {
    pub delivery_id: String,
    pub subscription_id: String,
    pub callback_url: String,
    pub body: String,
    pub webhook_id: String,
    pub webhook_timestamp: i64,
    pub webhook_signature: String,
    pub attempt: i32,
}

/// Claims up to `limit` due deliveries, at most one per subscription.
pub const CLAIM_SQL: &str =
    "SELECT delivery_id::text, subscription_id::text, callback_url, body, webhook_id, \
     webhook_timestamp, webhook_signature, attempt FROM ama.webhook_claim($1::int4)";
/// Reports one attempt's outcome.
pub const REPORT_SQL: &str = "SELECT ama.webhook_report($1::text::uuid, $2::int4, $3::bool)";

/// Claims up to `limit` deliveries.
pub async fn claim(db: &Client, limit: usize) -> Result<Vec<Job>, tokio_postgres::Error> {
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    let rows = db.query(CLAIM_SQL, &[&limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(Job {
                delivery_id: r.try_get(0)?,
                subscription_id: r.try_get(1)?,
                callback_url: r.try_get(2)?,
                body: r.try_get(3)?,
                webhook_id: r.try_get(4)?,
                webhook_timestamp: r.try_get(5)?,
                webhook_signature: r.try_get(6)?,
                attempt: r.try_get(7)?,
            })
        })
        .collect()
}

/// Reports an attempt; false when the delivery was no longer pending.
pub async fn report(
    db: &Client,
    delivery_id: &str,
    status: u16,
    ok: bool,
) -> Result<bool, tokio_postgres::Error> {
    let status = i32::from(status);
    let row = db
        .query_one(REPORT_SQL, &[&delivery_id, &status, &ok])
        .await?;
    row.try_get(0)
}
