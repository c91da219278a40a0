//! The OpenAPI document against the running API, end to end over TLS.
//!
//! Fetches `/api/v1/openapi.json` from a running shim, checks that it is a well-formed OpenAPI 3.1
//! document that lists exactly the routes of `shim/src/routes.rs`, then exercises every operation
//! (success and the main error statuses) and checks each response against the document: the
//! status must be one the operation declares, required headers must be present and match their
//! schemas, and the body must match the declared media type's JSON Schema (`$ref`s resolved,
//! formats asserted). Requests the server accepts must be valid against the declared parameters
//! and request body, and most bad inputs the server rejects are rejected by the document too.

use ama_core::token::{self, TokenKind};
use ama_tests::client::{Client, Response};
use ama_tests::stack::Stack;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

const DOC_FILE: &str = include_str!("../../shim/openapi.json");
const ROUTES_RS: &str = include_str!("../../shim/src/routes.rs");

const OWNER: &str = "cccccccc-0000-4000-8000-000000000001";
const OWNER2: &str = "cccccccc-0000-4000-8000-000000000002";
const ALICE: &str = "cccccccc-0000-4000-8000-000000000003";
const BOB: &str = "cccccccc-0000-4000-8000-000000000004";
const MALLORY: &str = "cccccccc-0000-4000-8000-000000000005";
const BASIC: &str = "cccccccc-0000-4000-8000-000000000006";
const RATER: &str = "cccccccc-0000-4000-8000-000000000007";
const PLANNER: &str = "cccccccc-0000-4000-8000-000000000008";
const NOBODY: &str = "cccccccc-0000-4000-8000-0000000000ff";
const AGENT: &str = "agent:dddddddd-0000-4000-8000-000000000001";
const AGENT2: &str = "agent:dddddddd-0000-4000-8000-000000000002";

const THREADS: &str = "/api/v1/chat/threads";
const THREAD: &str = "/api/v1/chat/threads/{thread_id}";
const MESSAGES: &str = "/api/v1/chat/threads/{thread_id}/messages";
const AGENT_MESSAGES: &str = "/api/v1/chat/threads/{thread_id}/agent-messages";
const EVENTS: &str = "/api/v1/chat/threads/{thread_id}/events";
const STREAM: &str = "/api/v1/chat/threads/{thread_id}/events/stream";
const MODE: &str = "/api/v1/chat/threads/{thread_id}/mode";
const WEBHOOKS: &str = "/api/v1/chat/threads/{thread_id}/webhooks";
const WEBHOOK: &str = "/api/v1/chat/threads/{thread_id}/webhooks/{subscription_id}";
const TOKENS: &str = "/api/v1/owner/external-agents/tokens";
const TOKEN: &str = "/api/v1/owner/external-agents/tokens/{token_id}";
const PROFILE: &str = "/api/v1/owner/agent";
const PUBLIC_SEND: &str = "/api/v1/public/agents/{custom_slug}/messages";
const PUBLIC_EVENTS: &str = "/api/v1/public/threads/{thread_id}/events";
const USERS: &str = "/internal/v1/users/{user_id}";
const SYSTEM: &str = "/internal/v1/threads/{thread_id}/system-messages";

/// The (method, path) pairs of the shim's route table, read from its source.
fn shim_routes() -> Vec<(String, String)> {
    let start = ROUTES_RS
        .find("pub const ROUTES")
        .expect("ROUTES in routes.rs");
    let table = &ROUTES_RS[start..];
    let table = &table[..table.find("\n];").expect("end of ROUTES")];
    let mut out = Vec::new();
    let mut rest = table;
    while let Some(i) = rest.find("Method::") {
        rest = &rest[i + "Method::".len()..];
        let method: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase())
            .collect();
        let q = rest.find('"').expect("route path");
        let after = &rest[q + 1..];
        let path = &after[..after.find('"').expect("closing quote")];
        out.push((method, path.to_string()));
        rest = &after[path.len() + 1..];
    }
    out
}

/// Resolves a local `$ref` (`#/a/b`) against the document, repeatedly.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = v;
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("local $ref");
                v = doc
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("unresolved $ref {r}"));
            }
            None => return v,
        }
    }
    panic!("$ref loop")
}

