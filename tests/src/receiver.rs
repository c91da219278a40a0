//! A local HTTPS webhook receiver for the end-to-end tests: a self-signed certificate for
//! `localhost` and 127.0.0.1 (its PEM file is what the shim gets as `--webhook-ca-file`), every
//! request recorded (headers, body), every TCP connection counted (so a test can tell that none
//! arrived), and an answer status the test sets (a 3xx carries `Location`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

struct State {
    status: AtomicU16,
    location: Mutex<String>,
    hits: Mutex<Vec<Hit>>,
    connections: AtomicUsize,
}

/// A running receiver; it stops when dropped.
pub struct Receiver {
    pub port: u16,
    /// The receiver's certificate (PEM), to trust with `--webhook-ca-file`.
    pub ca_file: PathBuf,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port answering `status`.
    pub async fn start(status: u16) -> Receiver {
        let (cert_pem, key_pem) = crate::dev::tls_cert();
        let dir = std::env::temp_dir().join(format!("ama-receiver-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("receiver dir");
        let ca_file = dir.join("receiver.pem");
        std::fs::write(&ca_file, &cert_pem).expect("receiver cert");
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("cert");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            status: AtomicU16::new(status),
            location: Mutex::new(String::new()),
            hits: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let (acceptor, st) = (acceptor.clone(), st.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let st = st.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let headers = parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                                })
                                .collect();
                            st.hits.lock().expect("hits").push(Hit {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                headers,
                                body: body.to_vec(),
                            });
                            let status = st.status.load(Ordering::SeqCst);
                            let mut resp = hyper::Response::builder().status(status);
                            if (300..400).contains(&status) {
                                resp = resp
                                    .header("location", st.location.lock().expect("loc").clone());
                            }
                            Ok::<_, std::convert::Infallible>(
                                resp.body(Full::new(Bytes::from_static(b"{}")))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Receiver {
            port,
            ca_file,
            state,
            task,
        }
    }

    /// `https://localhost:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// Answers `status` from now on; a 3xx points at `location`.
    pub fn answer(&self, status: u16, location: &str) {
        *self.state.location.lock().expect("loc") = location.to_string();
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// The requests received so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().expect("hits").clone()
    }

    /// TCP connections accepted so far (a refused delivery makes none).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(dir) = self.ca_file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
