//! The OpenAPI document against the route table and the running API, end to end over TLS.
//!
//! The document (`shim/openapi.json`) must list exactly the operations of the shim's route table
//! (`ama_shim::routes::ROUTES`), and the table's API routes must be exactly the rows of
//! `ama.routes` in a fresh cluster. Then every operation is exercised, one case table per
//! resource (success and the main error statuses), and each response is checked against the
//! document: the status must be one the operation declares, required headers must be present and
//! match their schemas, and the body must match the declared media type's JSON Schema (`$ref`s
//! resolved, formats asserted). Requests the server accepts must be valid against the declared
//! parameters and request body; for the bad inputs a case says whether the document rejects them
//! too ([`Doc::Rejects`]) or only the server can ([`Doc::Accepts`]).
//!
//! One stack serves every table, in order (later tables use the tokens, threads and profile
//! earlier ones created); a failure names the table and the row.

use ama_core::token::TokenKind;
use ama_shim::routes::{api_route_names, Route, ROUTES};
use ama_tests::client::{Client, Response};
use ama_tests::fixtures::{
    fill, iso, now_secs, unknown_token, AGENT, AGENT2, ALICE, BASIC, BOB, MALLORY, NOBODY, OWNER,
    OWNER2, PLANNER, RATER, UNSEEN,
};
use ama_tests::stack::Stack;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

const DOC_FILE: &str = include_str!("../../shim/openapi.json");

/// The route called `name` ([`Target::name`]: an `ama.routes` name, `events.stream`, or the name
/// of one of the shim's own endpoints).
fn route(name: &str) -> &'static Route {
    ROUTES
        .iter()
        .find(|r| r.target.name() == name)
        .unwrap_or_else(|| panic!("no route {name} in ama_shim::routes::ROUTES"))
}

/// (METHOD, path pattern) of every route of the table.
fn table_operations() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect()
}

/// (METHOD, path) of every operation of an OpenAPI document.
fn document_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

/// What one list has that the other lacks, both ways, in words.
fn disagreements<T: Ord + std::fmt::Debug>(
    a_name: &str,
    a: &BTreeSet<T>,
    b_name: &str,
    b: &BTreeSet<T>,
) -> Vec<String> {
    let only_a = a
        .difference(b)
        .map(|x| format!("{x:?} is in {a_name} but not in {b_name}"));
    let only_b = b
        .difference(a)
        .map(|x| format!("{x:?} is in {b_name} but not in {a_name}"));
    only_a.chain(only_b).collect()
}

/// The names of the table's database routes (`Target::Api`).
fn table_api_names() -> BTreeSet<String> {
    api_route_names().into_iter().map(str::to_string).collect()
}

/// No cluster needed: the document in the repository and the route table list the same
/// operations; and the comparison notices a difference in either direction.
#[test]
fn the_document_and_the_route_table_agree() {
    let doc: Value = serde_json::from_str(DOC_FILE).expect("shim/openapi.json is JSON");
    let (table, documented) = (table_operations(), document_operations(&doc));
    assert_eq!(table.len(), ROUTES.len(), "a route is listed twice");
    let problems = disagreements("the route table", &table, "shim/openapi.json", &documented);
    assert!(problems.is_empty(), "{problems:#?}");
    // A route missing from the document, and an operation without a route, are both reported.
    let mut fewer = doc.clone();
    let (m, p) = table.iter().next().expect("a route");
    fewer["paths"][p]
        .as_object_mut()
        .expect("path item")
        .remove(&m.to_ascii_lowercase());
    let d = disagreements(
        "the route table",
        &table,
        "the document",
        &document_operations(&fewer),
    );
    assert_eq!(
        d,
        [format!(
            "{:?} is in the route table but not in the document",
            (m, p)
        )]
    );
    let mut more = doc.clone();
    more["paths"]["/api/v1/nowhere"] = json!({"get": {}});
    let d = disagreements(
        "the route table",
        &table,
        "the document",
        &document_operations(&more),
    );
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].contains("/api/v1/nowhere") && d[0].ends_with("not in the route table"));
}

