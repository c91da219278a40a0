//! A socket's output end: the writer task with its bounded queue, and how a socket ends.

use std::time::Duration;

use futures_util::SinkExt;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::limits::Full;
use super::proto::close;

/// The server end of an upgraded connection.
pub(crate) type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// How the session ended: a close code and reason for the client.
pub(crate) struct End(pub u16, pub &'static str);

pub(crate) fn close_msg(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// Writes the queue to the client; on `kill` (a slow consumer) it sends a close and stops.
pub(crate) async fn writer(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    mut rx: mpsc::Receiver<Message>,
    mut kill: oneshot::Receiver<()>,
) {
    loop {
        let m = tokio::select! {
            biased;
            _ = &mut kill => break,
            m = rx.recv() => m,
        };
        let Some(m) = m else {
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            return;
        };
        let last = matches!(m, Message::Close(_));
        tokio::select! {
            biased;
            _ = &mut kill => break,
            r = sink.send(m) => if r.is_err() || last { return },
        }
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(close_msg(close::POLICY, "slow consumer")),
    )
    .await;
}

pub(crate) fn gone(f: Full) -> End {
    match f {
        Full::SlowConsumer => End(close::POLICY, "slow consumer"),
        Full::Closed => End(1000, "closed by client"),
    }
}
