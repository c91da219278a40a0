//! The route table: the one list of the shim's routes. Requests are matched with `matchit`; the
//! OpenAPI test, the contract matrix and the unit tests all read [`ROUTES`]. A route's rate
//! policy, plan and capability checks live with its SQL function in `ama.routes`.

use std::sync::LazyLock;

use http::Method;
use serde_json::{Map, Value};

/// What a matched path is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One `ama.request` call with this route name (a row of `ama.routes`).
    Api(&'static str),
    /// Server-Sent Events over `events.poll`.
    EventStream,
    /// The user's WebSocket stream (all its threads), over `ws.threads`, `events.poll`, `ws.typing`.
    WsUser,
    /// A visitor's WebSocket stream (its one thread), over `ws.public` and `public.events`.
    WsPublic,
    Health,
    Ready,
    Metrics,
    OpenApi,
}

impl Target {
    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Target::Api(name) => name,
            Target::EventStream => "events.stream",
            Target::WsUser => "ws.user",
            Target::WsPublic => "ws.visitor",
            Target::Health => "health",
            Target::Ready => "ready",
            Target::Metrics => "metrics",
            Target::OpenApi => "openapi",
        }
    }

    /// Whether the shim answers this route itself (limited per client IP in the shim).
    pub fn is_shim_endpoint(self) -> bool {
        matches!(
            self,
            Target::Health | Target::Ready | Target::Metrics | Target::OpenApi
        )
    }
}

impl Target {
    /// The `ama.routes` rows a WebSocket stream calls besides the poll routes (they have no
    /// HTTP route of their own).
    pub fn db_routes(self) -> &'static [&'static str] {
        match self {
            Target::WsUser => &[WS_THREADS, WS_TYPING],
            Target::WsPublic => &[WS_PUBLIC],
            _ => &[],
        }
    }
}

/// The user WebSocket stream's thread set (opened and re-checked).
pub const WS_THREADS: &str = "ws.threads";
/// A user WebSocket stream's typing message.
pub const WS_TYPING: &str = "ws.typing";
/// The visitor WebSocket stream's thread (opened and re-checked).
pub const WS_PUBLIC: &str = "ws.public";
/// The route a visitor's WebSocket polls with.
pub const PUBLIC_EVENTS: &str = "public.events";

/// The route name the event stream polls with.
pub const EVENTS_POLL: &str = "events.poll";

/// One route: method, path pattern (`{name}` matches one non-empty segment) and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub target: Target,
}

const fn route(method: Method, path: &'static str, target: Target) -> Route {
    Route {
        method,
        path,
        target,
    }
}