/// The same comparison for route names: `ama.routes` rows against the table's `Target::Api`.
#[test]
fn route_name_comparison_reports_both_directions() {
    let table = table_api_names();
    assert!(table.contains("events.poll") && !table.contains("events.stream"));
    let mut db = table.clone();
    db.insert("extra.route".into());
    let d = disagreements("ROUTES", &table, "ama.routes", &db);
    assert_eq!(d, ["\"extra.route\" is in ama.routes but not in ROUTES"]);
    db.remove("extra.route");
    db.remove("threads.list");
    let d = disagreements("ROUTES", &table, "ama.routes", &db);
    assert_eq!(d, ["\"threads.list\" is in ROUTES but not in ama.routes"]);
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

/// One request to send: a route of the table with its path filled in.
struct Req {
    method: &'static str,
    template: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    json: Option<Value>,
}

/// A request to the route called `name`, its `{params}` filled with `params` in order.
fn req(name: &str, params: &[&str]) -> Req {
    let r = route(name);
    Req {
        method: r.method.as_str(),
        template: r.path,
        path: fill(r.path, params),
        headers: Vec::new(),
        body: None,
        json: None,
    }
}

impl Req {
    fn query(mut self, q: &str) -> Self {
        self.path = format!("{}?{q}", self.path);
        self
    }
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

/// What the document says about a case's request, beyond declaring the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doc {
    /// Not compared: a refusal for the credential, the state or the transport (a success is
    /// always checked to be a request the document accepts).
    NotCompared,
    /// The document's parameters or request body reject the request too.
    Rejects,
    /// The document accepts the request: only the server knows the rule (a plan, an owner, a
    /// date, a cursor).
    Accepts,
}
use Doc::{Accepts, NotCompared, Rejects};

/// One row of a case table: a name, the expected status, what the document says, the request.
struct Case {
    name: String,
    status: u16,
    doc: Doc,
    req: Req,
}

fn case(name: impl Into<String>, status: u16, doc: Doc, req: Req) -> Case {
    Case {
        name: name.into(),
        status,
        doc,
        req,
    }
}

/// A case table, one row a line: `name => status, doc, request;`.
macro_rules! cases {
    ($($name:expr => $status:expr, $doc:expr, $req:expr);* $(;)?) => {
        vec![$(case($name, $status, $doc, $req)),*]
    };
}

/// The document, the checks made so far, and what was seen.
struct Api {
    client: Client,
    doc: Value,
    validators: HashMap<String, jsonschema::Validator>,
    assertions: usize,
    cases: usize,
    /// The table and row being run, named in every failure.
    table: String,
    row: String,
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

impl Api {
    fn new(client: Client, doc: Value) -> Api {
        Api {
            client,
            doc,
            validators: HashMap::new(),
            assertions: 0,
            cases: 0,
            table: String::new(),
            row: String::new(),
            seen: BTreeMap::new(),
        }
    }

    /// Starts the table `name`: failures name it until the next one starts.
    fn section(&mut self, name: &str) {
        self.table = name.to_string();
        self.row.clear();
    }

    fn ok(&mut self, cond: bool, what: impl FnOnce() -> String) {
        self.assertions += 1;
        assert!(cond, "[{}: {}] {}", self.table, self.row, what());
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
        if status == 101 {
            // switching protocols (a WebSocket): no body to check
            return;
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
        if r.template == route("events.stream").path {
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

    /// Runs one case: sends it, expects its status and checks the response against the
    /// document; a 2xx request must be valid for the document; for `Rejects` and `Accepts` the
    /// document must reject, or accept, the request. Returns the response body as JSON.
    async fn run(&mut self, c: Case) -> Value {
        self.row = c.name;
        self.cases += 1;
        let problems = self.request_problems(&c.req);
        let r = c.req;
        let resp = self.send(&r).await;
        let status = c.status;
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
            self.ok(problems.is_empty(), || {
                format!(
                    "{} {}: the server accepted a request the document rejects: {problems:?}",
                    r.method, r.path
                )
            });
        }
        if c.doc != NotCompared {
            let rejects = c.doc == Rejects;
            self.ok(problems.is_empty() != rejects, || {
                format!(
                    "{} {} {:?}: expected the document to reject it: {rejects}; problems: {problems:?}",
                    r.method, r.path, r.json
                )
            });
        }
        body
    }

    /// Runs a case table in order; returns each row's response body by row name.
    async fn table(&mut self, name: &str, cases: Vec<Case>) -> HashMap<String, Value> {
        self.section(name);
        let mut bodies = HashMap::new();
        for c in cases {
            let row = c.name.clone();
            let body = self.run(c).await;
            assert!(
                bodies.insert(row.clone(), body).is_none(),
                "[{name}] two rows named {row:?}"
            );
        }
        bodies
    }

    /// Sends and returns the raw response after checking it (status not fixed).
    async fn any(&mut self, row: impl Into<String>, r: Req) -> Response {
        self.row = row.into();
        self.cases += 1;
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

/// Credentials and ids the tables share; each table fills in what later ones use.
#[derive(Default)]
struct Ctx {
    /// The internal API key.
    key: String,
    /// User JWTs.
    owner: String,
    owner2: String,
    alice: String,
    bob: String,
    mallory: String,
    basic: String,
    /// OWNER's token for AGENT, its id, and OWNER's token for AGENT2.
    agent: String,
    token_id: String,
    agent2: String,
    /// The agent's thread with ALICE and BOB, its last sequence number, and ALICE's with BOB.
    thread: String,
    last_seq: i64,
    thread2: String,
    /// The visitor's token and thread.
    visitor: String,
    visitor_thread: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_match_the_openapi_document() {
    let s = Stack::start(&[]);
    // Route names first, while the cluster is fresh: the table's database routes are exactly
    // the rows of ama.routes.
    let rows = s
        .cluster
        .psql("postgres", "SELECT route FROM ama.routes")
        .expect("read ama.routes");
    let db: BTreeSet<String> = rows
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let problems = disagreements(
        "ama_shim::routes::ROUTES",
        &table_api_names(),
        "ama.routes",
        &db,
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(db.len() >= 18, "read {} route names", db.len());

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
    api.section("the document");
    check_document(&mut api);

    // Every route of the shim is documented, and nothing else.
    api.section("the document and the route table");
    let routes = table_operations();
    assert!(routes.len() >= 23, "{} routes", routes.len());
    let documented = document_operations(&api.doc);
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

    let mut c = Ctx {
        key: s.internal_key.clone(),
        owner: s.jwt(OWNER),
        owner2: s.jwt(OWNER2),
        alice: s.jwt(ALICE),
        bob: s.jwt(BOB),
        mallory: s.jwt(MALLORY),
        basic: s.jwt(BASIC),
        ..Ctx::default()
    };
    shim_endpoints(&mut api).await;
    unknown_routes(&mut api).await;
    internal_users(&mut api, &c).await;
    tokens(&mut api, &mut c).await;
    threads_create(&mut api, &mut c).await;
    messages(&mut api, &c).await;
    agent_messages(&mut api, &c).await;
    events(&mut api, &mut c).await;
    event_stream(&mut api, &c).await;
    mode(&mut api, &c).await;
    webhooks(&mut api, &c).await;
    threads_read(&mut api, &c).await;
    agent_profile(&mut api, &c).await;
    public(&mut api, &mut c).await;
    credentials(&mut api, &c).await;
    ws_streams(&mut api, &c).await;
    system_messages(&mut api, &c).await;
    revocation(&mut api, &c).await;
    rate_limits(&mut api, &c, s.jwt(RATER)).await;
    shim_endpoint_limits(&mut api).await;

    // Database down: 503.
    s.cluster.stop().expect("stop the cluster");
    api.table(
        "database down",
        cases![
            "ready" => 503, NotCompared, req("ready", &[]);
            "public events" => 503, NotCompared,
                req("public.events", &[&c.visitor_thread]).bearer(&c.visitor);
            "health" => 200, NotCompared, req("health", &[]);
        ],
    )
    .await;

    coverage(&mut api);
}

/// The shim's own endpoints.
async fn shim_endpoints(api: &mut Api) {
    let b = api
        .table(
            "shim endpoints",
            cases![
                "the document" => 200, NotCompared, req("openapi", &[]);
                "health" => 200, NotCompared, req("health", &[]);
                "ready" => 200, NotCompared, req("ready", &[]);
                "metrics from loopback" => 200, NotCompared, req("metrics", &[]);
            ],
        )
        .await;
    assert_eq!(b["health"]["status"], "ok");
}

/// Unknown routes and wrong methods: the Error shape the document gives them.
async fn unknown_routes(api: &mut Api) {
    api.section("unknown routes and methods");
    for (method, path) in [("GET", "/api/v1/nope"), ("POST", "/api/v2/chat/threads")] {
        api.row = format!("{method} {path}");
        let resp = api.client.send(method, path, &[], None).await.unwrap();
        let spec = api.doc["components"]["responses"]["NoSuchRoute"].clone();
        api.ok(resp.status == 404, || format!("{path}: {}", resp.status));
        api.check_response(&spec, "/components/responses/NoSuchRoute", path, &resp);
    }
    for (name, method, allow) in [
        ("threads.list", "DELETE", "GET, POST"),
        ("agent.get", "POST", "GET, PUT"),
        ("health", "POST", "GET"),
    ] {
        let path = route(name).path;
        api.row = format!("{method} {path}");
        let resp = api.client.send(method, path, &[], None).await.unwrap();
        let spec = api.doc["components"]["responses"]["MethodNotAllowed"].clone();
        api.ok(resp.status == 405, || {
            format!("{method} {path}: {}", resp.status)
        });
        api.ok(resp.header("allow") == Some(allow), || {
            format!("{path}: Allow")
        });
        api.check_response(&spec, "/components/responses/MethodNotAllowed", path, &resp);
    }
}

/// Internal: users.
async fn internal_users(api: &mut Api, c: &Ctx) {
    api.section("internal users");
    let key = c.key.as_str();
    let put = |id: &str| req("internal.users.put", &[id]);
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
            .run(case(
                format!("create {u} on {plan}"),
                200,
                NotCompared,
                put(u).internal(key).json(
                    json!({"email": format!("{u}@example.com"), "display_name": "U", "plan": plan}),
                ),
            ))
            .await;
        assert_eq!(b["plan"], plan);
    }
    api.table(
        "internal users",
        cases![
            "an empty body" => 200, NotCompared, put(NOBODY).internal(key).json(json!({}));
            "user id not a UUID" => 400, Rejects, put("nope").internal(key).json(json!({}));
            "unknown field" => 400, Rejects,
                put(NOBODY).internal(key).json(json!({"role": "admin"}));
            "unknown plan" => 400, Accepts, put(NOBODY).internal(key).json(json!({"plan": "gold"}));
            "email too long" => 400, Rejects,
                put(NOBODY).internal(key).json(json!({"email": "e".repeat(321)}));
            "body not an object" => 400, Rejects, put(NOBODY).internal(key).json(json!([1]));
            "broken JSON" => 400, NotCompared, put(NOBODY).internal(key).raw(b"{\"plan\":");
            "no credential" => 401, NotCompared, put(NOBODY).json(json!({}));
            "unknown internal key" => 401, NotCompared,
                put(NOBODY).internal(&unknown_token(TokenKind::InternalKey)).json(json!({}));
            "a user JWT" => 403, NotCompared, put(NOBODY).bearer(&c.alice).json(json!({}));
            "body over the limit" => 413, NotCompared,
                put(NOBODY).internal(key).raw(&vec![b' '; 70 * 1024]);
        ],
    )
    .await;
    let mut last = 0;
    for (i, plan) in [
        "starter", "basic", "starter", "basic", "starter", "basic", "starter",
    ]
    .into_iter()
    .enumerate()
    {
        let r = api
            .any(
                format!("plan change {i}"),
                put(PLANNER).internal(key).json(json!({"plan": plan})),
            )
            .await;
        last = r.status;
        if r.status == 429 {
            break;
        }
        api.ok(r.status == 200, || format!("plan change: {}", r.status));
    }
    api.ok(last == 429, || "plan changes never reached 429".into());
}

/// Owner API: agent tokens are issued and listed.
async fn tokens(api: &mut Api, c: &mut Ctx) {
    api.section("tokens");
    let create = || req("tokens.create", &[]);
    let t = api
        .run(case(
            "issue",
            201,
            NotCompared,
            create()
                .bearer(&c.owner)
                .json(json!({"agent_actor_id": AGENT, "agent_display_name": "Helper"})),
        ))
        .await;
    c.token_id = t["token_id"].as_str().unwrap().to_string();
    c.agent = t["raw_token"].as_str().unwrap().to_string();
    let expires = now_secs() + 86_400;
    let t2 = api
        .run(case(
            "issue with an expiry",
            201,
            NotCompared,
            create().bearer(&c.owner).json(json!({
                "agent_actor_id": AGENT2,
                "expires_at": iso(expires),
            })),
        ))
        .await;
    api.ok(t2["expires_at"].is_string(), || "expires_at echoed".into());
    c.agent2 = t2["raw_token"].as_str().unwrap().to_string();
    let owner = c.owner.as_str();
    let rows = cases![
        "basic plan" => 403, Accepts,
            create().bearer(&c.basic).json(json!({"agent_actor_id": AGENT2}));
        "another owner's agent" => 403, Accepts,
            create().bearer(&c.owner2).json(json!({"agent_actor_id": AGENT}));
        "empty body" => 400, Rejects, create().bearer(owner).json(json!({}));
        "agent id not an agent UUID" => 400, Rejects,
            create().bearer(owner).json(json!({"agent_actor_id": "agent:xyz"}));
        "unknown field" => 400, Rejects,
            create().bearer(owner).json(json!({"agent_actor_id": AGENT, "scope": "all"}));
        "expires_at not a time" => 400, Rejects,
            create().bearer(owner).json(json!({"agent_actor_id": AGENT, "expires_at": "soon"}));
        "display name not a string" => 400, Rejects,
            create().bearer(owner).json(json!({"agent_actor_id": AGENT, "agent_display_name": 5}));
        "expires_at in the past" => 400, Accepts,
            create()
                .bearer(owner)
                .json(json!({"agent_actor_id": AGENT, "expires_at": "2001-01-01T00:00:00Z"}));
        "no credential" => 401, NotCompared, create().json(json!({"agent_actor_id": AGENT}));
        "an agent token" => 403, NotCompared,
            create().bearer(&c.agent).json(json!({"agent_actor_id": AGENT}));
    ];
    api.table("tokens: issue", rows).await;
    let list = api
        .run(case(
            "list",
            200,
            NotCompared,
            req("tokens.list", &[]).bearer(owner),
        ))
        .await;
    api.ok(list["tokens"].as_array().map(Vec::len) == Some(2), || {
        format!("two tokens listed: {list}")
    });
    let raw = c.agent.clone();
    api.ok(!list.to_string().contains(&raw[8..]), || {
        "listing leaks a token".into()
    });
    let list = || req("tokens.list", &[]);
    api.table(
        "tokens: list",
        cases![
            "no credential" => 401, NotCompared, list();
            "an agent token" => 403, NotCompared, list().bearer(&c.agent);
            "not a JWT" => 401, NotCompared, list().bearer("not.a.jwt");
        ],
    )
    .await;
}

/// Threads are created (and deduplicated).
async fn threads_create(api: &mut Api, c: &mut Ctx) {
    api.section("threads: create");
    let create = || req("threads.create", &[]);
    let th = api
        .run(case(
            "an agent creates a thread",
            200,
            NotCompared,
            create().bearer(&c.agent).json(json!({
                "target_user_ids": [ALICE, BOB],
                "initial_message": "hello",
                "participation_mode": "open",
            })),
        ))
        .await;
    c.thread = th["thread_id"].as_str().unwrap().to_string();
    api.ok(
        th["created"] == true && th["last_message_at"].is_string(),
        || format!("{th}"),
    );
    let again = api
        .run(case(
            "the same participants again",
            200,
            NotCompared,
            create()
                .bearer(&c.agent)
                .json(json!({"target_user_ids": [BOB, ALICE]})),
        ))
        .await;
    api.ok(
        again["created"] == false && again["thread_id"] == c.thread.as_str(),
        || "deduplicated".into(),
    );
    let th2 = api
        .run(case(
            "a user creates a thread",
            200,
            NotCompared,
            create()
                .bearer(&c.alice)
                .json(json!({"target_user_ids": [BOB]})),
        ))
        .await;
    c.thread2 = th2["thread_id"].as_str().unwrap().to_string();
    api.ok(th2["last_message_at"].is_null(), || "empty thread".into());
    let alice = c.alice.as_str();
    let rows = cases![
        "body an array" => 400, Rejects, create().bearer(alice).json(json!([1, 2]));
        "empty body" => 400, Rejects, create().bearer(alice).json(json!({}));
        "target not a UUID" => 400, Rejects,
            create().bearer(alice).json(json!({"target_user_ids": ["zzz"]}));
        "no targets" => 400, Rejects, create().bearer(alice).json(json!({"target_user_ids": []}));
        "unknown mode" => 400, Rejects,
            create()
                .bearer(alice)
                .json(json!({"target_user_ids": [BOB], "participation_mode": "loud"}));
        "unknown field" => 400, Rejects,
            create().bearer(alice).json(json!({"target_user_ids": [BOB], "extra": 1}));
        "empty initial message" => 400, Rejects,
            create().bearer(alice).json(json!({"target_user_ids": [BOB], "initial_message": ""}));
        "initial message too long" => 400, Rejects,
            create()
                .bearer(alice)
                .json(json!({"target_user_ids": [BOB], "initial_message": "x".repeat(5001)}));
        "only oneself" => 400, Accepts,
            create().bearer(alice).json(json!({"target_user_ids": [ALICE]}));
    ];
    api.table("threads: create", rows).await;
    // A user id never seen before is provisioned (basic), so the answer is the same as for a
    // known user and does not reveal whether the id existed.
    let unseen = api
        .run(case(
            "a user never seen before",
            200,
            NotCompared,
            create()
                .bearer(alice)
                .json(json!({"target_user_ids": [UNSEEN]})),
        ))
        .await;
    api.ok(unseen["created"] == true, || format!("{unseen}"));
    api.table(
        "threads: create",
        cases![
            "no credential" => 401, NotCompared, create().json(json!({"target_user_ids": [BOB]}));
            "broken JSON" => 400, NotCompared, create().bearer(alice).raw(b"{]");
            "empty body" => 400, NotCompared, create().bearer(alice).raw(b"");
            "body over the limit" => 413, NotCompared,
                create().bearer(alice).raw(&vec![b'a'; 70 * 1024]);
        ],
    )
    .await;
}

/// Users' messages.
async fn messages(api: &mut Api, c: &Ctx) {
    api.section("messages");
    let tid = c.thread.as_str();
    let send = || req("messages.send", &[tid]);
    let alice = c.alice.as_str();
    api.run(case(
        "a message",
        200,
        NotCompared,
        send().bearer(alice).json(json!({"content": "hi"})),
    ))
    .await;
    let first = api
        .run(case(
            "with a key, mentions and metadata",
            200,
            NotCompared,
            send().bearer(alice).json(json!({
                "content": "with key",
                "client_message_id": "k1",
                "mentions": [format!("user:{BOB}"), AGENT],
                "metadata": {"lang": "en"},
            })),
        ))
        .await;
    let replay = api
        .run(case(
            "the same key again",
            200,
            NotCompared,
            send().bearer(alice).json(json!({
                "content": "with key",
                "client_message_id": "k1",
            })),
        ))
        .await;
    api.ok(
        replay["replayed"] == true && replay["message_id"] == first["message_id"],
        || "replay returns the first message".into(),
    );
    let rows = cases![
        "the same key, other content" => 409, NotCompared,
            send().bearer(alice).json(json!({"content": "other", "client_message_id": "k1"}));
        "content too long" => 400, Rejects,
            send().bearer(alice).json(json!({"content": "x".repeat(5001)}));
        "empty content" => 400, Rejects, send().bearer(alice).json(json!({"content": ""}));
        "content not a string" => 400, Rejects, send().bearer(alice).json(json!({"content": 5}));
        "no content" => 400, Rejects, send().bearer(alice).json(json!({}));
        "base_seq is for agents" => 400, Rejects,
            send().bearer(alice).json(json!({"content": "hi", "base_seq": 1}));
        "mentions not a list" => 400, Rejects,
            send().bearer(alice).json(json!({"content": "hi", "mentions": "bob"}));
        "metadata not an object" => 400, Rejects,
            send().bearer(alice).json(json!({"content": "hi", "metadata": "x"}));
        "mention of a non-participant" => 400, Accepts,
            send()
                .bearer(alice)
                .json(json!({"content": "hi", "mentions": [format!("user:{MALLORY}")]}));
        "not a participant" => 404, NotCompared,
            send().bearer(&c.mallory).json(json!({"content": "x"}));
        "thread id not a UUID" => 400, NotCompared,
            req("messages.send", &["not-a-uuid"]).bearer(alice).json(json!({"content": "x"}));
        "an agent token" => 403, NotCompared, send().bearer(&c.agent).json(json!({"content": "x"}));
        "no credential" => 401, NotCompared, send().json(json!({"content": "x"}));
    ];
    api.table("messages", rows).await;
}

/// Agent messages: freshness.
async fn agent_messages(api: &mut Api, c: &Ctx) {
    api.section("agent messages");
    let send = || req("messages.agent_send", &[c.thread.as_str()]);
    let raw = c.agent.as_str();
    let fresh = api
        .run(case(
            "fresh",
            200,
            NotCompared,
            send().bearer(raw).json(json!({
                "content": "fresh", "base_seq": 3, "latest_seen_seq": 3, "client_message_id": "a1",
            })),
        ))
        .await;
    api.ok(fresh["stale"] == false, || format!("{fresh}"));
    let stale = api
        .run(case(
            "stale",
            200,
            NotCompared,
            send()
                .bearer(raw)
                .json(json!({"content": "stale", "base_seq": 1})),
        ))
        .await;
    api.ok(stale["stale"] == true, || format!("{stale}"));
    let rows = cases![
        "a user may send too" => 200, NotCompared,
            send().bearer(&c.alice).json(json!({"content": "user too"}));
        "the same key, changed" => 409, NotCompared,
            send().bearer(raw).json(json!({"content": "changed", "client_message_id": "a1"}));
        "negative base_seq" => 400, Rejects,
            send().bearer(raw).json(json!({"content": "x", "base_seq": -1}));
        "latest_seen_seq not a number" => 400, Rejects,
            send().bearer(raw).json(json!({"content": "x", "latest_seen_seq": "two"}));
        "unknown field" => 400, Rejects,
            send().bearer(raw).json(json!({"content": "x", "mood": "happy"}));
        "not a participant" => 404, NotCompared,
            send().bearer(&c.mallory).json(json!({"content": "x"}));
        "another owner's agent" => 404, NotCompared,
            send().bearer(&c.agent2).json(json!({"content": "x"}));
    ];
    api.table("agent messages", rows).await;
}

/// Events: poll.
async fn events(api: &mut Api, c: &mut Ctx) {
    api.section("events");
    let tid = c.thread.clone();
    let poll = || req("events.poll", &[tid.as_str()]);
    let bob = c.bob.clone();
    let page = api
        .run(case(
            "first page",
            200,
            NotCompared,
            poll().query("after_seq=0&limit=2").bearer(&bob),
        ))
        .await;
    api.ok(page["has_more"] == true && page["last_seq"] == 2, || {
        format!("{page}")
    });
    let page = api
        .run(case(
            "last_thread_seq",
            200,
            NotCompared,
            poll().query("last_thread_seq=2").bearer(&bob),
        ))
        .await;
    api.ok(page["has_more"] == false, || format!("{page}"));
    c.last_seq = page["last_seq"].as_i64().unwrap();
    let rows = cases![
        "an agent token" => 200, NotCompared, poll().bearer(&c.agent);
        "limit 200" => 200, NotCompared, poll().query("limit=200").bearer(&c.alice);
        "after_seq=-1" => 400, Rejects, poll().query("after_seq=-1").bearer(&bob);
        "limit=0" => 400, Rejects, poll().query("limit=0").bearer(&bob);
        "limit=201" => 400, Rejects, poll().query("limit=201").bearer(&bob);
        "after_seq=abc" => 400, Rejects, poll().query("after_seq=abc").bearer(&bob);
        "last_thread_seq=-5" => 400, Rejects, poll().query("last_thread_seq=-5").bearer(&bob);
        "thread id not a UUID" => 400, Rejects, req("events.poll", &["not-a-uuid"]).bearer(&bob);
        "not a participant" => 404, NotCompared, poll().bearer(&c.mallory);
        "no credential" => 401, NotCompared, poll();
    ];
    api.table("events", rows).await;
}

/// Events: stream.
async fn event_stream(api: &mut Api, c: &Ctx) {
    api.section("event stream");
    let stream = route("events.stream");
    let st = fill(stream.path, &[&c.thread]);
    let total = c.last_seq;
    let want = format!("id: {total}\n");
    api.row = "after_seq=2".into();
    let hdrs = vec![("authorization".to_string(), format!("Bearer {}", c.bob))];
    let resp = sse(
        &api.client,
        &format!("{st}?after_seq=2"),
        &hdrs,
        Duration::from_secs(10),
        |t| t.contains(&want),
    )
    .await;
    api.ok(resp.status == 200, || format!("stream: {}", resp.status));
    api.check("GET", stream.path, &resp);
    let text = String::from_utf8_lossy(&resp.body).to_string();
    let data_ptr = format!(
        "{}/responses/200/content/text~1event-stream/x-event-data-schema",
        Api::op_pointer("GET", stream.path)
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
    api.row = "Last-Event-ID".into();
    let resp = sse(
        &api.client,
        &st,
        &[
            ("authorization".to_string(), format!("Bearer {}", c.agent)),
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
    api.check("GET", stream.path, &resp);
    let open = || req("events.stream", &[c.thread.as_str()]);
    api.table(
        "event stream",
        cases![
            "after_seq=-1" => 400, Rejects, open().query("after_seq=-1").bearer(&c.bob);
            "not a participant" => 404, NotCompared, open().bearer(&c.mallory);
            "no credential" => 401, NotCompared, open();
            "thread id not a UUID" => 400, NotCompared,
                req("events.stream", &["xyz"]).bearer(&c.bob);
        ],
    )
    .await;
}

/// Participation mode.
async fn mode(api: &mut Api, c: &Ctx) {
    api.section("mode");
    let set = || req("threads.set_mode", &[c.thread.as_str()]);
    let m = api
        .run(case(
            "the agent sets it",
            200,
            NotCompared,
            set()
                .bearer(&c.agent)
                .json(json!({"participation_mode": "invocation_only"})),
        ))
        .await;
    api.ok(m["participation_mode"] == "invocation_only", || {
        format!("{m}")
    });
    let rows = cases![
        "a participant without manage" => 403, NotCompared,
            set().bearer(&c.alice).json(json!({"participation_mode": "open"}));
        "not a participant" => 404, NotCompared,
            set().bearer(&c.mallory).json(json!({"participation_mode": "open"}));
        "unknown mode" => 400, Rejects,
            set().bearer(&c.agent).json(json!({"participation_mode": "loud"}));
        "no mode" => 400, Rejects, set().bearer(&c.agent).json(json!({}));
        "unknown field" => 400, Rejects,
            set().bearer(&c.agent).json(json!({"participation_mode": "open", "x": 1}));
    ];
    api.table("mode", rows).await;
}

/// Webhooks: register (the secret once), list (never a secret), delete; the thread and
/// capability checks; the callback URL rules the document states and those only the server knows.
async fn webhooks(api: &mut Api, c: &Ctx) {
    let tid = c.thread.as_str();
    let create = || req("webhooks.create", &[tid]);
    let list = || req("webhooks.list", &[tid]);
    let hook = json!({"callback_url": "https://example.org/hook"});
    let made = api
        .table(
            "webhooks",
            cases![
                "create" => 201, NotCompared, create().bearer(&c.agent).json(hook.clone());
                "create without manage" => 403, NotCompared,
                    create().bearer(&c.alice).json(hook.clone());
                "create as a non-participant" => 404, NotCompared,
                    create().bearer(&c.mallory).json(hook.clone());
                "create with an http URL" => 400, Rejects,
                    create().bearer(&c.agent).json(json!({"callback_url": "http://example.org/"}));
                "create with a loopback address" => 400, Accepts,
                    create().bearer(&c.agent).json(json!({"callback_url": "https://127.0.0.1/"}));
                "create with the metadata address" => 400, Accepts,
                    create().bearer(&c.agent).json(json!({"callback_url": "https://169.254.169.254/"}));
                "create with credentials in the URL" => 400, Accepts,
                    create().bearer(&c.agent).json(json!({"callback_url": "https://u:p@example.org/"}));
                "create with an unknown field" => 400, Rejects,
                    create().bearer(&c.agent).json(json!({"callback_url": "https://example.org/", "x": 1}));
                "list" => 200, NotCompared, list().bearer(&c.agent);
                "list without manage" => 403, NotCompared, list().bearer(&c.alice);
                "list as a non-participant" => 404, NotCompared, list().bearer(&c.mallory);
            ],
        )
        .await;
    let created = &made["create"];
    let sid = created["subscription_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    api.ok(
        created["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        || format!("the new subscription carries its secret: {created}"),
    );
    api.ok(!made["list"].to_string().contains("whsec_"), || {
        "the list shows no secret".to_string()
    });
    let delete = |s: &str| req("webhooks.delete", &[tid, s]);
    api.table(
        "webhooks: delete",
        cases![
            "delete without manage" => 403, NotCompared, delete(&sid).bearer(&c.alice);
            "delete as a non-participant" => 404, NotCompared, delete(&sid).bearer(&c.mallory);
            "delete an unknown subscription" => 404, Accepts, delete(NOBODY).bearer(&c.agent);
            "delete" => 200, NotCompared, delete(&sid).bearer(&c.agent);
            "delete it again" => 404, Accepts, delete(&sid).bearer(&c.agent);
            "delete, thread id not a UUID" => 400, NotCompared,
                req("webhooks.delete", &["zz", NOBODY]).bearer(&c.agent);
        ],
    )
    .await;
}

/// Thread list with cursor pagination, and one thread.
async fn threads_read(api: &mut Api, c: &Ctx) {
    api.section("threads: list");
    let list = || req("threads.list", &[]);
    let alice = c.alice.as_str();
    let mut cursor: Option<String> = None;
    let mut listed = BTreeSet::new();
    for i in 0..5 {
        let q = match &cursor {
            Some(c) => format!("limit=1&cursor={c}"),
            None => "limit=1".to_string(),
        };
        let page = api
            .run(case(
                format!("page {i}"),
                200,
                NotCompared,
                list().query(&q).bearer(alice),
            ))
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
        cursor.is_none() && listed.contains(&c.thread) && listed.contains(&c.thread2),
        || format!("pages: {listed:?}"),
    );
    api.table(
        "threads: list",
        cases![
            "all" => 200, NotCompared, list().bearer(alice);
            "limit 0" => 400, Rejects, list().query("limit=0").bearer(alice);
            "a cursor of garbage" => 400, Accepts, list().query("cursor=garbage").bearer(alice);
            "an agent token" => 403, NotCompared, list().bearer(&c.agent);
            "no credential" => 401, NotCompared, list();
        ],
    )
    .await;
    api.section("threads: get");
    let get = || req("threads.get", &[c.thread.as_str()]);
    let t = api
        .run(case("a participant", 200, NotCompared, get().bearer(alice)))
        .await;
    api.ok(
        t["participants"].as_array().map(Vec::len) == Some(3),
        || format!("{t}"),
    );
    api.table(
        "threads: get",
        cases![
            "not a participant" => 404, NotCompared, get().bearer(&c.mallory);
            "no such thread" => 404, NotCompared, req("threads.get", &[NOBODY]).bearer(alice);
            "thread id not a UUID" => 400, Rejects,
                req("threads.get", &["not-a-uuid"]).bearer(alice);
            "an agent token" => 403, NotCompared, get().bearer(&c.agent);
            "no credential" => 401, NotCompared, get();
        ],
    )
    .await;
}

/// The owner's agent profile.
async fn agent_profile(api: &mut Api, c: &Ctx) {
    let get = || req("agent.get", &[]);
    let put = || req("agent.put", &[]);
    api.table(
        "agent profile",
        cases![
            "none yet" => 404, NotCompared, get().bearer(&c.owner);
            "basic plan" => 403, NotCompared, get().bearer(&c.basic);
            "an agent token" => 403, NotCompared, get().bearer(&c.agent);
            "no credential" => 401, NotCompared, get();
        ],
    )
    .await;
    let p = api
        .run(case(
            "create",
            200,
            NotCompared,
            put().bearer(&c.owner).json(json!({
                "custom_slug": "helpful-bot",
                "display_name": "Helpful",
                "welcome_message": "Hi!",
            })),
        ))
        .await;
    api.ok(p["workspace_thread_id"].is_string(), || format!("{p}"));
    let rows = cases![
        "an empty update" => 200, NotCompared, put().bearer(&c.owner).json(json!({}));
        "read it" => 200, NotCompared, get().bearer(&c.owner);
        "a slug taken" => 409, NotCompared,
            put().bearer(&c.owner2).json(json!({"custom_slug": "helpful-bot"}));
        "no slug" => 200, NotCompared, put().bearer(&c.owner2).json(json!({"custom_slug": null}));
        "slug not a slug" => 400, Rejects,
            put().bearer(&c.owner).json(json!({"custom_slug": "Bad Slug!"}));
        "is_active not a boolean" => 400, Rejects,
            put().bearer(&c.owner).json(json!({"is_active": "yes"}));
        "unknown field" => 400, Rejects, put().bearer(&c.owner).json(json!({"nickname": "x"}));
        "welcome message too long" => 400, Rejects,
            put().bearer(&c.owner).json(json!({"welcome_message": "w".repeat(5001)}));
        "basic plan" => 403, NotCompared, put().bearer(&c.basic).json(json!({}));
        // Below starter only {"is_active": false} is accepted (switching a page off): no page here.
        "basic plan switching no page off" => 404, NotCompared,
            put().bearer(&c.basic).json(json!({"is_active": false}));
    ];
    api.table("agent profile", rows).await;
}

/// Public visitors. visitor_send allows 10 a minute per IP: requests are counted below.
async fn public(api: &mut Api, c: &mut Ctx) {
    api.section("public");
    let send = || req("public.send", &["helpful-bot"]);
    let v1 = api
        .run(case(
            "a new visitor",
            200,
            NotCompared,
            send().json(json!({"email": "v@example.org", "content": "hi"})),
        ))
        .await;
    c.visitor = v1["visitor_token"]
        .as_str()
        .expect("visitor_token")
        .to_string();
    c.visitor_thread = v1["thread_id"].as_str().unwrap().to_string();
    let (vtoken, vthread) = (c.visitor.clone(), c.visitor_thread.clone());
    let v2 = api
        .run(case(
            "a returning visitor",
            200,
            NotCompared,
            send().bearer(&vtoken).json(json!({
                "email": "V@example.org", "content": "again", "client_message_id": "v1",
            })),
        ))
        .await;
    api.ok(
        v2.get("visitor_token").is_none() && v2["thread_id"] == vthread.as_str(),
        || format!("{v2}"),
    );
    // A returning visitor is known by its token: the email may be left out.
    let v3 = api
        .run(case(
            "a returning visitor without email",
            200,
            NotCompared,
            send().bearer(&vtoken).json(json!({"content": "no email"})),
        ))
        .await;
    api.ok(v3["thread_id"] == vthread.as_str(), || format!("{v3}"));
    let rows = cases![
        "the same key, other content" => 409, NotCompared,
            send().json(json!({
                "email": "v@example.org", "content": "changed", "client_message_id": "v1",
            }));
        "no such agent" => 404, NotCompared,
            req("public.send", &["no-such-bot"])
                .json(json!({"email": "v@example.org", "content": "hi"}));
        "email not an email" => 400, Rejects,
            send().json(json!({"email": "nope", "content": "hi"}));
        "no content" => 400, Rejects, send().json(json!({"email": "v@example.org"}));
        "unknown field" => 400, Rejects,
            send().json(json!({"email": "v@example.org", "content": "hi", "name": "V"}));
        // 8 counted so far; this one is not (credential kind refused before the limit).
        "a user JWT" => 403, NotCompared,
            send().bearer(&c.alice).json(json!({"email": "v@example.org", "content": "hi"}));
    ];
    api.table("public: send", rows).await;

    api.section("public: events");
    let events = || req("public.events", &[vthread.as_str()]);
    let vp = api
        .run(case(
            "the visitor's thread",
            200,
            NotCompared,
            events().bearer(&vtoken),
        ))
        .await;
    api.ok(vp["events"].as_array().map(Vec::len) == Some(3), || {
        format!("{vp}")
    });
    api.table(
        "public: events",
        cases![
            "after_seq and limit" => 200, NotCompared,
                events().query("after_seq=1&limit=1").bearer(&vtoken);
            "limit 0" => 400, Rejects, events().query("limit=0").bearer(&vtoken);
            "another thread" => 404, NotCompared,
                req("public.events", &[c.thread.as_str()]).bearer(&vtoken);
            "no credential" => 401, NotCompared, events();
            "a user JWT" => 403, NotCompared, events().bearer(&c.alice);
            "unknown visitor token" => 401, NotCompared,
                events().bearer(&unknown_token(TokenKind::Visitor));
        ],
    )
    .await;
}

/// The WebSocket streams: the upgrade (101, its frames are `tests/tests/ws.rs`'s), and the
/// refusals before it.
async fn ws_streams(api: &mut Api, c: &Ctx) {
    let up = |r: Req| {
        r.header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    let user = || up(req("ws.user", &[]));
    let vt = c.visitor_thread.as_str();
    let visitor = |slug: &str| up(req("ws.visitor", &[slug, vt]));
    let sub = format!("ama.v1, bearer.{}", c.alice);
    api.table(
        "websocket streams",
        cases![
            "a user JWT" => 101, NotCompared, user().bearer(&c.alice);
            "an agent token" => 101, NotCompared, user().bearer(&c.agent);
            "the JWT as a subprotocol" => 101, NotCompared,
                user().header("sec-websocket-protocol", &sub);
            "a refused JWT" => 401, NotCompared, user().bearer("eyJ.bad.jwt");
            "not an upgrade" => 400, NotCompared, req("ws.user", &[]).bearer(&c.alice);
            "a visitor" => 101, NotCompared, visitor("helpful-bot").bearer(&c.visitor);
            "a visitor, another agent's slug" => 404, NotCompared,
                visitor("other-bot").bearer(&c.visitor);
            "a user JWT on the visitor stream" => 403, NotCompared,
                visitor("helpful-bot").bearer(&c.alice);
        ],
    )
    .await;
}

/// More credential errors: a visitor token outside the public routes, none at all, a malformed
/// one (refused by the shim itself), and transport errors on the chat routes.
async fn credentials(api: &mut Api, c: &Ctx) {
    let tid = c.thread.as_str();
    let vtoken = c.visitor.as_str();
    let hook = json!({"callback_url": "https://example.org/hook"});
    api.table(
        "credentials",
        cases![
            "a visitor creates a thread" => 403, NotCompared,
                req("threads.create", &[]).bearer(vtoken).json(json!({"target_user_ids": [BOB]}));
            "a visitor polls a chat thread" => 403, NotCompared,
                req("events.poll", &[tid]).bearer(vtoken);
            "a visitor streams a chat thread" => 403, NotCompared,
                req("events.stream", &[tid]).bearer(vtoken);
            "agent message without credential" => 401, NotCompared,
                req("messages.agent_send", &[tid]).json(json!({"content": "x"}));
            "mode without credential" => 401, NotCompared,
                req("threads.set_mode", &[tid]).json(json!({"participation_mode": "open"}));
            "webhook without credential" => 401, NotCompared,
                req("webhooks.create", &[tid]).json(hook.clone());
            "profile update without credential" => 401, NotCompared,
                req("agent.put", &[]).json(json!({}));
            "a malformed visitor token" => 401, NotCompared,
                req("public.send", &["helpful-bot"])
                    .bearer("ama_vst_123")
                    .json(json!({"email": "v@example.org", "content": "hi"}));
            "a message over the body limit" => 413, NotCompared,
                req("messages.send", &[tid]).bearer(&c.alice).raw(&vec![b' '; 70 * 1024]);
            "webhook, thread id not a UUID" => 400, Rejects,
                req("webhooks.create", &["nope"]).bearer(&c.alice).json(hook);
        ],
    )
    .await;
}

/// Internal: system messages.
async fn system_messages(api: &mut Api, c: &Ctx) {
    api.section("system messages");
    let post = || req("internal.system_message", &[c.thread2.as_str()]);
    let key = c.key.as_str();
    let sm = api
        .run(case(
            "a notice",
            200,
            NotCompared,
            post().internal(key).json(json!({
                "content": "maintenance at noon", "client_message_id": "s1", "metadata": {"kind": "notice"},
            })),
        ))
        .await;
    api.ok(sm["thread_seq"] == 1, || format!("{sm}"));
    let ev2 = api
        .run(case(
            "a participant sees it",
            200,
            NotCompared,
            req("events.poll", &[c.thread2.as_str()]).bearer(&c.bob),
        ))
        .await;
    api.ok(ev2["events"][0]["role"] == "system", || format!("{ev2}"));
    let rows = cases![
        "the same key, other content" => 409, NotCompared,
            post().internal(key).json(json!({"content": "other", "client_message_id": "s1"}));
        "no such thread" => 404, NotCompared,
            req("internal.system_message", &[NOBODY]).internal(key).json(json!({"content": "x"}));
        "empty content" => 400, Rejects, post().internal(key).json(json!({"content": ""}));
        "mentions are for users" => 400, Rejects,
            post().internal(key).json(json!({"content": "x", "mentions": []}));
        "no content" => 400, Rejects, post().internal(key).json(json!({}));
        "thread id not a UUID" => 400, Rejects,
            req("internal.system_message", &["nope"]).internal(key).json(json!({"content": "x"}));
        "a user JWT" => 403, NotCompared, post().bearer(&c.alice).json(json!({"content": "x"}));
        "no credential" => 401, NotCompared, post().json(json!({"content": "x"}));
    ];
    api.table("system messages", rows).await;
}

/// Revocation.
async fn revocation(api: &mut Api, c: &Ctx) {
    let revoke = || req("tokens.revoke", &[c.token_id.as_str()]);
    api.table(
        "tokens: revoke",
        cases![
            "another user's token" => 404, NotCompared, revoke().bearer(&c.basic);
        ],
    )
    .await;
    let rv = api
        .run(case("revoke", 200, NotCompared, revoke().bearer(&c.owner)))
        .await;
    let rv2 = api
        .run(case(
            "revoke again",
            200,
            NotCompared,
            revoke().bearer(&c.owner),
        ))
        .await;
    api.ok(rv["revoked_at"] == rv2["revoked_at"], || {
        "revocation is permanent".into()
    });
    api.table(
        "tokens: revoke",
        cases![
            "no such token" => 404, NotCompared, req("tokens.revoke", &[NOBODY]).bearer(&c.owner);
            "token id not a UUID" => 400, Rejects, req("tokens.revoke", &["nope"]).bearer(&c.owner);
            "an agent token" => 403, NotCompared, revoke().bearer(&c.agent2);
            "no credential" => 401, NotCompared, revoke();
            "the revoked token" => 401, NotCompared,
                req("events.poll", &[c.thread.as_str()]).bearer(&c.agent);
        ],
    )
    .await;
    let list = api
        .run(case(
            "listed as revoked",
            200,
            NotCompared,
            req("tokens.list", &[]).bearer(&c.owner),
        ))
        .await;
    let revoked = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token_id"] == c.token_id.as_str())
        .cloned()
        .unwrap_or_default();
    api.ok(
        revoked["is_active"] == false && revoked["revoked_at"].is_string(),
        || format!("{revoked}"),
    );
}

/// Rate limits: thread_write (60 a minute per credential) on agent messages, visitor_send (10 a
/// minute per IP), failed authentications per IP.
async fn rate_limits(api: &mut Api, c: &Ctx, rater: String) {
    api.section("rate limits");
    let rt = api
        .run(case(
            "a thread to flood",
            200,
            NotCompared,
            req("threads.create", &[])
                .bearer(&rater)
                .json(json!({"target_user_ids": [BOB]})),
        ))
        .await;
    let rtid = rt["thread_id"].as_str().unwrap().to_string();
    let mut limited = false;
    for i in 0..150 {
        let r = api
            .any(
                format!("thread_write #{i}"),
                req("messages.agent_send", &[rtid.as_str()])
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
                format!("visitor_send #{i}"),
                req("public.send", &["helpful-bot"])
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
    for i in 0..15 {
        let r = api
            .any(
                format!("failed authentication #{i}"),
                req("events.poll", &[c.thread.as_str()]).bearer(&bad),
            )
            .await;
        if r.status == 429 {
            limited = true;
            break;
        }
        api.ok(r.status == 401, || format!("unknown token: {}", r.status));
    }
    api.ok(limited, || {
        "failed authentications never answered 429".into()
    });
    api.table(
        "rate limits",
        cases![
            "a valid JWT after the failures" => 200, NotCompared,
                req("threads.list", &[]).bearer(&c.alice);
            "another valid JWT" => 200, NotCompared, req("tokens.list", &[]).bearer(&c.owner);
        ],
    )
    .await;
}

/// The shim's own endpoints, on a second small stack: 3 requests a minute per client IP, shared
/// by the four, an IPv6 client counted by its /64; /metrics only for --metrics-allow (loopback
/// by default), anyone else 404 as for an unknown path. Its peer is a trusted proxy here, so
/// X-Forwarded-For names the client.
async fn shim_endpoint_limits(api: &mut Api) {
    api.section("shim endpoint limits");
    let small = Stack::start(&[
        "--shim-endpoint-limit",
        "3",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    let shim_ops: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.target.is_shim_endpoint())
        .map(|r| r.path)
        .collect();
    assert_eq!(
        shim_ops,
        ["/health", "/ready", "/metrics", "/api/v1/openapi.json"]
    );
    let metrics = route("metrics").path;
    api.row = "hidden metrics".into();
    let r = small
        .client
        .send("GET", metrics, &[("x-forwarded-for", "192.0.2.1")], None)
        .await
        .unwrap();
    api.ok(r.status == 404, || format!("hidden /metrics: {}", r.status));
    api.check("GET", metrics, &r);
    for (i, path) in shim_ops.iter().chain(&shim_ops).enumerate() {
        api.row = format!("{path} #{i}");
        let r = small.client.get(path, None).await;
        let want = if i < 3 { 200 } else { 429 };
        api.ok(r.status == want, || format!("{path} #{i}: {}", r.status));
        api.ok(want == 200 || r.header("retry-after").is_some(), || {
            format!("{path}: 429 without Retry-After")
        });
        api.check("GET", path, &r);
    }
    let health = route("health").path;
    for (ip, want) in [
        ("2001:db8:1:2::1", 200),
        ("2001:db8:1:2::1", 200),
        ("2001:db8:1:2::1", 200),
        ("2001:db8:1:2:ffff::2", 429),
        ("2001:db8:1:3::1", 200),
    ] {
        api.row = format!("health from {ip}");
        let r = small
            .client
            .send("GET", health, &[("x-forwarded-for", ip)], None)
            .await
            .unwrap();
        api.ok(r.status == want, || {
            format!("/health from {ip}: {}", r.status)
        });
        api.check("GET", health, &r);
    }
}

/// Coverage: every operation answered its success status, and at least one
/// error status wherever it declares some.
fn coverage(api: &mut Api) {
    api.section("coverage");
    let mut report = String::new();
    for (path, item) in api.doc["paths"].as_object().unwrap().clone() {
        for (method, op) in item.as_object().unwrap() {
            let key = (method.to_ascii_uppercase(), path.clone());
            api.row = format!("{} {}", key.0, key.1);
            let seen = api.seen.get(&key).cloned().unwrap_or_default();
            let declared: BTreeSet<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .filter_map(|k| k.parse().ok())
                .collect();
            let success = declared.iter().copied().find(|c| *c < 300).unwrap_or(200);
            let expect_ok = success;
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
    println!(
        "openapi conformance: {} assertions, {} cases",
        api.assertions, api.cases
    );
}
