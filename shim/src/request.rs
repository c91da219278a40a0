//! Reading the request: its id, the client IP and the JSON body.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Limited};
use ipnet::IpNet;
use serde_json::Value;

use crate::errors::ApiError;
use crate::response::X_REQUEST_ID;

/// A request id: the caller's `x-request-id` when it is short and plain, else a new UUID.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The client IP: the socket peer, or `X-Forwarded-For` from a trusted proxy only.
pub fn client_ip(headers: &HeaderMap, peer: SocketAddr, trusted_proxies: &[IpNet]) -> IpAddr {
    let xff = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    crate::net::client_ip(peer.ip(), xff, trusted_proxies)
}

/// Parses a request body: empty means JSON null; anything else must be JSON.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|_| ApiError::bad_request("body: invalid JSON"))
}

/// Reads and parses the body: 413 past `limit` bytes (declared or streamed), 408 when it does
/// not arrive within `timeout`, 400 when it is not JSON.
pub async fn read_body<B>(
    req: Request<B>,
    limit: usize,
    timeout: Duration,
) -> Result<Value, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(ApiError::status(
            408,
            "body: timed out reading the request body",
        )),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::payload_too_large(limit))
            } else {
                Err(ApiError::bad_request(
                    "body: could not read the request body",
                ))
            }
        }
        Ok(Ok(c)) => parse_body(&c.to_bytes()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};
    use serde_json::json;

    /// A header map from name/value pairs (repeats kept), for the tests of this crate.
    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn request_ids_and_bodies() {
        assert_eq!(
            request_id(&headers(&[("x-request-id", "abc-123")])),
            "abc-123"
        );
        let generated = request_id(&headers(&[("x-request-id", "evil\" id")]));
        assert_eq!(generated.len(), 36);
        assert_eq!(parse_body(b""), Ok(Value::Null));
        assert_eq!(parse_body(b" \n"), Ok(Value::Null));
        assert_eq!(parse_body(b"{\"a\":1}"), Ok(json!({"a": 1})));
        assert_eq!(parse_body(b"[1,2]"), Ok(json!([1, 2])));
        let e = parse_body(b"{\"a\":").unwrap_err();
        assert_eq!((e.status, e.code), (400, "BAD_REQUEST"));
        assert!(e.message.contains("body"));
    }
}
