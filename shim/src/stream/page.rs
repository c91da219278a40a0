//! A page of `events.poll`, framed once: each event's SSE frame is built from the JSON text the
//! database made (no parse into a tree, no second serialisation), and every stream that receives
//! the page sends the same bytes.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// The events of a poll, each with its `thread_seq` and its SSE frame, and `has_more`.
#[derive(Debug, Default)]
pub struct Page {
    pub events: Vec<(i64, Bytes)>,
    /// Each event's JSON text as the database made it, in the order of `events` (the
    /// WebSocket streams wrap it in their own frames).
    pub raw: Vec<Bytes>,
    pub has_more: bool,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    events: Vec<&'a RawValue>,
    #[serde(default)]
    has_more: bool,
}

/// The two fields of an event a frame needs.
#[derive(Deserialize)]
struct Head<'a> {
    thread_seq: Option<i64>,
    #[serde(borrow)]
    event_type: Option<std::borrow::Cow<'a, str>>,
}

/// An event type fit for the `event:` line; anything else is `message_committed`.
fn event_kind(t: Option<&str>) -> &str {
    t.filter(|t| {
        !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    })
    .unwrap_or("message_committed")
}

/// One SSE frame for an event given as JSON text. The text goes on one `data:` line; text with
/// a line break (never what PostgreSQL writes) is written again on one line first.
pub fn frame(raw: &str, seq: i64, event_type: Option<&str>) -> Bytes {
    let kind = event_kind(event_type);
    let data = if raw.contains(['\n', '\r']) {
        serde_json::from_str::<Value>(raw)
            .and_then(|v| serde_json::to_string(&v))
            .unwrap_or_else(|_| "{}".into())
    } else {
        raw.to_string()
    };
    Bytes::from(format!("id: {seq}\nevent: {kind}\ndata: {data}\n\n"))
}

impl Page {
    /// The page in a poll's body (JSON text). Events without a numeric `thread_seq` are left
    /// out; a body that is not a page is an empty page.
    pub fn parse(body: &str) -> Page {
        let Ok(w) = serde_json::from_str::<Wire>(body) else {
            return Page::default();
        };
        let (events, raw) = w
            .events
            .iter()
            .filter_map(|raw| {
                let head: Head = serde_json::from_str(raw.get()).ok()?;
                let seq = head.thread_seq?;
                Some((
                    (seq, frame(raw.get(), seq, head.event_type.as_deref())),
                    Bytes::copy_from_slice(raw.get().as_bytes()),
                ))
            })
            .unzip();
        Page {
            events,
            raw,
            has_more: w.has_more,
        }
    }

    /// Whether the page can go to a stream whose last event is `last` without a gap
    /// (thread_seq has none, so the page must start at most one past it).
    pub fn fits(&self, last: Option<i64>) -> bool {
        match (self.events.first(), last) {
            (None, _) => true,
            (Some((first, _)), Some(l)) => *first <= l + 1,
            (Some((first, _)), None) => *first <= 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_database_text() {
        let p = Page::parse(
            r#"{"events" : [{"event_id":"e1","thread_seq":7,"event_type":"message_committed","content":"a\nb"}, 
 {"thread_seq":8,"event_type":"evil\ndata: x"}, {"nope":1}], "has_more" : true, "last_seq" : 8}"#,
        );
        assert!(p.has_more);
        assert_eq!(
            p.events.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![7, 8]
        );
        assert_eq!(
            p.events[0].1,
            "id: 7\nevent: message_committed\ndata: {\"event_id\":\"e1\",\"thread_seq\":7,\"event_type\":\"message_committed\",\"content\":\"a\\nb\"}\n\n"
        );
        let f = String::from_utf8(p.events[1].1.to_vec()).expect("utf-8");
        assert!(
            f.starts_with("id: 8\nevent: message_committed\ndata: {"),
            "{f}"
        );
        assert_eq!(f.matches('\n').count(), 4, "data stays on one line");
    }

    #[test]
    fn a_line_break_in_the_text_is_never_sent() {
        let f = frame("{\"a\":\n1}", 3, None);
        assert_eq!(f, "id: 3\nevent: message_committed\ndata: {\"a\":1}\n\n");
    }

    #[test]
    fn anything_else_is_an_empty_page() {
        for body in ["null", "[]", "{\"events\": 5}", "not json", "{}"] {
            let p = Page::parse(body);
            assert!(p.events.is_empty() && !p.has_more, "{body}");
        }
    }

    #[test]
    fn a_page_fits_a_stream_only_without_a_gap() {
        let p = Page::parse(r#"{"events": [{"thread_seq": 5}, {"thread_seq": 6}]}"#);
        assert!(p.fits(Some(4)));
        assert!(p.fits(Some(6)), "already seen: the stream skips them");
        assert!(!p.fits(Some(3)), "event 4 would be missing");
        assert!(!p.fits(None));
        assert!(Page::parse(r#"{"events": [{"thread_seq": 1}]}"#).fits(None));
        assert!(Page::parse(r#"{"events": []}"#).fits(Some(9)));
    }
}