/// Every `$ref` in the document, with where it occurs.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "$ref" {
                    out.push((at.to_string(), x.as_str().unwrap_or("").to_string()));
                } else {
                    refs(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// One request to send.
struct Req {
    method: &'static str,
    template: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    json: Option<Value>,
}

fn req(method: &'static str, template: &'static str, path: impl Into<String>) -> Req {
    Req {
        method,
        template,
        path: path.into(),
        headers: Vec::new(),
        body: None,
        json: None,
    }
}

impl Req {
    fn bearer(mut self, t: &str) -> Self {
        self.headers
            .push(("authorization".into(), format!("Bearer {t}")));
        self
    }
    fn internal(mut self, key: &str) -> Self {
        self.headers
            .push(("x-internal-api-key".into(), key.to_string()));
        self
    }
    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    fn json(mut self, v: Value) -> Self {
        self.body = Some(serde_json::to_vec(&v).expect("json"));
        self.json = Some(v);
        self.header("content-type", "application/json")
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.body = Some(b.to_vec());
        self.header("content-type", "application/json")
    }
}

/// The document, the checks made so far, and what was seen.
struct Api {
    client: Client,
    doc: Value,
    validators: HashMap<String, jsonschema::Validator>,
    assertions: usize,
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

impl Api {
    fn new(client: Client, doc: Value) -> Api {
        Api {
            client,
            doc,
            validators: HashMap::new(),
            assertions: 0,
            seen: BTreeMap::new(),
        }
    }

    fn ok(&mut self, cond: bool, what: impl FnOnce() -> String) {
        self.assertions += 1;
        assert!(cond, "{}", what());
    }

    /// Errors of `instance` against the schema at `pointer` (resolved within the document).
    fn errors(&mut self, pointer: &str, instance: &Value) -> Vec<String> {
        if !self.validators.contains_key(pointer) {
            let schema = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("no schema at {pointer}"))
                .clone();
            let root = json!({"components": self.doc["components"].clone(), "allOf": [schema]});
            let v = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}"));
            self.validators.insert(pointer.to_string(), v);
        }
        self.validators[pointer]
            .iter_errors(instance)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }

    fn op_pointer(method: &str, template: &str) -> String {
        format!(
            "/paths/{}/{}",
            template.replace('~', "~0").replace('/', "~1"),
            method.to_ascii_lowercase()
        )
    }

    /// A parameter value as the schema sees it: integers parsed when the schema says integer.
    fn param_value(schema: &Value, raw: &str) -> Value {
        if schema["type"] == "integer" {
            raw.parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(raw.to_string()))
        } else {
            Value::String(raw.to_string())
        }
    }

    /// Whether the request's path and query parameters and JSON body are valid for the operation.
    fn request_problems(&mut self, r: &Req) -> Vec<String> {
        let op_ptr = Self::op_pointer(r.method, r.template);
        let op = self.doc.pointer(&op_ptr).cloned().expect("operation");
        let (path, query) = r.path.split_once('?').unwrap_or((&r.path, ""));
        let mut values: Vec<(String, String, String)> = Vec::new();
        for (t, s) in r.template.split('/').zip(path.split('/')) {
            if let Some(name) = t.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
                values.push(("path".into(), name.into(), s.into()));
            }
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            values.push(("query".into(), k.into(), v.into()));
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let mut problems = Vec::new();
        for (inn, name, raw) in values {
            let found = params.iter().enumerate().find(|(_, p)| {
                let p = resolve(&self.doc, p);
                p["in"] == inn.as_str() && p["name"] == name.as_str()
            });
            let Some((i, p)) = found else {
                if inn == "path" {
                    problems.push(format!("path parameter {name} not declared"));
                }
                continue;
            };
            let ptr = match p.get("$ref").and_then(Value::as_str) {
                Some(r) => format!("{}/schema", &r[1..]),
                None => format!("{op_ptr}/parameters/{i}/schema"),
            };
            let schema = self.doc.pointer(&ptr).cloned().expect("parameter schema");
            let v = Self::param_value(&schema, &raw);
            problems.extend(
                self.errors(&ptr, &v)
                    .into_iter()
                    .map(|e| format!("{inn} {name}: {e}")),
            );
        }
        if let Some(body) = &r.json {
            let ptr = format!("{op_ptr}/requestBody/content/application~1json/schema");
            if self.doc.pointer(&ptr).is_some() {
                problems.extend(
                    self.errors(&ptr, body)
                        .into_iter()
                        .map(|e| format!("body {e}")),
                );
            } else {
                problems.push("no JSON request body declared".into());
            }
        }
        problems
    }

    /// Checks a response against the document and records its status.
    fn check(&mut self, method: &str, template: &str, resp: &Response) -> Value {
        let op_ptr = Self::op_pointer(method, template);
        let op = self.doc.pointer(&op_ptr).cloned();
        self.ok(op.is_some(), || {
            format!("{method} {template} is not in the document")
        });
        let status = resp.status;
        self.seen
            .entry((method.to_string(), template.to_string()))
            .or_default()
            .insert(status);
        let body_json = resp.json();
        let declared = op
            .as_ref()
            .and_then(|o| o["responses"].get(status.to_string()))
            .cloned();
        self.ok(declared.is_some(), || {
            format!(
                "{method} {template}: undocumented status {status}: {}",
                String::from_utf8_lossy(&resp.body)
            )
        });
        let declared = declared.expect("declared");
        let (spec, spec_ptr) = match declared.get("$ref").and_then(Value::as_str) {
            Some(r) => (resolve(&self.doc, &declared).clone(), r[1..].to_string()),
            None => (declared.clone(), format!("{op_ptr}/responses/{status}")),
        };
        self.check_response(&spec, &spec_ptr, &format!("{method} {template}"), resp);
        body_json
    }

    /// Checks headers and body against one response object.
    fn check_response(&mut self, spec: &Value, spec_ptr: &str, what: &str, resp: &Response) {
        let status = resp.status;
        let headers = spec["headers"].as_object().cloned().unwrap_or_default();
        for (name, h) in headers {
            let (h, h_ptr) = match h.get("$ref").and_then(Value::as_str) {
                Some(r) => (resolve(&self.doc, &h).clone(), r[1..].to_string()),
                None => (
                    h.clone(),
                    format!("{spec_ptr}/headers/{}", name.replace('/', "~1")),
                ),
            };
            let got = resp.header(&name.to_ascii_lowercase()).map(str::to_string);
            if h["required"] == true {
                self.ok(got.is_some(), || {
                    format!("{what} {status}: required header {name} missing")
                });
            }
            if let Some(g) = got {
                let v = Self::param_value(&h["schema"], &g);
                let errs = self.errors(&format!("{h_ptr}/schema"), &v);
                self.ok(errs.is_empty(), || {
                    format!("{what} {status}: header {name}: {g:?}: {errs:?}")
                });
            }
        }
        let ct = resp
            .header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let media = spec["content"].get(&ct).cloned();
        self.ok(media.is_some(), || {
            format!("{what} {status}: content type {ct:?} not declared")
        });
        if ct == "application/json" {
            let body: Result<Value, _> = serde_json::from_slice(&resp.body);
            self.ok(body.is_ok(), || {
                format!("{what} {status}: body is not JSON")
            });
            let body = body.expect("json");
            let ptr = format!("{spec_ptr}/content/application~1json/schema");
            let errs = self.errors(&ptr, &body);
            self.ok(errs.is_empty(), || {
                format!("{what} {status}: body does not match {ptr}: {errs:#?}\n{body:#}")
            });
            if status >= 400 {
                let rid = resp.header("x-request-id").unwrap_or("");
                self.ok(body["request_id"] == rid, || {
                    format!("{what} {status}: request_id differs from x-request-id")
                });
            }
        } else if ct == "text/plain" {
            self.ok(std::str::from_utf8(&resp.body).is_ok(), || {
                format!("{what}: text is not UTF-8")
            });
        }
    }

    async fn send(&mut self, r: &Req) -> Response {
        if r.template == STREAM {
            return sse(
                &self.client,
                &r.path,
                &r.headers,
                Duration::from_secs(10),
                |_| false,
            )
            .await;
        }
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // A body over the limit is answered (413) and the connection closed before the client has
        // written it all; the client may then see the reset instead of the answer: try again.
        let tries = if r.body.as_ref().is_some_and(|b| b.len() > 65_536) {
            10
        } else {
            1
        };
        let mut last = None;
        for _ in 0..tries {
            match self
                .client
                .send(r.method, &r.path, &headers, r.body.as_deref())
                .await
            {
                Ok(resp) => return resp,
                Err(e) => last = Some(e),
            }
        }
        panic!("{} {}: {last:?}", r.method, r.path)
    }

    /// Sends, expects `status`, checks the response; a 2xx request must be valid for the document.
    async fn expect(&mut self, r: Req, status: u16) -> Value {
        let resp = self.send(&r).await;
        self.ok(resp.status == status, || {
            format!(
                "{} {}: expected {status}, got {}: {}",
                r.method,
                r.path,
                resp.status,
                String::from_utf8_lossy(&resp.body)
            )
        });
        let body = self.check(r.method, r.template, &resp);
        if (200..300).contains(&status) {
            let problems = self.request_problems(&r);
            self.ok(problems.is_empty(), || {
                format!(
                    "{} {}: the server accepted a request the document rejects: {problems:?}",
                    r.method, r.path
                )
            });
        }
        body
    }

    /// Like `expect`, and the document rejects the request too (`doc_rejects`) or cannot say so.
    async fn bad(&mut self, r: Req, status: u16, doc_rejects: bool) -> Value {
        let problems = self.request_problems(&r);
        let what = format!("{} {} {:?}", r.method, r.path, r.json);
        let body = self.expect(r, status).await;
        self.ok(problems.is_empty() != doc_rejects, || {
            format!(
                "{what}: expected the document to reject it: {doc_rejects}; problems: {problems:?}"
            )
        });
        body
    }

    /// Sends and returns the raw response after checking it (status not fixed).
    async fn any(&mut self, r: Req) -> Response {
        let resp = self.send(&r).await;
        self.check(r.method, r.template, &resp);
        resp
    }
}

