//! A tiny bounded HTTP(S) GET for the JWKS URL.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Largest JWKS body accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

fn client_tls() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(c) => Arc::new(c),
        // the default provider always supports the default versions
        Err(_) => Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}

/// GETs `url` (http or https), following no redirects, with a body limit and an overall timeout.
pub async fn get(url: &str, limit: usize, timeout: Duration) -> Result<Bytes, String> {
    tokio::time::timeout(timeout, get_inner(url, limit))
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn get_inner(url: &str, limit: usize) -> Result<Bytes, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("URL scheme must be http or https".into()),
    };
    let host = uri.host().ok_or("URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| host.clone());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = TcpStream::connect((bare_host.as_str(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(
            http::header::USER_AGENT,
            concat!("ama-shim/", env!("CARGO_PKG_VERSION")),
        )
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    if https {
        let name = rustls_pki_types::ServerName::try_from(bare_host)
            .map_err(|e| format!("server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(client_tls())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(tls, req, limit).await
    } else {
        send(tcp, req, limit).await
    }
}

async fn send<I>(io: I, req: http::Request<Empty<Bytes>>, limit: usize) -> Result<Bytes, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP status {}", resp.status()));
    }
    if let Some(len) = resp.headers().get(http::header::CONTENT_LENGTH) {
        if len
            .to_str()
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > limit)
        {
            return Err(format!("body larger than {limit} bytes"));
        }
    }
    let body = Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(body)
}
