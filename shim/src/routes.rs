//! The route table: method + path -> route name and path parameters.

use http::Method;
use serde_json::{Map, Value};

/// What a matched path is served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One `ama.request` call with this route name.
    Api(&'static str),
    /// Server-Sent Events over `events.poll`.
    EventStream,
    Health,
    Ready,
    Metrics,
    OpenApi,
}

/// The route name the event stream polls with.
pub const EVENTS_POLL: &str = "events.poll";

/// (method, pattern, target). `{name}` matches one non-empty path segment.
pub const ROUTES: &[(Method, &str, Target)] = &[
    (
        Method::POST,
        "/api/v1/chat/threads",
        Target::Api("threads.create"),
    ),
    (
        Method::GET,
        "/api/v1/chat/threads",
        Target::Api("threads.list"),
    ),
    (
        Method::GET,
        "/api/v1/chat/threads/{thread_id}",
        Target::Api("threads.get"),
    ),
    (
        Method::POST,
        "/api/v1/chat/threads/{thread_id}/messages",
        Target::Api("messages.send"),
    ),
    (
        Method::POST,
        "/api/v1/chat/threads/{thread_id}/agent-messages",
        Target::Api("messages.agent_send"),
    ),
    (
        Method::GET,
        "/api/v1/chat/threads/{thread_id}/events",
        Target::Api(EVENTS_POLL),
    ),
    (
        Method::GET,
        "/api/v1/chat/threads/{thread_id}/events/stream",
        Target::EventStream,
    ),
    (
        Method::POST,
        "/api/v1/chat/threads/{thread_id}/mode",
        Target::Api("threads.set_mode"),
    ),
    (
        Method::POST,
        "/api/v1/chat/threads/{thread_id}/webhooks",
        Target::Api("webhooks.create"),
    ),
    (
        Method::DELETE,
        "/api/v1/chat/threads/{thread_id}/webhooks/{subscription_id}",
        Target::Api("webhooks.delete"),
    ),
    (
        Method::POST,
        "/api/v1/owner/external-agents/tokens",
        Target::Api("tokens.create"),
    ),
    (
        Method::GET,
        "/api/v1/owner/external-agents/tokens",
        Target::Api("tokens.list"),
    ),
    (
        Method::DELETE,
        "/api/v1/owner/external-agents/tokens/{token_id}",
        Target::Api("tokens.revoke"),
    ),
    (Method::GET, "/api/v1/owner/agent", Target::Api("agent.get")),
    (Method::PUT, "/api/v1/owner/agent", Target::Api("agent.put")),
    (
        Method::POST,
        "/api/v1/public/agents/{custom_slug}/messages",
        Target::Api("public.send"),
    ),
    (
        Method::GET,
        "/api/v1/public/threads/{thread_id}/events",
        Target::Api("public.events"),
    ),
    (
        Method::PUT,
        "/internal/v1/users/{user_id}",
        Target::Api("internal.users.put"),
    ),
    (
        Method::POST,
        "/internal/v1/threads/{thread_id}/system-messages",
        Target::Api("internal.system_message"),
    ),
    (Method::GET, "/health", Target::Health),
    (Method::GET, "/ready", Target::Ready),
    (Method::GET, "/metrics", Target::Metrics),
    (Method::GET, "/api/v1/openapi.json", Target::OpenApi),
];

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

/// Matches `path` against one pattern, returning the decoded parameters.
fn match_pattern(pattern: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let mut params = Vec::new();
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) => {
                if let Some(name) = p.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                    if s.is_empty() {
                        return None;
                    }
                    params.push((name, percent_decode(s)));
                } else if p != s {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// Finds the route for `method` and `path` (the path without query string).
pub fn match_route(method: &Method, path: &str) -> RouteMatch {
    let mut allow: Vec<Method> = Vec::new();
    for (m, pattern, target) in ROUTES {
        if let Some(params) = match_pattern(pattern, path) {
            if m == method
                || (*method == Method::HEAD
                    && *m == Method::GET
                    && !matches!(target, Target::Api(_)))
            {
                return RouteMatch::Found {
                    target: *target,
                    params,
                };
            }
            if !allow.contains(m) {
                allow.push(m.clone());
            }
        }
    }
    if allow.is_empty() {
        RouteMatch::NotFound
    } else {
        allow.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        RouteMatch::MethodNotAllowed { allow }
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

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_bytes(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-decodes a path segment (invalid escapes are kept, invalid UTF-8 replaced).
pub fn percent_decode(s: &str) -> String {
    decode_bytes(s, false)
}

/// Parses a query string into a JSON object of strings; a repeated key keeps its last value.
pub fn parse_query(query: Option<&str>) -> Map<String, Value> {
    let mut map = Map::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode_bytes(k, true);
        if k.is_empty() {
            continue;
        }
        map.insert(k, Value::String(decode_bytes(v, true)));
    }
    map
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

    #[test]
    fn every_api_route_matches() {
        let t = "0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50";
        let cases = [
            (
                Method::POST,
                "/api/v1/chat/threads".to_string(),
                "threads.create",
            ),
            (
                Method::GET,
                "/api/v1/chat/threads".to_string(),
                "threads.list",
            ),
            (
                Method::GET,
                format!("/api/v1/chat/threads/{t}"),
                "threads.get",
            ),
            (
                Method::POST,
                format!("/api/v1/chat/threads/{t}/messages"),
                "messages.send",
            ),
            (
                Method::POST,
                format!("/api/v1/chat/threads/{t}/agent-messages"),
                "messages.agent_send",
            ),
            (
                Method::GET,
                format!("/api/v1/chat/threads/{t}/events"),
                "events.poll",
            ),
            (
                Method::POST,
                format!("/api/v1/chat/threads/{t}/mode"),
                "threads.set_mode",
            ),
            (
                Method::POST,
                format!("/api/v1/chat/threads/{t}/webhooks"),
                "webhooks.create",
            ),
            (
                Method::DELETE,
                format!("/api/v1/chat/threads/{t}/webhooks/{t}"),
                "webhooks.delete",
            ),
            (
                Method::POST,
                "/api/v1/owner/external-agents/tokens".to_string(),
                "tokens.create",
            ),
            (
                Method::GET,
                "/api/v1/owner/external-agents/tokens".to_string(),
                "tokens.list",
            ),
            (
                Method::DELETE,
                format!("/api/v1/owner/external-agents/tokens/{t}"),
                "tokens.revoke",
            ),
            (Method::GET, "/api/v1/owner/agent".to_string(), "agent.get"),
            (Method::PUT, "/api/v1/owner/agent".to_string(), "agent.put"),
            (
                Method::POST,
                "/api/v1/public/agents/my-agent/messages".to_string(),
                "public.send",
            ),
            (
                Method::GET,
                format!("/api/v1/public/threads/{t}/events"),
                "public.events",
            ),
            (
                Method::PUT,
                format!("/internal/v1/users/{t}"),
                "internal.users.put",
            ),
            (
                Method::POST,
                format!("/internal/v1/threads/{t}/system-messages"),
                "internal.system_message",
            ),
        ];
        for (m, p, name) in cases {
            let (target, _) = found(m, &p);
            assert_eq!(target, Target::Api(name), "{p}");
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