/// Opens a Server-Sent Events stream and collects its text until `done(text)` or `timeout`;
/// returns the response with its headers and the text received as the body.
async fn sse(
    client: &Client,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> Response {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    client
        .sse(path, &headers, timeout, done)
        .await
        .expect("SSE stream")
}

/// A well-formed token (right checksum) that does not exist, so it reaches the database.
fn unknown_token(kind: TokenKind) -> String {
    token::compose(kind, &"7".repeat(64))
}

/// Static checks of the document itself.
fn check_document(api: &mut Api) {
    let doc = api.doc.clone();
    api.ok(doc["openapi"] == "3.1.0", || "openapi is not 3.1.0".into());
    api.ok(
        doc["info"]["title"].is_string() && doc["info"]["version"].is_string(),
        || "info.title and info.version are required".into(),
    );
    // Every $ref resolves.
    let mut all = Vec::new();
    refs(&doc, "", &mut all);
    for (at, r) in &all {
        let ok = r
            .strip_prefix('#')
            .is_some_and(|p| doc.pointer(p).is_some());
        api.ok(ok, || format!("{at}: unresolved $ref {r}"));
    }
    // Every component schema is a valid JSON Schema 2020-12.
    for (name, s) in doc["components"]["schemas"].as_object().expect("schemas") {
        let r = jsonschema::draft202012::meta::validate(s);
        api.ok(r.is_ok(), || format!("schema {name}: {r:?}"));
    }
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("securitySchemes")
        .clone();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|n| n.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().expect("path item") {
            let what = format!("{method} {path}");
            let id = op["operationId"].as_str().unwrap_or("");
            api.ok(!id.is_empty() && ids.insert(id.to_string()), || {
                format!("{what}: missing or duplicate operationId {id:?}")
            });
            // Path parameters declared exactly, and required.
            let params: Vec<Value> = op["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| resolve(&doc, p).clone())
                .collect();
            let declared: BTreeSet<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            api.ok(declared == names.iter().copied().collect(), || {
                format!("{what}: path parameters {declared:?} vs {names:?}")
            });
            for p in params.iter().filter(|p| p["in"] == "path") {
                api.ok(p["required"] == true, || {
                    format!("{what}: path parameter not required")
                });
            }
            // Security requirements name defined schemes.
            let sec = op["security"].as_array();
            api.ok(sec.is_some(), || format!("{what}: no security"));
            for requirement in sec.into_iter().flatten() {
                for k in requirement.as_object().expect("requirement").keys() {
                    api.ok(schemes.contains_key(k), || {
                        format!("{what}: unknown scheme {k}")
                    });
                }
            }
            // Responses: explicit status codes only, each with a description.
            let responses = op["responses"].as_object().expect("responses");
            api.ok(!responses.is_empty(), || format!("{what}: no responses"));
            for (code, r) in responses {
                api.ok(code.len() == 3 && code.parse::<u16>().is_ok(), || {
                    format!("{what}: response key {code} is not an explicit status")
                });
                api.ok(resolve(&doc, r)["description"].is_string(), || {
                    format!("{what} {code}: no description")
                });
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_the_openapi_document() {
    let s = Stack::start(&[]);
    // This walk sends many token and profile requests per user within a minute (most of them bad
    // input, which counts too): a DBA raises those two per-user limits with one UPDATE, as data.
    s.cluster
        .psql(
            "postgres",
            "UPDATE ama.rate_policies SET rate_limit = 1000 WHERE name IN ('token_changes', 'profile_update')",
        )
        .expect("raise the per-user limits");

    // The served document is the repository's, and it parses.
    let r = s.client.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let served: Value = serde_json::from_slice(&r.body).expect("served document is JSON");
    let file: Value = serde_json::from_str(DOC_FILE).expect("shim/openapi.json is JSON");
    assert_eq!(
        served, file,
        "the shim serves an older shim/openapi.json: rebuild it (cargo build -p ama-shim)"
    );
    let mut api = Api::new(s.client.clone(), served);
    check_document(&mut api);

    // Every route of the shim is documented, and nothing else.
    let routes: BTreeSet<(String, String)> = shim_routes().into_iter().collect();
    assert!(routes.len() >= 23, "parsed {} routes", routes.len());
    let mut documented = BTreeSet::new();
    for (path, item) in api.doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    for r in &routes {
        api.ok(documented.contains(r), || {
            format!("route {r:?} is not documented")
        });
    }
    for d in &documented {
        api.ok(routes.contains(d), || {
            format!("{d:?} is documented but not routed")
        });
    }

    // Operations.
    api.expect(
        req("GET", "/api/v1/openapi.json", "/api/v1/openapi.json"),
        200,
    )
    .await;
    let h = api.expect(req("GET", "/health", "/health"), 200).await;
    assert_eq!(h["status"], "ok");
    api.expect(req("GET", "/ready", "/ready"), 200).await;
    api.expect(req("GET", "/metrics", "/metrics"), 200).await;

    // Unknown routes and wrong methods: the Error shape the document gives them.
    for (method, path) in [("GET", "/api/v1/nope"), ("POST", "/api/v2/chat/threads")] {
        let resp = s.client.send(method, path, &[], None).await.unwrap();
        let spec = api.doc["components"]["responses"]["NoSuchRoute"].clone();
        api.ok(resp.status == 404, || format!("{path}: {}", resp.status));
        api.check_response(&spec, "/components/responses/NoSuchRoute", path, &resp);
    }
    for (method, path, allow) in [
        ("DELETE", THREADS, "GET, POST"),
        ("POST", PROFILE, "GET, PUT"),
        ("POST", "/health", "GET"),
    ] {
        let resp = s.client.send(method, path, &[], None).await.unwrap();
        let spec = api.doc["components"]["responses"]["MethodNotAllowed"].clone();
        api.ok(resp.status == 405, || {
            format!("{method} {path}: {}", resp.status)
        });
        api.ok(resp.header("allow") == Some(allow), || {
            format!("{path}: Allow")
        });
        api.check_response(&spec, "/components/responses/MethodNotAllowed", path, &resp);
    }

    // Internal: users.
    let key = s.internal_key.clone();
    let users = |id: &str| format!("/internal/v1/users/{id}");
    for (u, plan) in [
        (OWNER, "starter"),
        (OWNER2, "starter"),
        (ALICE, "basic"),
        (BOB, "basic"),
        (MALLORY, "basic"),
        (BASIC, "basic"),
        (RATER, "basic"),
        (PLANNER, "basic"),
    ] {
        let b = api
            .expect(
                req("PUT", USERS, users(u)).internal(&key).json(
                    json!({"email": format!("{u}@example.com"), "display_name": "U", "plan": plan}),
                ),
                200,
            )
            .await;
        assert_eq!(b["plan"], plan);
    }
    api.expect(
        req("PUT", USERS, users(NOBODY))
            .internal(&key)
            .json(json!({})),
        200,
    )
    .await;
    api.bad(
        req("PUT", USERS, users("nope"))
            .internal(&key)
            .json(json!({})),
        400,
        true,
    )
    .await;
    api.bad(
        req("PUT", USERS, users(NOBODY))
            .internal(&key)
            .json(json!({"role": "admin"})),
        400,
        true,
    )
    .await;
    api.bad(
        req("PUT", USERS, users(NOBODY))
            .internal(&key)
            .json(json!({"plan": "gold"})),
        400,
        false,
    )
    .await;
    api.bad(
        req("PUT", USERS, users(NOBODY))
            .internal(&key)
            .json(json!({"email": "e".repeat(321)})),
        400,
        true,
    )
    .await;
    api.bad(
        req("PUT", USERS, users(NOBODY))
            .internal(&key)
            .json(json!([1])),
        400,
        true,
    )
    .await;
    api.expect(
        req("PUT", USERS, users(NOBODY))
            .internal(&key)
            .raw(b"{\"plan\":"),
        400,
    )
    .await;
    api.expect(req("PUT", USERS, users(NOBODY)).json(json!({})), 401)
        .await;
    api.expect(
        req("PUT", USERS, users(NOBODY))
            .internal(&unknown_token(TokenKind::InternalKey))
            .json(json!({})),
        401,
    )
    .await;
    api.expect(
        req("PUT", USERS, users(NOBODY))
            .bearer(&s.jwt(ALICE))
            .json(json!({})),
        403,
    )
    .await;
    api.expect(
        req("PUT", USERS, users(NOBODY))
            .internal(&key)
            .raw(&vec![b' '; 70 * 1024]),
        413,
    )
    .await;
    let mut last = 0;
    for plan in [
        "starter", "basic", "starter", "basic", "starter", "basic", "starter",
    ] {
        let r = api
            .any(
                req("PUT", USERS, users(PLANNER))
                    .internal(&key)
                    .json(json!({"plan": plan})),
            )
            .await;
        last = r.status;
        if r.status == 429 {
            break;
        }
        api.ok(r.status == 200, || format!("plan change: {}", r.status));
    }
    api.ok(last == 429, || "plan changes never reached 429".into());

    let owner = s.jwt(OWNER);
    let owner2 = s.jwt(OWNER2);
    let alice = s.jwt(ALICE);
    let bob = s.jwt(BOB);
    let mallory = s.jwt(MALLORY);
    let basic = s.jwt(BASIC);

    // Tokens.
    let t = api
        .expect(
            req("POST", TOKENS, TOKENS)
                .bearer(&owner)
                .json(json!({"agent_actor_id": AGENT, "agent_display_name": "Helper"})),
            201,
        )
        .await;
    let token_id = t["token_id"].as_str().unwrap().to_string();
    let raw = t["raw_token"].as_str().unwrap().to_string();
    let expires = (std::time::SystemTime::now() + Duration::from_secs(86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t2 = api
        .expect(
            req("POST", TOKENS, TOKENS).bearer(&owner).json(json!({
                "agent_actor_id": AGENT2,
                "expires_at": iso(expires),
            })),
            201,
        )
        .await;
    api.ok(t2["expires_at"].is_string(), || "expires_at echoed".into());
    let raw2 = t2["raw_token"].as_str().unwrap().to_string();
    api.bad(
        req("POST", TOKENS, TOKENS)
            .bearer(&basic)
            .json(json!({"agent_actor_id": AGENT2})),
        403,
        false,
    )
    .await;
    api.bad(
        req("POST", TOKENS, TOKENS)
            .bearer(&owner2)
            .json(json!({"agent_actor_id": AGENT})),
        403,
        false,
    )
    .await;
    for body in [
        json!({}),
        json!({"agent_actor_id": "agent:xyz"}),
        json!({"agent_actor_id": AGENT, "scope": "all"}),
        json!({"agent_actor_id": AGENT, "expires_at": "soon"}),
        json!({"agent_actor_id": AGENT, "agent_display_name": 5}),
    ] {
        api.bad(
            req("POST", TOKENS, TOKENS).bearer(&owner).json(body),
            400,
            true,
        )
        .await;
    }
    api.bad(
        req("POST", TOKENS, TOKENS)
            .bearer(&owner)
            .json(json!({"agent_actor_id": AGENT, "expires_at": "2001-01-01T00:00:00Z"})),
        400,
        false,
    )
    .await;
    api.expect(
        req("POST", TOKENS, TOKENS).json(json!({"agent_actor_id": AGENT})),
        401,
    )
    .await;
    api.expect(
        req("POST", TOKENS, TOKENS)
            .bearer(&raw)
            .json(json!({"agent_actor_id": AGENT})),
        403,
    )
    .await;
    let list = api
        .expect(req("GET", TOKENS, TOKENS).bearer(&owner), 200)
        .await;
    api.ok(list["tokens"].as_array().map(Vec::len) == Some(2), || {
        format!("two tokens listed: {list}")
    });
    api.ok(!list.to_string().contains(&raw[8..]), || {
        "listing leaks a token".into()
    });
    api.expect(req("GET", TOKENS, TOKENS), 401).await;
    api.expect(req("GET", TOKENS, TOKENS).bearer(&raw), 403)
        .await;
    api.expect(req("GET", TOKENS, TOKENS).bearer("not.a.jwt"), 401)
        .await;

    // Threads.
    let th = api
        .expect(
            req("POST", THREADS, THREADS).bearer(&raw).json(json!({
                "target_user_ids": [ALICE, BOB],
                "initial_message": "hello",
                "participation_mode": "open",
            })),
            200,
        )
        .await;
    let tid = th["thread_id"].as_str().unwrap().to_string();
    api.ok(
        th["created"] == true && th["last_message_at"].is_string(),
        || format!("{th}"),
    );
    let again = api
        .expect(
            req("POST", THREADS, THREADS)
                .bearer(&raw)
                .json(json!({"target_user_ids": [BOB, ALICE]})),
            200,
        )
        .await;
    api.ok(
        again["created"] == false && again["thread_id"] == tid.as_str(),
        || "deduplicated".into(),
    );
    let th2 = api
        .expect(
            req("POST", THREADS, THREADS)
                .bearer(&alice)
                .json(json!({"target_user_ids": [BOB]})),
            200,
        )
        .await;
    let tid2 = th2["thread_id"].as_str().unwrap().to_string();
    api.ok(th2["last_message_at"].is_null(), || "empty thread".into());
    for (body, rejects) in [
        (json!([1, 2]), true),
        (json!({}), true),
        (json!({"target_user_ids": ["zzz"]}), true),
        (json!({"target_user_ids": []}), true),
        (
            json!({"target_user_ids": [BOB], "participation_mode": "loud"}),
            true,
        ),
        (json!({"target_user_ids": [BOB], "extra": 1}), true),
        (
            json!({"target_user_ids": [BOB], "initial_message": ""}),
            true,
        ),
        (
            json!({"target_user_ids": [BOB], "initial_message": "x".repeat(5001)}),
            true,
        ),
        (json!({"target_user_ids": [ALICE]}), false),
    ] {
        api.bad(
            req("POST", THREADS, THREADS).bearer(&alice).json(body),
            400,
            rejects,
        )
        .await;
    }
    // A user id never seen before is provisioned (basic), so the answer is the same as for a
    // known user and does not reveal whether the id existed.
    let unseen = api
        .expect(
            req("POST", THREADS, THREADS)
                .bearer(&alice)
                .json(json!({"target_user_ids": [NOBODY.replace("ff", "fe")]})),
            200,
        )
        .await;
    api.ok(unseen["created"] == true, || format!("{unseen}"));
    api.expect(
        req("POST", THREADS, THREADS).json(json!({"target_user_ids": [BOB]})),
        401,
    )
    .await;
    api.expect(req("POST", THREADS, THREADS).bearer(&alice).raw(b"{]"), 400)
        .await;
    api.expect(req("POST", THREADS, THREADS).bearer(&alice).raw(b""), 400)
        .await;
    api.expect(
        req("POST", THREADS, THREADS)
            .bearer(&alice)
            .raw(&vec![b'a'; 70 * 1024]),
        413,
    )
    .await;

    // Messages.
    let msgs = format!("/api/v1/chat/threads/{tid}/messages");
    api.expect(
        req("POST", MESSAGES, &msgs)
            .bearer(&alice)
            .json(json!({"content": "hi"})),
        200,
    )
    .await;
    let first = api
        .expect(
            req("POST", MESSAGES, &msgs).bearer(&alice).json(json!({
                "content": "with key",
                "client_message_id": "k1",
                "mentions": [format!("user:{BOB}"), AGENT],
                "metadata": {"lang": "en"},
            })),
            200,
        )
        .await;
    let replay = api
        .expect(
            req("POST", MESSAGES, &msgs).bearer(&alice).json(json!({
                "content": "with key",
                "client_message_id": "k1",
            })),
            200,
        )
        .await;
    api.ok(
        replay["replayed"] == true && replay["message_id"] == first["message_id"],
        || "replay returns the first message".into(),
    );
    api.expect(
        req("POST", MESSAGES, &msgs)
            .bearer(&alice)
            .json(json!({"content": "other", "client_message_id": "k1"})),
        409,
    )
    .await;
    for (body, rejects) in [
        (json!({"content": "x".repeat(5001)}), true),
        (json!({"content": ""}), true),
        (json!({"content": 5}), true),
        (json!({}), true),
        (json!({"content": "hi", "base_seq": 1}), true),
        (json!({"content": "hi", "mentions": "bob"}), true),
        (json!({"content": "hi", "metadata": "x"}), true),
        (
            json!({"content": "hi", "mentions": [format!("user:{MALLORY}")]}),
            false,
        ),
    ] {
        api.bad(
            req("POST", MESSAGES, &msgs).bearer(&alice).json(body),
            400,
            rejects,
        )
        .await;
    }
    api.expect(
        req("POST", MESSAGES, &msgs)
            .bearer(&mallory)
            .json(json!({"content": "x"})),
        404,
    )
    .await;
    api.expect(
        req("POST", MESSAGES, "/api/v1/chat/threads/not-a-uuid/messages")
            .bearer(&alice)
            .json(json!({"content": "x"})),
        400,
    )
    .await;
    api.expect(
        req("POST", MESSAGES, &msgs)
            .bearer(&raw)
            .json(json!({"content": "x"})),
        403,
    )
    .await;
    api.expect(
        req("POST", MESSAGES, &msgs).json(json!({"content": "x"})),
        401,
    )
    .await;

    // Agent messages: freshness.
    let am = format!("/api/v1/chat/threads/{tid}/agent-messages");
    let fresh = api
        .expect(
            req("POST", AGENT_MESSAGES, &am).bearer(&raw).json(json!({
                "content": "fresh", "base_seq": 3, "latest_seen_seq": 3, "client_message_id": "a1",
            })),
            200,
        )
        .await;
    api.ok(fresh["stale"] == false, || format!("{fresh}"));
    let stale = api
        .expect(
            req("POST", AGENT_MESSAGES, &am)
                .bearer(&raw)
                .json(json!({"content": "stale", "base_seq": 1})),
            200,
        )
        .await;
    api.ok(stale["stale"] == true, || format!("{stale}"));
    api.expect(
        req("POST", AGENT_MESSAGES, &am)
            .bearer(&alice)
            .json(json!({"content": "user too"})),
        200,
    )
    .await;
    api.expect(
        req("POST", AGENT_MESSAGES, &am)
            .bearer(&raw)
            .json(json!({"content": "changed", "client_message_id": "a1"})),
        409,
    )
    .await;
    for body in [
        json!({"content": "x", "base_seq": -1}),
        json!({"content": "x", "latest_seen_seq": "two"}),
        json!({"content": "x", "mood": "happy"}),
    ] {
        api.bad(
            req("POST", AGENT_MESSAGES, &am).bearer(&raw).json(body),
            400,
            true,
        )
        .await;
    }
    api.expect(
        req("POST", AGENT_MESSAGES, &am)
            .bearer(&mallory)
            .json(json!({"content": "x"})),
        404,
    )
    .await;
    api.expect(
        req("POST", AGENT_MESSAGES, &am)
            .bearer(&raw2)
            .json(json!({"content": "x"})),
        404,
    )
    .await;

    // Events: poll.
    let ev = format!("/api/v1/chat/threads/{tid}/events");
    let page = api
        .expect(
            req("GET", EVENTS, format!("{ev}?after_seq=0&limit=2")).bearer(&bob),
            200,
        )
        .await;
    api.ok(page["has_more"] == true && page["last_seq"] == 2, || {
        format!("{page}")
    });
    let page = api
        .expect(
            req("GET", EVENTS, format!("{ev}?last_thread_seq=2")).bearer(&bob),
            200,
        )
        .await;
    api.ok(page["has_more"] == false, || format!("{page}"));
    let total = page["last_seq"].as_i64().unwrap();
    api.expect(req("GET", EVENTS, &ev).bearer(&raw), 200).await;
    api.expect(
        req("GET", EVENTS, format!("{ev}?limit=200")).bearer(&alice),
        200,
    )
    .await;
    for q in [
        "after_seq=-1",
        "limit=0",
        "limit=201",
        "after_seq=abc",
        "last_thread_seq=-5",
    ] {
        api.bad(
            req("GET", EVENTS, format!("{ev}?{q}")).bearer(&bob),
            400,
            true,
        )
        .await;
    }
    api.bad(
        req("GET", EVENTS, "/api/v1/chat/threads/not-a-uuid/events").bearer(&bob),
        400,
        true,
    )
    .await;
    api.expect(req("GET", EVENTS, &ev).bearer(&mallory), 404)
        .await;
    api.expect(req("GET", EVENTS, &ev), 401).await;

    // Events: stream.
    let st = format!("/api/v1/chat/threads/{tid}/events/stream");
    let want = format!("id: {total}\n");
    let hdrs = vec![("authorization".to_string(), format!("Bearer {bob}"))];
    let resp = sse(
        &s.client,
        &format!("{st}?after_seq=2"),
        &hdrs,
        Duration::from_secs(10),
        |t| t.contains(&want),
    )
    .await;
    api.ok(resp.status == 200, || format!("stream: {}", resp.status));
    api.check("GET", STREAM, &resp);
    let text = String::from_utf8_lossy(&resp.body).to_string();
    let data_ptr = format!(
        "{}/responses/200/content/text~1event-stream/x-event-data-schema",
        Api::op_pointer("GET", STREAM)
    );
    let mut frames = 0;
    for block in text.split("\n\n").filter(|b| b.starts_with("id: ")) {
        let mut lines = block.lines();
        let id: i64 = lines.next().unwrap()[4..].parse().unwrap();
        let event = lines.next().unwrap_or("");
        let data: Value =
            serde_json::from_str(&lines.next().unwrap_or("")["data: ".len()..]).unwrap();
        api.ok(event == "event: message_committed", || block.to_string());
        api.ok(data["thread_seq"] == id, || block.to_string());
        let errs = api.errors(&data_ptr, &data);
        api.ok(errs.is_empty(), || format!("SSE data: {errs:?}"));
        frames += 1;
    }
    api.ok(frames == total - 2, || {
        format!("{frames} frames for seq 3..={total}:\n{text}")
    });
    let resp = sse(
        &s.client,
        &st,
        &[
            ("authorization".to_string(), format!("Bearer {raw}")),
            ("last-event-id".to_string(), (total - 1).to_string()),
        ],
        Duration::from_secs(10),
        |t| t.contains(&want),
    )
    .await;
    api.ok(
        resp.status == 200
            && !String::from_utf8_lossy(&resp.body).contains(&format!("id: {}\n", total - 1)),
        || "Last-Event-ID resumes after it".into(),
    );
    api.check("GET", STREAM, &resp);
    api.bad(
        req("GET", STREAM, format!("{st}?after_seq=-1")).bearer(&bob),
        400,
        true,
    )
    .await;
    api.expect(req("GET", STREAM, &st).bearer(&mallory), 404)
        .await;
    api.expect(req("GET", STREAM, &st), 401).await;
    api.expect(
        req("GET", STREAM, "/api/v1/chat/threads/xyz/events/stream").bearer(&bob),
        400,
    )
    .await;

    // Mode.
    let mode = format!("/api/v1/chat/threads/{tid}/mode");
    let m = api
        .expect(
            req("POST", MODE, &mode)
                .bearer(&raw)
                .json(json!({"participation_mode": "invocation_only"})),
            200,
        )
        .await;
    api.ok(m["participation_mode"] == "invocation_only", || {
        format!("{m}")
    });
    api.expect(
        req("POST", MODE, &mode)
            .bearer(&alice)
            .json(json!({"participation_mode": "open"})),
        403,
    )
    .await;
    api.expect(
        req("POST", MODE, &mode)
            .bearer(&mallory)
            .json(json!({"participation_mode": "open"})),
        404,
    )
    .await;
    for body in [
        json!({"participation_mode": "loud"}),
        json!({}),
        json!({"participation_mode": "open", "x": 1}),
    ] {
        api.bad(req("POST", MODE, &mode).bearer(&raw).json(body), 400, true)
            .await;
    }

    // Webhooks: not implemented, after the thread and capability checks.
    let wh = format!("/api/v1/chat/threads/{tid}/webhooks");
    let hook = json!({"callback_url": "https://example.org/hook"});
    api.expect(
        req("POST", WEBHOOKS, &wh).bearer(&raw).json(hook.clone()),
        501,
    )
    .await;
    api.expect(
        req("POST", WEBHOOKS, &wh).bearer(&alice).json(hook.clone()),
        403,
    )
    .await;
    api.expect(
        req("POST", WEBHOOKS, &wh)
            .bearer(&mallory)
            .json(hook.clone()),
        404,
    )
    .await;
    let whd = format!("{wh}/{NOBODY}");
    api.expect(req("DELETE", WEBHOOK, &whd).bearer(&raw), 501)
        .await;
    api.expect(req("DELETE", WEBHOOK, &whd).bearer(&mallory), 404)
        .await;
    api.expect(
        req(
            "DELETE",
            WEBHOOK,
            format!("/api/v1/chat/threads/zz/webhooks/{NOBODY}"),
        )
        .bearer(&raw),
        400,
    )
    .await;

    // Thread list with cursor pagination, and one thread.
    let mut cursor: Option<String> = None;
    let mut listed = BTreeSet::new();
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("{THREADS}?limit=1&cursor={c}"),
            None => format!("{THREADS}?limit=1"),
        };
        let page = api
            .expect(req("GET", THREADS, path).bearer(&alice), 200)
            .await;
        for t in page["threads"].as_array().unwrap() {
            listed.insert(t["thread_id"].as_str().unwrap().to_string());
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    api.ok(
        cursor.is_none() && listed.contains(&tid) && listed.contains(&tid2),
        || format!("pages: {listed:?}"),
    );
    api.expect(req("GET", THREADS, THREADS).bearer(&alice), 200)
        .await;
    api.bad(
        req("GET", THREADS, format!("{THREADS}?limit=0")).bearer(&alice),
        400,
        true,
    )
    .await;
    api.bad(
        req("GET", THREADS, format!("{THREADS}?cursor=garbage")).bearer(&alice),
        400,
        false,
    )
    .await;
    api.expect(req("GET", THREADS, THREADS).bearer(&raw), 403)
        .await;
    api.expect(req("GET", THREADS, THREADS), 401).await;
    let one = format!("/api/v1/chat/threads/{tid}");
    let t = api
        .expect(req("GET", THREAD, &one).bearer(&alice), 200)
        .await;
    api.ok(
        t["participants"].as_array().map(Vec::len) == Some(3),
        || format!("{t}"),
    );
    api.expect(req("GET", THREAD, &one).bearer(&mallory), 404)
        .await;
    api.expect(
        req("GET", THREAD, format!("{THREADS}/{NOBODY}")).bearer(&alice),
        404,
    )
    .await;
    api.bad(
        req("GET", THREAD, format!("{THREADS}/not-a-uuid")).bearer(&alice),
        400,
        true,
    )
    .await;
    api.expect(req("GET", THREAD, &one).bearer(&raw), 403).await;
    api.expect(req("GET", THREAD, &one), 401).await;

    // Agent profile.
    api.expect(req("GET", PROFILE, PROFILE).bearer(&owner), 404)
        .await;
    api.expect(req("GET", PROFILE, PROFILE).bearer(&basic), 403)
        .await;
    api.expect(req("GET", PROFILE, PROFILE).bearer(&raw), 403)
        .await;
    api.expect(req("GET", PROFILE, PROFILE), 401).await;
    let p = api
        .expect(
            req("PUT", PROFILE, PROFILE).bearer(&owner).json(json!({
                "custom_slug": "helpful-bot",
                "display_name": "Helpful",
                "welcome_message": "Hi!",
            })),
            200,
        )
        .await;
    api.ok(p["workspace_thread_id"].is_string(), || format!("{p}"));
    api.expect(
        req("PUT", PROFILE, PROFILE).bearer(&owner).json(json!({})),
        200,
    )
    .await;
    api.expect(req("GET", PROFILE, PROFILE).bearer(&owner), 200)
        .await;
    api.expect(
        req("PUT", PROFILE, PROFILE)
            .bearer(&owner2)
            .json(json!({"custom_slug": "helpful-bot"})),
        409,
    )
    .await;
    api.expect(
        req("PUT", PROFILE, PROFILE)
            .bearer(&owner2)
            .json(json!({"custom_slug": null})),
        200,
    )
    .await;
    for body in [
        json!({"custom_slug": "Bad Slug!"}),
        json!({"is_active": "yes"}),
        json!({"nickname": "x"}),
        json!({"welcome_message": "w".repeat(5001)}),
    ] {
        api.bad(
            req("PUT", PROFILE, PROFILE).bearer(&owner).json(body),
            400,
            true,
        )
        .await;
    }
    api.expect(
        req("PUT", PROFILE, PROFILE).bearer(&basic).json(json!({})),
        403,
    )
    .await;
    // Below starter only {"is_active": false} is accepted (switching a page off): no page here.
    api.expect(
        req("PUT", PROFILE, PROFILE)
            .bearer(&basic)
            .json(json!({"is_active": false})),
        404,
    )
    .await;

    // Public visitors. visitor_send allows 10 a minute per IP: requests are counted below.
    let ps = "/api/v1/public/agents/helpful-bot/messages";
    let v1 = api
        .expect(
            req("POST", PUBLIC_SEND, ps).json(json!({"email": "v@example.org", "content": "hi"})),
            200,
        )
        .await;
    let vtoken = v1["visitor_token"]
        .as_str()
        .expect("visitor_token")
        .to_string();
    let vthread = v1["thread_id"].as_str().unwrap().to_string();
    let v2 = api
        .expect(
            req("POST", PUBLIC_SEND, ps).bearer(&vtoken).json(json!({
                "email": "V@example.org", "content": "again", "client_message_id": "v1",
            })),
            200,
        )
        .await;
    api.ok(
        v2.get("visitor_token").is_none() && v2["thread_id"] == vthread.as_str(),
        || format!("{v2}"),
    );
    // A returning visitor is known by its token: the email may be left out.
    let v3 = api
        .expect(
            req("POST", PUBLIC_SEND, ps)
                .bearer(&vtoken)
                .json(json!({"content": "no email"})),
            200,
        )
        .await;
    api.ok(v3["thread_id"] == vthread.as_str(), || format!("{v3}"));
    api.expect(
        req("POST", PUBLIC_SEND, ps).json(json!({
            "email": "v@example.org", "content": "changed", "client_message_id": "v1",
        })),
        409,
    )
    .await;
    api.expect(
        req(
            "POST",
            PUBLIC_SEND,
            "/api/v1/public/agents/no-such-bot/messages",
        )
        .json(json!({"email": "v@example.org", "content": "hi"})),
        404,
    )
    .await;
    for body in [
        json!({"email": "nope", "content": "hi"}),
        json!({"email": "v@example.org"}),
        json!({"email": "v@example.org", "content": "hi", "name": "V"}),
    ] {
        api.bad(req("POST", PUBLIC_SEND, ps).json(body), 400, true)
            .await;
    }
    // 8 counted so far; this one is not (credential kind refused before the limit).
    api.expect(
        req("POST", PUBLIC_SEND, ps)
            .bearer(&alice)
            .json(json!({"email": "v@example.org", "content": "hi"})),
        403,
    )
    .await;
    let pe = format!("/api/v1/public/threads/{vthread}/events");
    let vp = api
        .expect(req("GET", PUBLIC_EVENTS, &pe).bearer(&vtoken), 200)
        .await;
    api.ok(vp["events"].as_array().map(Vec::len) == Some(3), || {
        format!("{vp}")
    });
    api.expect(
        req("GET", PUBLIC_EVENTS, format!("{pe}?after_seq=1&limit=1")).bearer(&vtoken),
        200,
    )
    .await;
    api.bad(
        req("GET", PUBLIC_EVENTS, format!("{pe}?limit=0")).bearer(&vtoken),
        400,
        true,
    )
    .await;
    api.expect(
        req(
            "GET",
            PUBLIC_EVENTS,
            format!("/api/v1/public/threads/{tid}/events"),
        )
        .bearer(&vtoken),
        404,
    )
    .await;
    api.expect(req("GET", PUBLIC_EVENTS, &pe), 401).await;
    api.expect(req("GET", PUBLIC_EVENTS, &pe).bearer(&alice), 403)
        .await;
    api.expect(
        req("GET", PUBLIC_EVENTS, &pe).bearer(&unknown_token(TokenKind::Visitor)),
        401,
    )
    .await;
    api.expect(
        req("POST", THREADS, THREADS)
            .bearer(&vtoken)
            .json(json!({"target_user_ids": [BOB]})),
        403,
    )
    .await;
    // More credential errors: a visitor token outside the public routes, none at all, a
    // malformed one (refused by the shim itself).
    api.expect(req("GET", EVENTS, &ev).bearer(&vtoken), 403)
        .await;
    api.expect(req("GET", STREAM, &st).bearer(&vtoken), 403)
        .await;
    api.expect(
        req("POST", AGENT_MESSAGES, &am).json(json!({"content": "x"})),
        401,
    )
    .await;
    api.expect(
        req("POST", MODE, &mode).json(json!({"participation_mode": "open"})),
        401,
    )
    .await;
    api.expect(req("POST", WEBHOOKS, &wh).json(hook.clone()), 401)
        .await;
    api.expect(req("PUT", PROFILE, PROFILE).json(json!({})), 401)
        .await;
    api.expect(
        req("POST", PUBLIC_SEND, ps)
            .bearer("ama_vst_123")
            .json(json!({"email": "v@example.org", "content": "hi"})),
        401,
    )
    .await;
    api.expect(
        req("POST", MESSAGES, &msgs)
            .bearer(&alice)
            .raw(&vec![b' '; 70 * 1024]),
        413,
    )
    .await;
    api.bad(
        req("POST", WEBHOOKS, "/api/v1/chat/threads/nope/webhooks")
            .bearer(&alice)
            .json(hook.clone()),
        400,
        true,
    )
    .await;

    // Internal: system messages.
    let sys = format!("/internal/v1/threads/{tid2}/system-messages");
    let sm = api
        .expect(
            req("POST", SYSTEM, &sys).internal(&key).json(json!({
                "content": "maintenance at noon", "client_message_id": "s1", "metadata": {"kind": "notice"},
            })),
            200,
        )
        .await;
    api.ok(sm["thread_seq"] == 1, || format!("{sm}"));
    let ev2 = api
        .expect(
            req("GET", EVENTS, format!("/api/v1/chat/threads/{tid2}/events")).bearer(&bob),
            200,
        )
        .await;
    api.ok(ev2["events"][0]["role"] == "system", || format!("{ev2}"));
    api.expect(
        req("POST", SYSTEM, &sys)
            .internal(&key)
            .json(json!({"content": "other", "client_message_id": "s1"})),
        409,
    )
    .await;
    api.expect(
        req(
            "POST",
            SYSTEM,
            format!("/internal/v1/threads/{NOBODY}/system-messages"),
        )
        .internal(&key)
        .json(json!({"content": "x"})),
        404,
    )
    .await;
    for body in [
        json!({"content": ""}),
        json!({"content": "x", "mentions": []}),
        json!({}),
    ] {
        api.bad(
            req("POST", SYSTEM, &sys).internal(&key).json(body),
            400,
            true,
        )
        .await;
    }
    api.bad(
        req("POST", SYSTEM, "/internal/v1/threads/nope/system-messages")
            .internal(&key)
            .json(json!({"content": "x"})),
        400,
        true,
    )
    .await;
    api.expect(
        req("POST", SYSTEM, &sys)
            .bearer(&alice)
            .json(json!({"content": "x"})),
        403,
    )
    .await;
    api.expect(req("POST", SYSTEM, &sys).json(json!({"content": "x"})), 401)
        .await;

    // Revocation.
    let tok = format!("{TOKENS}/{token_id}");
    api.expect(req("DELETE", TOKEN, &tok).bearer(&basic), 404)
        .await;
    let rv = api
        .expect(req("DELETE", TOKEN, &tok).bearer(&owner), 200)
        .await;
    let rv2 = api
        .expect(req("DELETE", TOKEN, &tok).bearer(&owner), 200)
        .await;
    api.ok(rv["revoked_at"] == rv2["revoked_at"], || {
        "revocation is permanent".into()
    });
    api.expect(
        req("DELETE", TOKEN, format!("{TOKENS}/{NOBODY}")).bearer(&owner),
        404,
    )
    .await;
    api.bad(
        req("DELETE", TOKEN, format!("{TOKENS}/nope")).bearer(&owner),
        400,
        true,
    )
    .await;
    api.expect(req("DELETE", TOKEN, &tok).bearer(&raw2), 403)
        .await;
    api.expect(req("DELETE", TOKEN, &tok), 401).await;
    api.expect(req("GET", EVENTS, &ev).bearer(&raw), 401).await;
    let list = api
        .expect(req("GET", TOKENS, TOKENS).bearer(&owner), 200)
        .await;
    let revoked = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token_id"] == token_id.as_str())
        .cloned()
        .unwrap_or_default();
    api.ok(
        revoked["is_active"] == false && revoked["revoked_at"].is_string(),
        || format!("{revoked}"),
    );

    // Rate limits: thread_write (60 a minute per credential) on agent messages.
    let rater = s.jwt(RATER);
    let rt = api
        .expect(
            req("POST", THREADS, THREADS)
                .bearer(&rater)
                .json(json!({"target_user_ids": [BOB]})),
            200,
        )
        .await;
    let ram = format!(
        "/api/v1/chat/threads/{}/agent-messages",
        rt["thread_id"].as_str().unwrap()
    );
    let mut limited = false;
    for i in 0..150 {
        let r = api
            .any(
                req("POST", AGENT_MESSAGES, &ram)
                    .bearer(&rater)
                    .json(json!({"content": format!("m{i}")})),
            )
            .await;
        if r.status == 429 {
            api.ok(
                r.header("ratelimit-policy")
                    .is_some_and(|p| p.contains("thread_write")),
                || format!("{:?}", r.headers),
            );
            limited = true;
            break;
        }
        api.ok(r.status == 200, || {
            format!("agent message {i}: {}", r.status)
        });
    }
    api.ok(limited, || "thread_write never answered 429".into());
    // visitor_send (10 a minute per IP).
    let mut limited = false;
    for i in 0..20 {
        let r = api
            .any(
                req("POST", PUBLIC_SEND, ps)
                    .json(json!({"email": "w@example.org", "content": format!("p{i}")})),
            )
            .await;
        if r.status == 429 {
            limited = true;
            break;
        }
    }
    api.ok(limited, || "visitor_send never answered 429".into());
    // Failed authentications from this IP: soon further failing agent tokens answer 429, but a
    // credential that verifies is always served (others' failures never lock a valid user out).
    let bad = unknown_token(TokenKind::Agent);
    let mut limited = false;
    for _ in 0..15 {
        let r = api.any(req("GET", EVENTS, &ev).bearer(&bad)).await;
        if r.status == 429 {
            limited = true;
            break;
        }
        api.ok(r.status == 401, || format!("unknown token: {}", r.status));
    }
    api.ok(limited, || {
        "failed authentications never answered 429".into()
    });
    api.expect(req("GET", THREADS, THREADS).bearer(&alice), 200)
        .await;
    api.expect(req("GET", TOKENS, TOKENS).bearer(&owner), 200)
        .await;

    // The shim's own endpoints, on a second small stack: 3 requests a minute per client IP, shared
    // by the four, an IPv6 client counted by its /64; /metrics only for --metrics-allow (loopback
    // by default), anyone else 404 as for an unknown path. Its peer is a trusted proxy here, so
    // X-Forwarded-For names the client.
    let small = Stack::start(&[
        "--shim-endpoint-limit",
        "3",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    let shim_ops = ["/health", "/ready", "/metrics", "/api/v1/openapi.json"];
    let r = small
        .client
        .send("GET", "/metrics", &[("x-forwarded-for", "192.0.2.1")], None)
        .await
        .unwrap();
    api.ok(r.status == 404, || format!("hidden /metrics: {}", r.status));
    api.check("GET", "/metrics", &r);
    for (i, path) in shim_ops.iter().chain(&shim_ops).enumerate() {
        let r = small.client.get(path, None).await;
        let want = if i < 3 { 200 } else { 429 };
        api.ok(r.status == want, || format!("{path} #{i}: {}", r.status));
        api.ok(want == 200 || r.header("retry-after").is_some(), || {
            format!("{path}: 429 without Retry-After")
        });
        api.check("GET", path, &r);
    }
    for (ip, want) in [
        ("2001:db8:1:2::1", 200),
        ("2001:db8:1:2::1", 200),
        ("2001:db8:1:2::1", 200),
        ("2001:db8:1:2:ffff::2", 429),
        ("2001:db8:1:3::1", 200),
    ] {
        let r = small
            .client
            .send("GET", "/health", &[("x-forwarded-for", ip)], None)
            .await
            .unwrap();
        api.ok(r.status == want, || {
            format!("/health from {ip}: {}", r.status)
        });
        api.check("GET", "/health", &r);
    }
    drop(small);

    // Database down: 503.
    s.cluster.stop().expect("stop the cluster");
    api.expect(req("GET", "/ready", "/ready"), 503).await;
    api.expect(req("GET", PUBLIC_EVENTS, &pe).bearer(&vtoken), 503)
        .await;
    api.expect(req("GET", "/health", "/health"), 200).await;

    // Coverage: every operation answered its success status (webhooks: 501), and at least one
    // error status wherever it declares some.
    let mut report = String::new();
    for (path, item) in api.doc["paths"].as_object().unwrap().clone() {
        for (method, op) in item.as_object().unwrap() {
            let key = (method.to_ascii_uppercase(), path.clone());
            let seen = api.seen.get(&key).cloned().unwrap_or_default();
            let declared: BTreeSet<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .filter_map(|k| k.parse().ok())
                .collect();
            let success = declared.iter().copied().find(|c| *c < 300).unwrap_or(200);
            let expect_ok = if path.contains("/webhooks") {
                501
            } else {
                success
            };
            api.ok(seen.contains(&expect_ok), || {
                format!("{key:?}: {expect_ok} never seen")
            });
            if declared.iter().any(|c| *c >= 400) {
                api.ok(seen.iter().any(|c| *c >= 400), || {
                    format!("{key:?}: no error exercised")
                });
            }
            report.push_str(&format!(
                "{:<7} {:<62} seen {:?}  not exercised {:?}\n",
                key.0,
                key.1,
                seen,
                declared.difference(&seen).collect::<Vec<_>>()
            ));
        }
    }
    println!("{report}");
    println!("openapi conformance: {} assertions", api.assertions);
}

/// RFC 3339 UTC for seconds since the epoch.
fn iso(secs: u64) -> String {
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
