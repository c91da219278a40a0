//! The HTTP-level authorization matrix: every thread route × credential kind × capability
//! present or absent × participant or not, over TLS against the real shim and database. Methods
//! and paths come from the shim's route table (`ama_shim::routes::ROUTES`).

use ama_shim::routes::{Route, ROUTES};
use ama_tests::fixtures::{
    agent_token, create_agent_token, fill, put_users, AGENT, AGENT2 as OTHER_AGENT,
    ALICE as MEMBER, BOB as OUTSIDER, OWNER,
};
use ama_tests::stack::Stack;
use serde_json::{json, Value};

/// The route called `name` in the shim's table.
fn route(name: &str) -> &'static Route {
    ROUTES
        .iter()
        .find(|r| r.target.name() == name)
        .unwrap_or_else(|| panic!("no route {name} in ama_shim::routes::ROUTES"))
}

/// The route called `name`: its method, and its path with `{params}` filled in order.
fn call(name: &str, params: &[&str]) -> (&'static str, String) {
    let r = route(name);
    (r.method.as_str(), fill(r.path, params))
}

/// Method, path, bearer, body and the expected status.
type Case<'a> = (&'static str, String, Option<&'a str>, Option<Value>, u16);

/// A thread route of the table, with the body the matrix sends, the capability it needs, and who
/// may call it.
struct ThreadRoute {
    name: &'static str,
    body: Option<Value>,
    needs: &'static str,
    kinds: &'static [&'static str],
}

fn thread_routes() -> Vec<ThreadRoute> {
    vec![
        ThreadRoute {
            name: "threads.get",
            body: None,
            needs: "read",
            kinds: &["user"],
        },
        ThreadRoute {
            name: "events.poll",
            body: None,
            needs: "read",
            kinds: &["user", "agent"],
        },
        ThreadRoute {
            name: "messages.send",
            body: Some(json!({"content": "m"})),
            needs: "send",
            kinds: &["user"],
        },
        ThreadRoute {
            name: "messages.agent_send",
            body: Some(json!({"content": "m"})),
            needs: "send",
            kinds: &["user", "agent"],
        },
        ThreadRoute {
            name: "threads.set_mode",
            body: Some(json!({"participation_mode": "open"})),
            needs: "manage",
            kinds: &["user", "agent"],
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_thread_route_by_credential_kind_and_capability() {
    // The malformed-token caller is refused by the shim 25 times from one address: raise the
    // shim's own limit on refused credentials (10 a minute) so every cell shows its 401.
    let s = Stack::start(&["--auth-failure-limit", "1000"]);
    put_users(
        &s,
        &[
            (OWNER, "starter"),
            (MEMBER, "starter"),
            (OUTSIDER, "starter"),
        ],
    )
    .await;
    s.cluster
        .psql(
            "postgres",
            "UPDATE ama.rate_policies SET rate_limit = 1000000",
        )
        .unwrap();
    let agent = agent_token(&s, OWNER, AGENT).await;
    let other_agent = agent_token(&s, OUTSIDER, OTHER_AGENT).await;
    // The agent creates the thread with the owner and the member; it holds manage as creator.
    let (method, path) = call("threads.create", &[]);
    let r = s
        .client
        .json(
            method,
            &path,
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
    let (method, path) = call("agent.put", &[]);
    let r = s
        .client
        .json(
            method,
            &path,
            Some(&s.jwt(OWNER)),
            &json!({"custom_slug": "matrix-bot"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let (method, path) = call("public.send", &["matrix-bot"]);
    let r = s
        .client
        .json(
            method,
            &path,
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
        for route in thread_routes() {
            let (method, path) = call(route.name, &[&tid]);
            for (label, bearer, kind, participant) in &callers {
                let expected = match *kind {
                    "none" | "bad" => 401,
                    k if !route.kinds.contains(&k) => 403,
                    _ if !participant => 404,
                    _ if !caps.contains(&route.needs) => 403,
                    _ => 200,
                };
                let r = match &route.body {
                    Some(b) => s.client.json(method, &path, *bearer, b).await,
                    None => {
                        assert_eq!(method, "GET", "{}", route.name);
                        s.client.get(&path, *bearer).await
                    }
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
        let (method, path) = call("events.poll", &[&tid]);
        let r = s
            .client
            .send(
                method,
                &path,
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
    put_users(&s, &[(OWNER, "starter"), (MEMBER, "basic")]).await;
    let agent = agent_token(&s, OWNER, AGENT).await;
    let starter = s.jwt(OWNER);
    let basic = s.jwt(MEMBER);
    let tokens_list = || call("tokens.list", &[]);
    let tokens_create = || call("tokens.create", &[]);
    let agent_get = || call("agent.get", &[]);
    let agent_put = || call("agent.put", &[]);
    let internal_user = || call("internal.users.put", &[OUTSIDER]);
    let case = |(method, path): (&'static str, String), bearer, body, want| -> Case {
        (method, path, bearer, body, want)
    };
    let cases: Vec<Case> = vec![
        case(tokens_list(), Some(&starter), None, 200),
        case(tokens_list(), Some(&basic), None, 200),
        case(tokens_list(), Some(&agent), None, 403),
        case(tokens_list(), None, None, 401),
        case(
            tokens_create(),
            Some(&basic),
            Some(json!({"agent_actor_id": OTHER_AGENT})),
            403,
        ),
        case(
            tokens_create(),
            Some(&agent),
            Some(json!({"agent_actor_id": OTHER_AGENT})),
            403,
        ),
        case(
            tokens_create(),
            Some(&starter),
            Some(json!({"agent_actor_id": AGENT})),
            201,
        ),
        case(agent_get(), Some(&basic), None, 403),
        case(agent_get(), Some(&agent), None, 403),
        case(agent_get(), Some(&starter), None, 404),
        case(
            agent_put(),
            Some(&starter),
            Some(json!({"display_name": "Mine"})),
            200,
        ),
        case(
            agent_put(),
            Some(&basic),
            Some(json!({"display_name": "Mine"})),
            403,
        ),
        case(
            internal_user(),
            Some(&starter),
            Some(json!({"plan": "starter"})),
            403,
        ),
        case(internal_user(), None, Some(json!({"plan": "starter"})), 401),
    ];
    assert_eq!(cases.len(), 14);
    for (method, path, bearer, body, want) in cases {
        let r = match body {
            Some(b) => s.client.json(method, &path, bearer, &b).await,
            None => {
                assert_eq!(method, "GET", "{path}");
                s.client.get(&path, bearer).await
            }
        };
        assert_eq!(
            r.status,
            want,
            "{method} {path} with {bearer:?}: {:?}",
            r.json()
        );
    }
    // Someone else's token cannot be revoked (404, not 403: ids cannot be probed).
    let mine = create_agent_token(&s, OWNER, &json!({"agent_actor_id": AGENT})).await;
    let id = mine["token_id"].as_str().unwrap().to_string();
    let (method, path) = call("tokens.revoke", &[&id]);
    let r = s
        .client
        .send(
            method,
            &path,
            &[("authorization", &format!("Bearer {basic}"))],
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}
