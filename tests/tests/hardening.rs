//! Security hardening end to end (issue 10), over TLS against a throwaway cluster: what an
//! attacker holding one role tries, and what a legitimate user keeps while that happens.

use ama_core::token::TokenKind;
use ama_tests::client::Response;
use ama_tests::fixtures::{
    agent_token, create_thread, put_users, unknown_token, AGENT, ALICE, BOB, OWNER, UNSEEN,
};
use ama_tests::stack::Stack;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_postgres::AsyncMessage;

/// Client addresses are taken from X-Forwarded-For, which the shim honours from loopback only.
fn stack() -> Stack {
    Stack::start(&["--trusted-proxies", "127.0.0.1"])
}

async fn call(
    s: &Stack,
    method: &str,
    path: &str,
    ip: &str,
    auth: Option<(&str, &str)>,
    body: Option<&Value>,
) -> Response {
    let mut headers = vec![
        ("x-forwarded-for", ip),
        ("content-type", "application/json"),
    ];
    if let Some(a) = auth {
        headers.push(a);
    }
    let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
    s.client
        .send(method, path, &headers, bytes.as_deref())
        .await
        .expect("request")
}

/// OWNER (starter), ALICE and BOB (basic); OWNER's token for AGENT and the agent's thread with
/// OWNER: (raw token, thread id).
async fn setup(s: &Stack) -> (String, String) {
    put_users(s, &[(OWNER, "starter"), (ALICE, "basic"), (BOB, "basic")]).await;
    let raw = agent_token(s, OWNER, AGENT).await;
    let thread = create_thread(s, &raw, &[OWNER]).await;
    (raw, thread)
}