/// Every route of the shim. Adding a route means one row here, its SQL function and its row in
/// `ama.routes` (a test checks that the two lists agree), and its OpenAPI entry (a test checks
/// that too).
pub const ROUTES: &[Route] = &[
    route(
        Method::POST,
        "/api/v1/chat/threads",
        Target::Api("threads.create"),
    ),
    route(
        Method::GET,
        "/api/v1/chat/threads",
        Target::Api("threads.list"),
    ),
    route(
        Method::GET,
        "/api/v1/chat/threads/{thread_id}",
        Target::Api("threads.get"),
    ),
    route(
        Method::POST,
        "/api/v1/chat/threads/{thread_id}/messages",
        Target::Api("messages.send"),
    ),
    route(
        Method::POST,
        "/api/v1/chat/threads/{thread_id}/agent-messages",
        Target::Api("messages.agent_send"),
    ),
    route(
        Method::GET,
        "/api/v1/chat/threads/{thread_id}/events",
        Target::Api(EVENTS_POLL),
    ),
    route(
        Method::GET,
        "/api/v1/chat/threads/{thread_id}/events/stream",
        Target::EventStream,
    ),
    route(
        Method::POST,
        "/api/v1/chat/threads/{thread_id}/mode",
        Target::Api("threads.set_mode"),
    ),
    route(
        Method::GET,
        "/api/v1/chat/threads/{thread_id}/webhooks",
        Target::Api("webhooks.list"),
    ),
    route(
        Method::POST,
        "/api/v1/chat/threads/{thread_id}/webhooks",
        Target::Api("webhooks.create"),
    ),
    route(
        Method::DELETE,
        "/api/v1/chat/threads/{thread_id}/webhooks/{subscription_id}",
        Target::Api("webhooks.delete"),
    ),
    route(
        Method::POST,
        "/api/v1/owner/external-agents/tokens",
        Target::Api("tokens.create"),
    ),
    route(
        Method::GET,
        "/api/v1/owner/external-agents/tokens",
        Target::Api("tokens.list"),
    ),
    route(
        Method::DELETE,
        "/api/v1/owner/external-agents/tokens/{token_id}",
        Target::Api("tokens.revoke"),
    ),
    route(Method::GET, "/api/v1/owner/agent", Target::Api("agent.get")),
    route(Method::PUT, "/api/v1/owner/agent", Target::Api("agent.put")),
    route(
        Method::POST,
        "/api/v1/public/agents/{custom_slug}/messages",
        Target::Api("public.send"),
    ),
    route(
        Method::GET,
        "/api/v1/public/threads/{thread_id}/events",
        Target::Api(PUBLIC_EVENTS),
    ),
    route(Method::GET, "/api/v1/chat/ws/user/threads", Target::WsUser),
    route(
        Method::GET,
        "/api/v1/chat/ws/public/{custom_slug}/threads/{thread_id}",
        Target::WsPublic,
    ),
    route(
        Method::PUT,
        "/internal/v1/users/{user_id}",
        Target::Api("internal.users.put"),
    ),
    route(
        Method::POST,
        "/internal/v1/threads/{thread_id}/system-messages",
        Target::Api("internal.system_message"),
    ),
    route(Method::GET, "/health", Target::Health),
    route(Method::GET, "/ready", Target::Ready),
    route(Method::GET, "/metrics", Target::Metrics),
    route(Method::GET, "/api/v1/openapi.json", Target::OpenApi),
];

/// The name of every `ama.request` route in the table (each once): the API routes and the
/// database routes of the WebSocket streams.
pub fn api_route_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = ROUTES
        .iter()
        .flat_map(|r| match r.target {
            Target::Api(name) => vec![name],
            t => t.db_routes().to_vec(),
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The matcher: each path pattern with the (method, target) pairs it serves.
static ROUTER: LazyLock<matchit::Router<Vec<(Method, Target)>>> = LazyLock::new(|| {
    let mut by_path: Vec<(&'static str, Vec<(Method, Target)>)> = Vec::new();
    for r in ROUTES {
        match by_path.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, methods)) => methods.push((r.method.clone(), r.target)),
            None => by_path.push((r.path, vec![(r.method.clone(), r.target)])),
        }
    }
    let mut router = matchit::Router::new();
    for (path, methods) in by_path {
        // the table is a constant: a conflict is a programming error caught by every test
        if let Err(e) = router.insert(path, methods) {
            panic!("route table: {path}: {e}");
        }
    }
    router
});

/// The outcome of matching a request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        target: Target,
        params: Vec<(&'static str, String)>,
    },
    /// The path exists with other methods (sorted, deduplicated, for `Allow`).
    MethodNotAllowed {
        allow: Vec<Method>,
    },
    NotFound,
}

/// Finds the route for `method` and `path` (the path without query string). `HEAD` is served
/// like `GET` on the shim's own endpoints.
pub fn match_route(method: &Method, path: &str) -> RouteMatch {
    let Ok(m) = ROUTER.at(path) else {
        return RouteMatch::NotFound;
    };
    let found = m.value.iter().find(|(rm, target)| {
        rm == method || (*method == Method::HEAD && *rm == Method::GET && target.is_shim_endpoint())
    });
    match found {
        Some((_, target)) => RouteMatch::Found {
            target: *target,
            params: m
                .params
                .iter()
                .map(|(k, v)| (k, percent_decode(v)))
                .collect(),
        },
        None => {
            let mut allow: Vec<Method> = m.value.iter().map(|(rm, _)| rm.clone()).collect();
            allow.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            allow.dedup();
            RouteMatch::MethodNotAllowed { allow }
        }
    }
}

