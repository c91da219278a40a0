//! Cancelling a statement that outlived its deadline. Straight to PostgreSQL, tokio-postgres's
//! own cancel request does. Behind a transaction pooler the request is sent as libpq sends it:
//! the 16-byte packet, then the socket stays open until the pooler closes it. tokio-postgres
//! half-closes the socket right after writing, and pgbouncer 1.18 then drops the request or
//! exits ("bad client state"), so the statement would go on running.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_postgres::config::Host;
use tokio_postgres::{CancelToken, NoTls};

/// The longest a cancel may take, pooler's answer included.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// A socket whose shutdown does nothing: the other side closes it.
struct KeepOpen(TcpStream);

impl AsyncRead for KeepOpen {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for KeepOpen {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Sends the cancel request to `host:port` and waits for the other side to close.
async fn cancel_and_wait(token: &CancelToken, host: &str, port: u16) -> std::io::Result<()> {
    let mut s = KeepOpen(TcpStream::connect((host, port)).await?);
    token
        .cancel_query_raw(&mut s, NoTls)
        .await
        .map_err(std::io::Error::other)?;
    let mut buf = [0u8; 64];
    while s.0.read(&mut buf).await? > 0 {}
    Ok(())
}

/// Cancels the statement of `token`'s connection, within [`CANCEL_TIMEOUT`]. `pooled`: the
/// connection goes through a transaction pooler at `config`'s TCP hosts (each is tried until
/// one takes the request).
pub async fn cancel(token: CancelToken, config: &tokio_postgres::Config, pooled: bool) {
    let attempt = async {
        if !pooled {
            let _ = token.cancel_query(NoTls).await;
            return;
        }
        let ports = config.get_ports();
        for (i, host) in config.get_hosts().iter().enumerate() {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            if let Host::Tcp(h) = host {
                if cancel_and_wait(&token, h, port).await.is_ok() {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(CANCEL_TIMEOUT, attempt).await;
}