/// One guesser behind a shared address (a NAT, a proxy) cannot lock its neighbours out: after
/// its failures, every credential that verifies is still served, failures count per credential
/// kind, and only further failing attempts get 429 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_never_locks_valid_credentials_out() {
    let s = stack();
    let (agent, thread) = setup(&s).await;
    let nat = "198.51.100.20";
    let events = format!("/api/v1/chat/threads/{thread}/events");
    // Well-formed but unknown agent tokens: counted by the database ledger.
    let unknown = unknown_token(TokenKind::Agent);
    let bearer = format!("Bearer {unknown}");
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = call(
            &s,
            "GET",
            &events,
            nat,
            Some(("authorization", &bearer)),
            None,
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    let r = call(
        &s,
        "GET",
        &events,
        nat,
        Some(("authorization", &bearer)),
        None,
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["code"], "RATE_LIMITED");
    assert!(r.json()["request_id"].is_string());

    // Garbage (a bad checksum) is counted too, in the shim, without a database round trip.
    let mut garbage = unknown.clone();
    garbage.replace_range(10..11, if &garbage[10..11] == "0" { "1" } else { "0" });
    let gb = format!("Bearer {garbage}");
    let mut last = 0;
    for _ in 0..11 {
        last = call(&s, "GET", &events, nat, Some(("authorization", &gb)), None)
            .await
            .status;
    }
    assert_eq!(last, 429, "malformed tokens reach 429 too");

    // Everyone else behind the same address is served.
    let jwt = format!("Bearer {}", s.jwt(OWNER));
    let r = call(&s, "GET", &events, nat, Some(("authorization", &jwt)), None).await;
    assert_eq!(r.status, 200, "a valid JWT from the NAT: {:?}", r.json());
    let ab = format!("Bearer {agent}");
    let r = call(&s, "GET", &events, nat, Some(("authorization", &ab)), None).await;
    assert_eq!(r.status, 200, "a valid agent token from the NAT");
    let body = json!({"content": "maintenance"});
    let r = call(
        &s,
        "POST",
        &format!("/internal/v1/threads/{thread}/system-messages"),
        nat,
        Some(("x-internal-api-key", s.internal_key.as_str())),
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 200, "a valid internal key from the NAT");
    // A bad JWT from the NAT is its own kind: still the plain 401.
    let r = call(
        &s,
        "GET",
        &events,
        nat,
        Some(("authorization", "Bearer not.a.jwt")),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    // Another address is untouched.
    let r = call(
        &s,
        "GET",
        &events,
        "198.51.100.21",
        Some(("authorization", &bearer)),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
}

/// A plan downgrade takes effect on the very next request: the owner's agent tokens stop, the
/// public page stops taking visitors; the owner can still switch the page off and revoke tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgrade_takes_effect_on_the_next_request() {
    let s = stack();
    let (agent, thread) = setup(&s).await;
    let owner = s.jwt(OWNER);
    let r = s
        .client
        .json(
            "PUT",
            "/api/v1/owner/agent",
            Some(&owner),
            &json!({"custom_slug": "downgrade-bot"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let public = "/api/v1/public/agents/downgrade-bot/messages";
    let first = json!({"email": "v@example.org", "content": "hi"});
    assert_eq!(
        s.client.json("POST", public, None, &first).await.status,
        200
    );
    let events = format!("/api/v1/chat/threads/{thread}/events");
    assert_eq!(s.client.get(&events, Some(&agent)).await.status, 200);

    assert_eq!(s.put_user(OWNER, "basic").await.status, 200);
    let r = s.client.get(&events, Some(&agent)).await;
    assert_eq!(r.status, 403, "the agent acts on its owner's current plan");
    assert_eq!(r.json()["code"], "FORBIDDEN");
    assert!(r.json()["message"].as_str().unwrap().contains("starter"));
    let r = s
        .client
        .json(
            "POST",
            public,
            None,
            &json!({"email": "w@example.org", "content": "hi"}),
        )
        .await;
    assert_eq!(r.status, 404, "the public page is closed below starter");
    let r = s
        .client
        .json(
            "PUT",
            "/api/v1/owner/agent",
            Some(&owner),
            &json!({"welcome_message": "still here"}),
        )
        .await;
    assert_eq!(r.status, 403, "nothing but switching off below starter");
    let r = s
        .client
        .json(
            "PUT",
            "/api/v1/owner/agent",
            Some(&owner),
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["is_active"], false);
    let r = s
        .client
        .get("/api/v1/owner/external-agents/tokens", Some(&owner))
        .await;
    let token_id = r.json()["tokens"][0]["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .client
        .send(
            "DELETE",
            &format!("/api/v1/owner/external-agents/tokens/{token_id}"),
            &[("authorization", &format!("Bearer {owner}"))],
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "a basic owner revokes their tokens");
}

/// Any database role may LISTEN: the notification payload reveals no thread id, while the shim
/// (which holds the key) still wakes its streams at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_without_the_key_learn_nothing_and_streams_still_wake() {
    let s = stack();
    let (agent, thread) = setup(&s).await;
    s.cluster
        .psql("postgres", "CREATE ROLE eve LOGIN")
        .expect("role");
    s.cluster.set_password("eve").expect("password");
    let (eve, mut conn) = tokio_postgres::connect(&s.cluster.url("eve"), tokio_postgres::NoTls)
        .await
        .expect("eve connects");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(Ok(m)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    eve.batch_execute("LISTEN ama_events")
        .await
        .expect("LISTEN");
    assert!(
        eve.query_one("SELECT ama.events_key()", &[]).await.is_err(),
        "only the shim's role may read the key"
    );

    // A live stream, then a message: the stream gets it, eve gets an opaque payload.
    let path = format!("/api/v1/chat/threads/{thread}/events/stream");
    let auth = format!("Bearer {agent}");
    let stream = {
        let client = s.client.clone();
        let auth = auth.clone();
        tokio::spawn(async move {
            client
                .sse_until(
                    &path,
                    &[("authorization", auth.as_str())],
                    Duration::from_secs(20),
                    |t| t.contains("live after listen"),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = s
        .client
        .json(
            "POST",
            &format!("/api/v1/chat/threads/{thread}/messages"),
            Some(&s.jwt(OWNER)),
            &json!({"content": "live after listen"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let (status, text) = stream.await.unwrap().expect("stream");
    assert_eq!(status, 200);
    assert!(text.contains("live after listen"), "{text}");

    let payload = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification")
        .expect("payload");
    let bare = thread.replace('-', "");
    assert!(
        !payload.contains(&thread) && !payload.to_ascii_lowercase().contains(&bare),
        "{payload}"
    );
    assert!(!payload.contains(':'), "no <thread>:<seq> shape: {payload}");
    assert_eq!(payload.len(), ama_core::events::PAYLOAD_HEX_LEN);
}

/// Co-participants never read each other's emails, and creating a thread answers the same
/// whether a user id existed before or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_stay_private_and_user_ids_cannot_be_probed() {
    let s = stack();
    put_users(&s, &[(ALICE, "basic"), (BOB, "basic")]).await;
    let alice = s.jwt(ALICE);
    let known = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(&alice),
            &json!({"target_user_ids": [BOB]}),
        )
        .await;
    assert_eq!(known.status, 200, "{:?}", known.json());
    let text = known.json().to_string();
    assert!(!text.contains("@example.com"), "{text}");
    let unseen = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(&alice),
            &json!({"target_user_ids": [UNSEEN]}),
        )
        .await;
    assert_eq!(unseen.status, known.status);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&unseen.json()), keys(&known.json()));
    assert_eq!(
        unseen.json()["participants"].as_array().unwrap().len(),
        known.json()["participants"].as_array().unwrap().len()
    );
}