/// The `Allow` header value.
pub fn allow_header(allow: &[Method]) -> String {
    allow
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Percent-decodes a path segment (invalid escapes are kept, invalid UTF-8 replaced).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a query string (`application/x-www-form-urlencoded`) into a JSON object of strings; a
/// repeated key keeps its last value, an empty key is dropped.
pub fn parse_query(query: Option<&str>) -> Map<String, Value> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

/// The `path` object of the args JSON.
pub fn params_json(params: &[(&'static str, String)]) -> Map<String, Value> {
    params
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(m: Method, p: &str) -> (Target, Vec<(&'static str, String)>) {
        match match_route(&m, p) {
            RouteMatch::Found { target, params } => (target, params),
            other => panic!("{m} {p}: {other:?}"),
        }
    }

    /// Fills each `{param}` of a pattern with `value`.
    fn fill(pattern: &str, value: &str) -> String {
        pattern
            .split('/')
            .map(|s| if s.starts_with('{') { value } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_route_matches_its_own_target() {
        let t = "0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50";
        for r in ROUTES {
            let (target, params) = found(r.method.clone(), &fill(r.path, t));
            assert_eq!(target, r.target, "{} {}", r.method, r.path);
            assert_eq!(params.len(), r.path.matches('{').count(), "{}", r.path);
            assert!(params.iter().all(|(_, v)| v == t));
        }
    }

    #[test]
    fn the_table_has_no_duplicates() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    a.method != b.method || a.path != b.path,
                    "{} {}",
                    a.method,
                    a.path
                );
                if let (Target::Api(x), Target::Api(y)) = (a.target, b.target) {
                    assert_ne!(x, y, "route name used twice");
                }
            }
        }
    }

    #[test]
    fn params_are_extracted_and_decoded() {
        let (t, params) = found(Method::DELETE, "/api/v1/chat/threads/abc/webhooks/d%20e");
        assert_eq!(t, Target::Api("webhooks.delete"));
        assert_eq!(
            params,
            vec![
                ("thread_id", "abc".to_string()),
                ("subscription_id", "d e".to_string())
            ]
        );
        let (t, params) = found(Method::GET, "/api/v1/chat/threads/x/events/stream");
        assert_eq!(t, Target::EventStream);
        assert_eq!(params, vec![("thread_id", "x".to_string())]);
        let (_, params) = found(Method::POST, "/api/v1/public/agents/caf%C3%A9/messages");
        assert_eq!(params[0].1, "café");
    }

    #[test]
    fn unknown_paths_are_404() {
        for p in [
            "/",
            "/api/v1/chat/threads/",
            "/api/v1/chat/threads//messages",
            "/api/v1/chat/threads/x/messages/extra",
            "/api/v2/chat/threads",
            "/healthz",
            "",
        ] {
            assert_eq!(match_route(&Method::GET, p), RouteMatch::NotFound, "{p}");
        }
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        match match_route(&Method::DELETE, "/api/v1/chat/threads") {
            RouteMatch::MethodNotAllowed { allow } => assert_eq!(allow_header(&allow), "GET, POST"),
            other => panic!("{other:?}"),
        }
        match match_route(&Method::POST, "/api/v1/owner/agent") {
            RouteMatch::MethodNotAllowed { allow } => assert_eq!(allow_header(&allow), "GET, PUT"),
            other => panic!("{other:?}"),
        }
        match match_route(&Method::POST, "/health") {
            RouteMatch::MethodNotAllowed { allow } => assert_eq!(allow_header(&allow), "GET"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn query_parsing() {
        let q = parse_query(Some("after_seq=5&limit=10&x=a+b%21&limit=20&&=z&flag"));
        assert_eq!(q["after_seq"], "5");
        assert_eq!(q["limit"], "20");
        assert_eq!(q["x"], "a b!");
        assert_eq!(q["flag"], "");
        assert_eq!(q.len(), 4);
        assert!(parse_query(None).is_empty());
        // broken escapes do not panic
        let q = parse_query(Some("a=%&b=%zz&c=%4"));
        assert_eq!(q["a"], "%");
        assert_eq!(q["b"], "%zz");
        assert_eq!(q["c"], "%4");
        assert_eq!(percent_decode("%ff%fe"), "\u{fffd}\u{fffd}");
    }
}
