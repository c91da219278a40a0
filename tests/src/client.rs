//! A small HTTPS client for end-to-end tests: real TLS (rustls), HTTP/1.1 or HTTP/2 (chosen by
//! ALPN), one connection per request. The shim's development certificate is trusted explicitly.
//! The workspace `tests/` and the shim's own `shim/tests/server.rs` both use it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A response: status, headers and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Client configuration trusting one PEM certificate.
pub fn tls_config(cert_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()).flatten() {
        let _ = roots.add(c);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

/// The shim's address and trusted certificate.
#[derive(Clone)]
pub struct Client {
    pub addr: String,
    pub tls: Arc<rustls::ClientConfig>,
    /// HTTP/2 (offered alone in ALPN, and required) instead of HTTP/1.1.
    pub h2: bool,
}

impl Client {
    /// A client speaking HTTP/1.1.
    pub fn new(addr: &str, cert_pem: &str) -> Self {
        Client {
            addr: addr.to_string(),
            tls: tls_config(cert_pem, &[b"http/1.1"]),
            h2: false,
        }
    }

    /// A client speaking HTTP/2: each connection fails unless the server selects `h2`.
    pub fn new_h2(addr: &str, cert_pem: &str) -> Self {
        Client {
            addr: addr.to_string(),
            tls: tls_config(cert_pem, &[b"h2"]),
            h2: true,
        }
    }

    /// Sends one request on a new TLS connection and returns the response, body unread.
    async fn open(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> std::io::Result<hyper::Response<hyper::body::Incoming>> {
        let tcp = TcpStream::connect(&self.addr).await?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await?;
        // HTTP/2 carries the authority in the request line, HTTP/1.1 in the Host header.
        let mut req = hyper::Request::builder().method(method);
        req = if self.h2 {
            req.uri(format!("https://localhost{path}"))
        } else {
            req.uri(path).header("host", "localhost")
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(std::io::Error::other)?;
        let io = hyper_util::rt::TokioIo::new(tls);
        if self.h2 {
            if io.inner().get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(std::io::Error::other("the server did not select h2"));
            }
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            sender.send_request(req).await
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            sender.send_request(req).await
        }
        .map_err(std::io::Error::other)
    }

    /// Sends one request on a new TLS connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> std::io::Result<Response> {
        let resp = self.open(method, path, headers, body).await?;
        let status = resp.status().as_u16();
        let headers = header_pairs(&resp);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// GET with an optional bearer token.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Response {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.send("GET", path, &headers, None).await.expect("GET")
    }

    /// A JSON request with an optional bearer token.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &serde_json::Value,
    ) -> Response {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        let bytes = serde_json::to_vec(body).expect("json");
        self.send(method, path, &headers, Some(&bytes))
            .await
            .expect("request")
    }
}

impl Client {
    /// Opens a Server-Sent Events stream and collects its text until `done(text)` is true or
    /// `timeout` passes. Returns the status and the text received.
    pub async fn sse_until(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        timeout: std::time::Duration,
        done: impl Fn(&str) -> bool,
    ) -> std::io::Result<(u16, String)> {
        let r = self.sse(path, headers, timeout, done).await?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// Like [`Client::sse_until`], returning the response headers too, with the text received
    /// as the body.
    pub async fn sse(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        timeout: std::time::Duration,
        done: impl Fn(&str) -> bool,
    ) -> std::io::Result<Response> {
        let resp = self.open("GET", path, headers, None).await?;
        let status = resp.status().as_u16();
        let headers = header_pairs(&resp);
        let mut body = resp.into_body();
        let mut text = String::new();
        let end = tokio::time::Instant::now() + timeout;
        while !done(&text) {
            match tokio::time::timeout_at(end, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        text.push_str(&String::from_utf8_lossy(data));
                    }
                }
                Ok(Some(Err(e))) => return Err(std::io::Error::other(e)),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Response {
            status,
            headers,
            body: Bytes::from(text),
        })
    }
}

/// A response's headers as (lower-case name, value) pairs.
fn header_pairs<B>(resp: &hyper::Response<B>) -> Vec<(String, String)> {
    resp.headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}
