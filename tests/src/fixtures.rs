//! Shared fixtures of the end-to-end tests: the users and agents they act as, tokens that no
//! database knows, JWT minting, and the common set-up steps (users, agent tokens) done through
//! the API of a running [`Stack`]. Each test binary starts its own cluster, so the ids can be
//! the same in every file.

use crate::cluster::{Cluster, Options};
use crate::stack::Stack;
use ama_core::token::{self, TokenKind};
use serde_json::{json, Value};

/// A user on the starter plan in most tests: owns agents, tokens and the agent profile.
pub const OWNER: &str = "cccccccc-0000-4000-8000-000000000001";
/// A second starter user (a second owner).
pub const OWNER2: &str = "cccccccc-0000-4000-8000-000000000002";
pub const ALICE: &str = "cccccccc-0000-4000-8000-000000000003";
pub const BOB: &str = "cccccccc-0000-4000-8000-000000000004";
/// A user who is never a participant of the threads under test.
pub const MALLORY: &str = "cccccccc-0000-4000-8000-000000000005";
/// A user on the basic plan (no agents, no profile).
pub const BASIC: &str = "cccccccc-0000-4000-8000-000000000006";
/// A user whose requests hit the per-credential rate limits.
pub const RATER: &str = "cccccccc-0000-4000-8000-000000000007";
/// A user whose plan is changed until the internal limit answers 429.
pub const PLANNER: &str = "cccccccc-0000-4000-8000-000000000008";
/// A well-formed id that names nothing.
pub const NOBODY: &str = "cccccccc-0000-4000-8000-0000000000ff";
/// A well-formed user id that no request has named before it is used.
pub const UNSEEN: &str = "cccccccc-0000-4000-8000-0000000000fe";

/// External agents' actor ids.
pub const AGENT: &str = "agent:dddddddd-0000-4000-8000-000000000001";
pub const AGENT2: &str = "agent:dddddddd-0000-4000-8000-000000000002";

/// The owner API's token collection.
pub const TOKENS_PATH: &str = "/api/v1/owner/external-agents/tokens";

/// Starts a throwaway cluster; a failure panics with the harness's message.
pub fn start_cluster(opts: Options) -> Cluster {
    Cluster::start(opts).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts a throwaway cluster with these `postgresql.conf` settings.
pub fn cluster_with(settings: &[(&str, &str)]) -> Cluster {
    start_cluster(Options {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Options::default()
    })
}

/// A well-formed token of `kind` (right length and checksum) that no database knows: the shim
/// passes it on, and only the database can refuse it.
pub fn unknown_token(kind: TokenKind) -> String {
    token::compose(kind, &"ab".repeat(32))
}

/// An HS256 JWT with exactly these claims.
pub fn jwt_with(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("HS256 key"),
    )
    .expect("HS256 signing")
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    crate::dev::now().max(0) as u64
}

/// RFC 3339 UTC for seconds since the epoch.
pub fn iso(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil-from-days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Creates or updates each user through the internal endpoint; every answer must be 200.
pub async fn put_users(s: &Stack, users: &[(&str, &str)]) {
    for (user, plan) in users {
        let r = s.put_user(user, plan).await;
        assert_eq!(r.status, 200, "PUT user {user} ({plan}): {:?}", r.json());
    }
}

/// `owner` creates an agent token with this request body; the answer must be 201. Returns the
/// answer's JSON (`token_id`, `raw_token`, ...).
pub async fn create_agent_token(s: &Stack, owner: &str, body: &Value) -> Value {
    let r = s
        .client
        .json("POST", TOKENS_PATH, Some(&s.jwt(owner)), body)
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    r.json()
}

/// `owner` creates a token for `agent`; returns the raw token.
pub async fn agent_token(s: &Stack, owner: &str, agent: &str) -> String {
    let t = create_agent_token(s, owner, &json!({"agent_actor_id": agent})).await;
    t["raw_token"].as_str().expect("raw_token").to_string()
}

/// Creates a thread as `bearer` with these users; the answer must be 200. Returns its id.
pub async fn create_thread(s: &Stack, bearer: &str, users: &[&str]) -> String {
    let r = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(bearer),
            &json!({ "target_user_ids": users }),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()["thread_id"]
        .as_str()
        .expect("thread_id")
        .to_string()
}

/// Posts a user message with this content to a thread as `bearer`; the answer must be 200.
pub async fn post_message(s: &Stack, bearer: &str, tid: &str, content: &str) {
    let r = s
        .client
        .json(
            "POST",
            &format!("/api/v1/chat/threads/{tid}/messages"),
            Some(bearer),
            &json!({ "content": content }),
        )
        .await;
    assert_eq!(r.status, 200, "post a message: {:?}", r.json());
}

/// Fills each `{param}` of a route pattern with the next of `values`, in order.
pub fn fill(pattern: &str, values: &[&str]) -> String {
    let mut values = values.iter();
    let filled: Vec<&str> = pattern
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                values
                    .next()
                    .unwrap_or_else(|| panic!("{pattern}: too few values"))
            } else {
                s
            }
        })
        .collect();
    assert!(values.next().is_none(), "{pattern}: too many values");
    filled.join("/")
}

/// Repeats `GET path` every 200 ms, up to 10 s, until it answers `status`; whether it did.
pub async fn eventually_status(
    client: &crate::client::Client,
    path: &str,
    bearer: Option<&str>,
    status: u16,
) -> bool {
    for _ in 0..50 {
        if client.get(path, bearer).await.status == status {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

/// Opens an event stream as `jwt` in the background and reads it until `until` is in the text
/// (10 s at most); gives the stream 700 ms to start before returning. Await the handle for
/// `(status, text)`.
pub async fn watch_stream(
    client: &crate::client::Client,
    path: String,
    jwt: &str,
    until: &'static str,
) -> tokio::task::JoinHandle<std::io::Result<(u16, String)>> {
    let client = client.clone();
    let bearer = format!("Bearer {jwt}");
    let handle = tokio::spawn(async move {
        client
            .sse_until(
                &path,
                &[("authorization", bearer.as_str())],
                std::time::Duration::from_secs(10),
                |t| t.contains(until),
            )
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_formats_utc() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn fill_replaces_params_in_order() {
        assert_eq!(fill("/a/{x}/b/{y}", &["1", "2"]), "/a/1/b/2");
        assert_eq!(fill("/health", &[]), "/health");
    }
}
