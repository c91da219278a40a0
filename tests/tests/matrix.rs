//! The HTTP-level authorization matrix: every thread route × credential kind × capability
//! present or absent × participant or not, over TLS against the real shim and database.

use ama_tests::stack::Stack;
use serde_json::{json, Value};

const OWNER: &str = "cccccccc-0000-4000-8000-000000000001";
const MEMBER: &str = "cccccccc-0000-4000-8000-000000000002";
const OUTSIDER: &str = "cccccccc-0000-4000-8000-000000000003";
const AGENT: &str = "agent:dddddddd-0000-4000-8000-000000000001";
const OTHER_AGENT: &str = "agent:dddddddd-0000-4000-8000-000000000002";

/// Method, path, bearer, body and the expected status.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<Value>, u16);

/// A thread route: method, path suffix, body, the capability it needs, and who may call it.
struct Route {
    name: &'static str,
    method: &'static str,
    suffix: &'static str,
    body: Option<Value>,
    needs: &'static str,
    kinds: &'static [&'static str],
}

fn routes() -> Vec<Route> {
    vec![
        Route {
            name: "threads.get",
            method: "GET",
            suffix: "",
            body: None,
            needs: "read",
            kinds: &["user"],
        },
        Route {
            name: "events.poll",
            method: "GET",
            suffix: "/events",
            body: None,
            needs: "read",
            kinds: &["user", "agent"],
        },
        Route {
            name: "messages.send",
            method: "POST",
            suffix: "/messages",
            body: Some(json!({"content": "m"})),
            needs: "send",
            kinds: &["user"],
        },
        Route {
            name: "messages.agent_send",
            method: "POST",
            suffix: "/agent-messages",
            body: Some(json!({"content": "m"})),
            needs: "send",
            kinds: &["user", "agent"],
        },
        Route {
            name: "threads.set_mode",
            method: "POST",
            suffix: "/mode",
            body: Some(json!({"participation_mode": "open"})),
            needs: "manage",
            kinds: &["user", "agent"],
        },
    ]
}

