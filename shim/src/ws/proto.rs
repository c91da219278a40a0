//! The WebSocket streams' wire format: what a client may send (parsed strictly) and the events
//! the shim sends, each a JSON text frame with a `type`.

use serde::Deserialize;
use serde_json::{json, Value};

/// The subprotocol a client offers (and the shim echoes); the JWT may ride along as
/// `bearer.<jwt>`, which is never echoed.
pub const SUBPROTOCOL: &str = "ama.v1";
/// The prefix of the credential entry in `Sec-WebSocket-Protocol`.
pub const BEARER_PREFIX: &str = "bearer.";

/// Close codes.
pub mod close {
    /// The shim is shutting down, or the client went idle.
    pub const GOING_AWAY: u16 = 1001;
    /// Repeated bad messages, or a slow consumer.
    pub const POLICY: u16 = 1008;
    /// A message larger than `--ws-max-message-bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// The database failed.
    pub const INTERNAL: u16 = 1011;
    /// A limit: re-check refused for rate, or too many sockets: try again later.
    pub const TRY_LATER: u16 = 1013;
    /// No valid credential (none in time, refused, revoked or expired).
    pub const UNAUTHORIZED: u16 = 4401;
    /// The visitor's one thread can no longer be read.
    pub const FORBIDDEN: u16 = 4403;
}

/// Longest `thread_id` and ping `id` a client message may carry.
const MAX_ID: usize = 64;

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Answered with `pong` (echoing `id` when given).
    Ping {
        #[serde(default)]
        id: Option<String>,
    },
    /// The client's own typing in a thread (needs `send` there).
    Typing {
        thread_id: String,
        status: Status,
    },
    /// Only focused threads' typing is delivered while any thread is focused.
    FocusThread {
        thread_id: String,
    },
    UnfocusThread {
        thread_id: String,
    },
    /// The credential, as the first message of a socket opened without one.
    Auth {
        token: String,
    },
}

/// A typing status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Started,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Started => "started",
            Status::Stopped => "stopped",
        }
    }
}

/// Why a client message was refused (the `code` of the `error` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMsg {
    pub code: &'static str,
    pub message: String,
}

/// Parses one text message. Unknown types, unknown fields, wrong types and over-long ids are
/// refused with a code; a thread id must be a UUID (it is compared lower-case).
pub fn parse(text: &str) -> Result<ClientMsg, BadMsg> {
    let v: Value = serde_json::from_str(text).map_err(|_| BadMsg {
        code: "bad_message",
        message: "not JSON".into(),
    })?;
    let known = ["ping", "typing", "focus_thread", "unfocus_thread", "auth"];
    match v.get("type").and_then(Value::as_str) {
        None => {
            return Err(BadMsg {
                code: "bad_message",
                message: "a JSON object with a string type is expected".into(),
            })
        }
        Some(t) if !known.contains(&t) => {
            return Err(BadMsg {
                code: "unknown_type",
                message: "unknown message type".into(),
            })
        }
        Some(_) => {}
    }
    let msg: ClientMsg = serde_json::from_value(v).map_err(|e| BadMsg {
        code: "bad_message",
        // serde's text names fields and types, never values
        message: e.to_string().chars().take(200).collect(),
    })?;
    let bad_id = |s: &str| s.is_empty() || s.len() > MAX_ID;
    let invalid = match &msg {
        ClientMsg::Ping { id } => id.as_deref().is_some_and(bad_id),
        ClientMsg::Typing { thread_id, .. }
        | ClientMsg::FocusThread { thread_id }
        | ClientMsg::UnfocusThread { thread_id } => uuid::Uuid::parse_str(thread_id).is_err(),
        ClientMsg::Auth { token } => token.is_empty() || token.len() > 8192,
    };
    if invalid {
        return Err(BadMsg {
            code: "bad_message",
            message: "an id or token is malformed".into(),
        });
    }
    Ok(match msg {
        ClientMsg::Typing { thread_id, status } => ClientMsg::Typing {
            thread_id: thread_id.to_ascii_lowercase(),
            status,
        },
        ClientMsg::FocusThread { thread_id } => ClientMsg::FocusThread {
            thread_id: thread_id.to_ascii_lowercase(),
        },
        ClientMsg::UnfocusThread { thread_id } => ClientMsg::UnfocusThread {
            thread_id: thread_id.to_ascii_lowercase(),
        },
        m => m,
    })
}

/// `thread_message`: the event JSON that polling returns, as the database made it, under `event`.
pub fn thread_message(thread: &str, seq: i64, raw_event: &[u8]) -> String {
    let raw = std::str::from_utf8(raw_event).unwrap_or("null");
    let thread = json!(thread);
    format!(r#"{{"type":"thread_message","thread_id":{thread},"thread_seq":{seq},"event":{raw}}}"#)
}

/// `thread_typing`: who started or stopped typing in a thread.
pub fn thread_typing(thread: &str, sender: &str, started: bool) -> String {
    json!({
        "type": "thread_typing",
        "thread_id": thread,
        "sender_id": sender,
        "status": if started { "started" } else { "stopped" },
    })
    .to_string()
}

/// What `thread_runtime` reports about a thread of the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub participation_mode: String,
    pub is_archived: bool,
}

