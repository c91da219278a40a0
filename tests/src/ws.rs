//! A WebSocket test client over real TLS (rustls, the shim's certificate trusted), built on
//! `tokio-tungstenite`: open a stream with any of the credential forms, read JSON events, wait
//! (within a bound, never a timed assertion) for an event or the close.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

use crate::client::Client;

/// The user stream's path.
pub const USER: &str = "/api/v1/chat/ws/user/threads";
/// How long a test waits for an event or a close: long enough for a re-check (every
/// `--sse-recheck-secs`, 1 s in the tests that rely on it) and a database round trip.
pub const BOUND: Duration = Duration::from_secs(10);

/// Matches an event of this `type`.
pub fn is(t: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == t
}

/// Opens the user stream with `jwt` in the `Authorization` header and waits for `ready`.
pub async fn user_socket(s: &crate::stack::Stack, jwt: &str) -> Ws {
    let auth = format!("Bearer {jwt}");
    let mut w = open(&s.client, USER, &[("authorization", &auth)])
        .await
        .socket();
    w.until(BOUND, is("ready")).await;
    w
}

/// An open WebSocket.
pub struct Ws {
    pub ws: WebSocketStream<TlsStream<TcpStream>>,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    /// Every event read so far, in order.
    pub log: Vec<Value>,
}

/// How opening went: the socket, or the HTTP status and body of the refusal.
pub enum Opened {
    Socket(Box<Ws>),
    Refused(u16, Value),
}

impl Opened {
    /// The socket; panics with the refusal otherwise.
    pub fn socket(self) -> Ws {
        match self {
            Opened::Socket(w) => *w,
            Opened::Refused(s, b) => panic!("WebSocket refused: {s} {b}"),
        }
    }

    /// The refusal's status; panics if it opened.
    pub fn status(self) -> (u16, Value) {
        match self {
            Opened::Socket(_) => panic!("the WebSocket opened"),
            Opened::Refused(s, b) => (s, b),
        }
    }
}

/// Opens `path` on the shim of `client` with these extra request headers.
pub async fn open(client: &Client, path: &str, headers: &[(&str, &str)]) -> Opened {
    let tcp = TcpStream::connect(&client.addr).await.expect("connect");
    assert!(!client.h2, "WebSocket streams upgrade HTTP/1.1");
    let tls = TlsConnector::from(client.tls.clone())
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS");
    let mut req = format!("wss://localhost{path}")
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                .expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    let config = WebSocketConfig::default().max_message_size(Some(1 << 22));
    match tokio_tungstenite::client_async_with_config(req, tls, Some(config)).await {
        Ok((ws, resp)) => Opened::Socket(Box::new(Ws {
            ws,
            protocol: resp
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            log: Vec::new(),
        })),
        Err(Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Opened::Refused(resp.status().as_u16(), body)
        }
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}

/// What reading found.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Event(Value),
    /// The server closed with this code (1006 when the connection just ended).
    Closed(u16),
    /// Nothing within the bound.
    Nothing,
}

impl Ws {
    /// Sends a JSON text message.
    pub async fn send(&mut self, v: &Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    /// Sends a raw text frame (the server may already have closed).
    pub async fn send_text(&mut self, t: String) -> Result<(), Error> {
        self.ws.send(Message::text(t)).await
    }

    /// The next JSON event, the close, or nothing within `bound`.
    pub async fn read(&mut self, bound: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let f = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Read::Nothing,
                Ok(f) => f,
            };
            match f {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON event");
                    self.log.push(v.clone());
                    return Read::Event(v);
                }
                Some(Ok(Message::Close(c))) => {
                    return Read::Closed(c.map_or(1005, |c| u16::from(c.code)))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Read::Closed(1006),
            }
        }
    }

    /// Reads until an event satisfies `want` (returned, with every event read before it), or
    /// panics after `bound` or at the close.
    pub async fn until(
        &mut self,
        bound: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + bound;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Event(v) if want(&v) => return (v, before),
                Read::Event(v) => before.push(v),
                other => panic!("waiting for an event: {other:?} after {before:?}"),
            }
        }
    }

    /// Reads until the close (its code) within `bound`; `None` if still open. Events read on
    /// the way are returned too.
    pub async fn closed(&mut self, bound: Duration) -> (Option<u16>, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + bound;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Event(v) => events.push(v),
                Read::Closed(c) => return (Some(c), events),
                Read::Nothing => return (None, events),
            }
        }
    }
}