async fn token_for(s: &Stack, owner: &str, agent: &str) -> String {
    let r = s
        .client
        .json(
            "POST",
            "/api/v1/owner/external-agents/tokens",
            Some(&s.jwt(owner)),
            &json!({"agent_actor_id": agent}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    r.json()["raw_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_thread_route_by_credential_kind_and_capability() {
    // The malformed-token caller is refused by the shim 25 times from one address: raise the
    // shim's own limit on refused credentials (10 a minute) so every cell shows its 401.
    let s = Stack::start(&["--auth-failure-limit", "1000"]);
    for (u, plan) in [
        (OWNER, "starter"),
        (MEMBER, "starter"),
        (OUTSIDER, "starter"),
    ] {
        assert_eq!(s.put_user(u, plan).await.status, 200);
    }
    s.cluster
        .psql(
            "postgres",
            "UPDATE ama.rate_policies SET rate_limit = 1000000",
        )
        .unwrap();
    let agent = token_for(&s, OWNER, AGENT).await;
    let other_agent = token_for(&s, OUTSIDER, OTHER_AGENT).await;
    // The agent creates the thread with the owner and the member; it holds manage as creator.
    let r = s
        .client
        .json(
            "POST",
            "/api/v1/chat/threads",
            Some(&agent),
            &json!({"target_user_ids": [OWNER, MEMBER]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let tid = r.json()["thread_id"].as_str().unwrap().to_string();
    // A visitor token and an internal key: neither may use the chat routes.
    s.cluster
        .psql(
            "postgres",
            &format!("UPDATE ama.users SET plan = 'starter' WHERE user_id = '{OWNER}'"),
        )
        .unwrap();
    let r = s
        .client
        .json(
            "PUT",
            "/api/v1/owner/agent",
            Some(&s.jwt(OWNER)),
            &json!({"custom_slug": "matrix-bot"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = s
        .client
        .json(
            "POST",
            "/api/v1/public/agents/matrix-bot/messages",
            None,
            &json!({"email": "v@x.org", "content": "hi"}),
        )
        .await;
    let visitor = r.json()["visitor_token"].as_str().unwrap().to_string();
    let malformed = format!("ama_eat_{}", "f".repeat(72));

    let cap_sets: [&[&str]; 5] = [
        &["read", "send", "manage"],
        &[],
        &["read"],
        &["send"],
        &["manage"],
    ];
    let mut checked = 0;
    let mut failures = Vec::new();
    for caps in cap_sets {
        // The same capabilities for the member (a user) and the agent.
        let arr = format!(
            "ARRAY[{}]::text[]",
            caps.iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(",")
        );
        s.cluster
            .psql(
                "postgres",
                &format!("UPDATE ama.participants SET capabilities = {arr} WHERE thread_id = '{tid}' AND actor_id IN ('user:{MEMBER}', '{AGENT}')"),
            )
            .unwrap();
        let member_jwt = s.jwt(MEMBER);
        let outsider_jwt = s.jwt(OUTSIDER);
        // (label, bearer, principal kind, participant?)
        let callers: Vec<(&str, Option<&str>, &str, bool)> = vec![
            ("member user", Some(member_jwt.as_str()), "user", true),
            ("participant agent", Some(agent.as_str()), "agent", true),
            ("outsider user", Some(outsider_jwt.as_str()), "user", false),
            ("outsider agent", Some(other_agent.as_str()), "agent", false),
            ("visitor", Some(visitor.as_str()), "visitor", false),
            ("no credential", None, "none", false),
            ("malformed token", Some(malformed.as_str()), "bad", false),
        ];
        for route in routes() {
            for (label, bearer, kind, participant) in &callers {
                let expected = match *kind {
                    "none" | "bad" => 401,
                    k if !route.kinds.contains(&k) => 403,
                    _ if !participant => 404,
                    _ if !caps.contains(&route.needs) => 403,
                    _ => 200,
                };
                let path = format!("/api/v1/chat/threads/{tid}{}", route.suffix);
                let r = match &route.body {
                    Some(b) => s.client.json(route.method, &path, *bearer, b).await,
                    None => s.client.get(&path, *bearer).await,
                };
                checked += 1;
                if r.status != expected {
                    failures.push(format!(
                        "{} as {label} with {caps:?}: got {} want {expected} {:?}",
                        route.name,
                        r.status,
                        r.json()
                    ));
                }
            }
        }
        // Internal keys are for the internal routes only.
        let r = s
            .client
            .send(
                "GET",
                &format!("/api/v1/chat/threads/{tid}/events"),
                &[("x-internal-api-key", s.internal_key.as_str())],
                None,
            )
            .await
            .unwrap();
        checked += 1;
        if r.status != 403 && r.status != 401 {
            failures.push(format!(
                "events.poll with an internal key: got {}",
                r.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 5 * (5 * 7 + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_and_internal_routes_by_credential_kind() {
    let s = Stack::start(&[]);
    for (u, plan) in [(OWNER, "starter"), (MEMBER, "basic")] {
        assert_eq!(s.put_user(u, plan).await.status, 200);
    }
    let agent = token_for(&s, OWNER, AGENT).await;
    let starter = s.jwt(OWNER);
    let basic = s.jwt(MEMBER);
    let internal_user = format!("/internal/v1/users/{OUTSIDER}");
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/api/v1/owner/external-agents/tokens",
            Some(&starter),
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/owner/external-agents/tokens",
            Some(&basic),
            None,
            200,
        ),
        (
            "GET",
            "/api/v1/owner/external-agents/tokens",
            Some(&agent),
            None,
            403,
        ),
        (
            "GET",
            "/api/v1/owner/external-agents/tokens",
            None,
            None,
            401,
        ),
        (
            "POST",
            "/api/v1/owner/external-agents/tokens",
            Some(&basic),
            Some(json!({"agent_actor_id": OTHER_AGENT})),
            403,
        ),
        (
            "POST",
            "/api/v1/owner/external-agents/tokens",
            Some(&agent),
            Some(json!({"agent_actor_id": OTHER_AGENT})),
            403,
        ),
        (
            "POST",
            "/api/v1/owner/external-agents/tokens",
            Some(&starter),
            Some(json!({"agent_actor_id": AGENT})),
            201,
        ),
        ("GET", "/api/v1/owner/agent", Some(&basic), None, 403),
        ("GET", "/api/v1/owner/agent", Some(&agent), None, 403),
        ("GET", "/api/v1/owner/agent", Some(&starter), None, 404),
        (
            "PUT",
            "/api/v1/owner/agent",
            Some(&starter),
            Some(json!({"display_name": "Mine"})),
            200,
        ),
        (
            "PUT",
            "/api/v1/owner/agent",
            Some(&basic),
            Some(json!({"display_name": "Mine"})),
            403,
        ),
        (
            "PUT",
            &internal_user,
            Some(&starter),
            Some(json!({"plan": "starter"})),
            403,
        ),
        (
            "PUT",
            &internal_user,
            None,
            Some(json!({"plan": "starter"})),
            401,
        ),
    ];
    for (method, path, bearer, body, want) in cases {
        let r = match body {
            Some(b) => s.client.json(method, path, bearer, &b).await,
            None => s.client.get(path, bearer).await,
        };
        assert_eq!(
            r.status,
            want,
            "{method} {path} with {bearer:?}: {:?}",
            r.json()
        );
    }
    // Someone else's token cannot be revoked (404, not 403: ids cannot be probed).
    let mine = s
        .client
        .json(
            "POST",
            "/api/v1/owner/external-agents/tokens",
            Some(&starter),
            &json!({"agent_actor_id": AGENT}),
        )
        .await;
    let id = mine.json()["token_id"].as_str().unwrap().to_string();
    let r = s
        .client
        .send(
            "DELETE",
            &format!("/api/v1/owner/external-agents/tokens/{id}"),
            &[("authorization", &format!("Bearer {basic}"))],
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}