/// `thread_runtime`: a thread joined the socket's set, left it (access lost), or changed its
/// participation mode or archived state.
pub fn thread_runtime(thread: &str, change: &str, rt: Option<&Runtime>) -> String {
    let mut v = json!({"type": "thread_runtime", "thread_id": thread, "change": change});
    if let Some(rt) = rt {
        v["participation_mode"] = json!(rt.participation_mode);
        v["is_archived"] = json!(rt.is_archived);
    }
    v.to_string()
}

/// `pong`, echoing the ping's `id`.
pub fn pong(id: Option<&str>) -> String {
    match id {
        Some(id) => json!({"type": "pong", "id": id}).to_string(),
        None => r#"{"type":"pong"}"#.to_string(),
    }
}

/// `ready`: the socket is authenticated and live, carrying this many threads.
pub fn ready(principal: &str, threads: usize) -> String {
    json!({"type": "ready", "principal": principal, "thread_count": threads}).to_string()
}

/// `error`: a refused client message (the socket stays open unless abuse goes on).
pub fn error(code: &str, message: &str) -> String {
    json!({"type": "error", "code": code, "message": message}).to_string()
}

/// The credential in `Sec-WebSocket-Protocol` and whether `ama.v1` was offered. A `bearer.`
/// entry given twice, or empty, is refused (`None`).
pub fn subprotocols<'a>(values: impl Iterator<Item = &'a str>) -> Option<(bool, Option<&'a str>)> {
    let (mut offered, mut token) = (false, None);
    for p in values.flat_map(|v| v.split(',')).map(str::trim) {
        if p == SUBPROTOCOL {
            offered = true;
        } else if let Some(t) = p.strip_prefix(BEARER_PREFIX) {
            if token.is_some() || t.is_empty() {
                return None;
            }
            token = Some(t);
        }
    }
    Some((offered, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse() {
        assert_eq!(
            parse(r#"{"type":"ping"}"#),
            Ok(ClientMsg::Ping { id: None })
        );
        assert_eq!(
            parse(r#"{"type":"ping","id":"7"}"#),
            Ok(ClientMsg::Ping {
                id: Some("7".into())
            })
        );
        let t = "0D1C6F4E-8a43-4a4e-9a53-0c1f2d3e4f50";
        assert_eq!(
            parse(&format!(
                r#"{{"type":"typing","thread_id":"{t}","status":"started"}}"#
            )),
            Ok(ClientMsg::Typing {
                thread_id: t.to_ascii_lowercase(),
                status: Status::Started
            })
        );
        assert_eq!(
            parse(&format!(r#"{{"type":"focus_thread","thread_id":"{t}"}}"#)),
            Ok(ClientMsg::FocusThread {
                thread_id: t.to_ascii_lowercase()
            })
        );
        assert_eq!(
            parse(r#"{"type":"auth","token":"abc"}"#),
            Ok(ClientMsg::Auth {
                token: "abc".into()
            })
        );
    }

    #[test]
    fn bad_client_messages_are_refused_with_a_code() {
        let t = "0d1c6f4e-8a43-4a4e-9a53-0c1f2d3e4f50";
        for (text, code) in [
            ("nope", "bad_message"),
            ("[]", "bad_message"),
            ("{}", "bad_message"),
            (r#"{"type":5}"#, "bad_message"),
            (r#"{"type":"subscribe"}"#, "unknown_type"),
            (r#"{"type":"ping","extra":1}"#, "bad_message"),
            (
                r#"{"type":"typing","thread_id":"x","status":"started"}"#,
                "bad_message",
            ),
            (
                &format!(r#"{{"type":"typing","thread_id":"{t}","status":"maybe"}}"#),
                "bad_message",
            ),
            (
                &format!(r#"{{"type":"typing","thread_id":"{t}"}}"#),
                "bad_message",
            ),
            (
                &format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(65)),
                "bad_message",
            ),
            (r#"{"type":"auth","token":""}"#, "bad_message"),
        ] {
            assert_eq!(parse(text).map_err(|e| e.code), Err(code), "{text}");
        }
    }

    #[test]
    fn events_are_json_with_a_type() {
        let m = thread_message("t1", 3, br#"{"thread_seq":3,"content":"hi"}"#);
        let v: Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v["type"], "thread_message");
        assert_eq!(v["thread_id"], "t1");
        assert_eq!(v["event"]["content"], "hi");
        let v: Value = serde_json::from_str(&thread_typing("t", "user:u", false)).unwrap();
        assert_eq!(v["status"], "stopped");
        let rt = Runtime {
            participation_mode: "open".into(),
            is_archived: false,
        };
        let v: Value = serde_json::from_str(&thread_runtime("t", "mode", Some(&rt))).unwrap();
        assert_eq!(v["participation_mode"], "open");
        assert_eq!(pong(None), r#"{"type":"pong"}"#);
        let v: Value = serde_json::from_str(&error("x", "\"q")).unwrap();
        assert_eq!(v["message"], "\"q");
    }

    #[test]
    fn the_subprotocol_carries_the_credential() {
        assert_eq!(
            subprotocols(["ama.v1, bearer.eyJ.a.b"].into_iter()),
            Some((true, Some("eyJ.a.b")))
        );
        assert_eq!(
            subprotocols(["ama.v1", "bearer.t"].into_iter()),
            Some((true, Some("t")))
        );
        assert_eq!(subprotocols(["chat"].into_iter()), Some((false, None)));
        assert!(subprotocols(["bearer.a, bearer.b"].into_iter()).is_none());
        assert!(subprotocols(["ama.v1, bearer."].into_iter()).is_none());
    }
}
