//! The HTTP client of the deliverer and its SSRF guard.
//!
//! - Every name is resolved by [`GuardedResolver`], which keeps only the addresses
//!   `ama_core::ssrf::is_blocked` allows and refuses when none remain: the connection goes to an
//!   address that was checked, so DNS rebinding cannot point it elsewhere. An IP-literal host
//!   (which reqwest connects to without resolving) is checked before the request.
//! - No redirect is followed (a 3xx is a failed attempt), no proxy from the environment, `https`
//!   only, a connect timeout, a total timeout, and at most [`MAX_RESPONSE_BYTES`] of the answer
//!   read (then dropped).
//! - `allow_private_networks` (tests, a receiver on the same host) turns the address check off.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ama_core::ssrf;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::store::Job;

/// Longest wait for the TCP and TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole attempt (connect, send, answer) may take.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of the receiver's answer read at most; the rest is dropped with the connection.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A name whose every address is in a blocked range.
#[derive(Debug, thiserror::Error)]
#[error(
    "no allowed address (the SSRF guard refuses loopback, private, link-local and reserved ranges)"
)]
pub struct Blocked;

/// Resolves with the system resolver and keeps only the allowed addresses.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private_networks: bool,
}

/// The addresses of `addrs` a delivery may connect to.
pub fn allowed(addrs: impl Iterator<Item = SocketAddr>, allow_private: bool) -> Vec<SocketAddr> {
    addrs
        .filter(|a| allow_private || !ssrf::is_blocked(a.ip()))
        .collect()
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private_networks;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept = allowed(found, allow);
            if kept.is_empty() {
                return Err(Box::new(Blocked) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// Builds the deliverer's client: the webpki roots plus `ca_file` (PEM) when given.
pub fn build(
    allow_private_networks: bool,
    ca_file: Option<&Path>,
) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("webhook CA file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("webhook CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "webhook CA file {}: no certificate",
                path.display()
            ));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("webhook CA file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private_networks,
        }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .pool_max_idle_per_host(1)
        .user_agent(concat!("ama-shim-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("webhook HTTP client: {e}"))
}

/// The outcome of one attempt, as `ama.webhook_report` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The HTTP status; 0 when no answer came (refused, timed out, blocked).
    pub status: u16,
    /// Any 2xx.
    pub ok: bool,
    /// The SSRF guard refused the address (for the log).
    pub blocked: bool,
}

impl Outcome {
    fn no_answer(blocked: bool) -> Outcome {
        Outcome {
            status: 0,
            ok: false,
            blocked,
        }
    }
}

/// Whether an IP-literal host may be reached (names are checked by the resolver).
pub fn literal_allowed(url: &reqwest::Url, allow_private: bool) -> bool {
    allow_private || !ssrf::host_ip(url).is_some_and(ssrf::is_blocked)
}

fn is_blocked_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<Blocked>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// POSTs one signed delivery and reads at most [`MAX_RESPONSE_BYTES`] of the answer.
pub async fn deliver(client: &reqwest::Client, job: &Job, allow_private: bool) -> Outcome {
    let Ok(url) = reqwest::Url::parse(&job.callback_url) else {
        return Outcome::no_answer(false);
    };
    if url.scheme() != "https" {
        return Outcome::no_answer(false);
    }
    if !literal_allowed(&url, allow_private) {
        return Outcome::no_answer(true);
    }
    let sent = client
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", job.webhook_id.as_str())
        .header("webhook-timestamp", job.webhook_timestamp.to_string())
        .header("webhook-signature", job.webhook_signature.as_str())
        .body(job.body.clone())
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => return Outcome::no_answer(is_blocked_error(&e)),
    };
    let status = resp.status();
    let mut read = 0usize;
    while read < MAX_RESPONSE_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => read += c.len(),
            Ok(None) | Err(_) => break,
        }
    }
    drop(resp);
    Outcome {
        status: status.as_u16(),
        ok: status.is_success(),
        blocked: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn the_resolver_keeps_only_allowed_addresses() {
        let mixed = addrs(&[
            "127.0.0.1:0",
            "8.8.8.8:0",
            "[::1]:0",
            "[2606:4700:4700::1111]:0",
        ]);
        assert_eq!(
            allowed(mixed.clone().into_iter(), false),
            addrs(&["8.8.8.8:0", "[2606:4700:4700::1111]:0"])
        );
        assert_eq!(allowed(mixed.clone().into_iter(), true), mixed);
        let internal = addrs(&["10.0.0.1:0", "169.254.169.254:0", "[::ffff:127.0.0.1]:0"]);
        assert!(allowed(internal.into_iter(), false).is_empty());
    }

    #[test]
    fn literal_hosts_are_checked_before_the_request() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(!literal_allowed(&u("https://127.0.0.1:9/"), false));
        assert!(!literal_allowed(&u("https://[::ffff:a9fe:a9fe]/"), false));
        assert!(literal_allowed(&u("https://127.0.0.1:9/"), true));
        assert!(literal_allowed(&u("https://8.8.8.8/"), false));
        assert!(
            literal_allowed(&u("https://localhost/"), false),
            "names go to the resolver"
        );
    }

    #[tokio::test]
    async fn localhost_resolves_to_nothing_allowed() {
        let r = GuardedResolver {
            allow_private_networks: false,
        };
        let name: Name = "localhost".parse().unwrap();
        let err = match r.resolve(name).await {
            Ok(a) => panic!("localhost allowed: {:?}", a.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(is_blocked_error(err.as_ref()));
        let open = GuardedResolver {
            allow_private_networks: true,
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(open.resolve(name).await.unwrap().next().is_some());
    }

    #[test]
    fn the_client_builds_and_refuses_a_missing_ca_file() {
        assert!(build(false, None).is_ok());
        assert!(build(false, Some(Path::new("/nonexistent/ca.pem"))).is_err());
    }
}
