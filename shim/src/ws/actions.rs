//! What a socket does for its client's messages: the first-message `auth`, `typing` (counted,
//! then announced by the database, which checks `send`), and refusals (counted as strikes).

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::io::{gone, End, Ws};
use super::limits::{Budgets, Full, Outbox};
use super::proto::{self, close, ClientMsg};
use super::session::Socket;
use super::threads::{Polled, Threads};
use super::{bearer, open_as, Opened};
use crate::auth::authenticate;
use crate::context::Ctx;
use crate::credential::Credential;
use crate::routes::WS_TYPING;
use futures_util::StreamExt;

impl Socket {
    /// A socket opened without a credential: its first message must be `auth`, in time.
    pub(super) async fn first_message(
        &mut self,
        source: &mut futures_util::stream::SplitStream<Ws>,
    ) -> Result<Opened, End> {
        let wait = self.app.cfg.ws_auth_timeout;
        let first = tokio::time::timeout(wait, source.next()).await;
        let token = match first {
            Ok(Some(Ok(Message::Text(t)))) => match proto::parse(t.as_str()) {
                Ok(ClientMsg::Auth { token }) => token,
                _ => return Err(End(close::UNAUTHORIZED, "auth expected")),
            },
            Err(_) => return Err(End(close::UNAUTHORIZED, "auth timeout")),
            Ok(_) => return Err(End(close::UNAUTHORIZED, "auth expected")),
        };
        let ctx = Ctx::new(
            self.app.clone(),
            self.rid.clone(),
            self.ip,
            &http::Method::GET,
        );
        let headers = bearer(&token).map_err(|()| End(close::UNAUTHORIZED, "unauthorized"))?;
        let cred = match authenticate(&ctx, &headers).await {
            Ok(Credential::None) | Err(_) => return Err(End(close::UNAUTHORIZED, "unauthorized")),
            Ok(c) => c,
        };
        // notices from before the thread set is read are still queued on this socket's own
        // subscription (made at the upgrade)
        open_as(&ctx, &self.stream, cred).await.map_err(|r| {
            End(
                r.close,
                match r.close {
                    close::UNAUTHORIZED => "unauthorized",
                    close::TRY_LATER => "try again later",
                    close::FORBIDDEN => "forbidden",
                    _ => "internal error",
                },
            )
        })
    }

    /// A `typing` message: counted, then announced by the database (which checks `send`).
    pub(super) async fn typing(
        &self,
        cred: &Credential,
        threads: &Threads,
        budgets: &Budgets,
        out: &Outbox,
        thread_id: &str,
        status: proto::Status,
    ) -> Result<Polled, Full> {
        if !threads.contains(thread_id) {
            out.text(proto::error("not_found", "thread not found"))?;
            return Ok(Polled::Ok);
        }
        if !budgets.typing() {
            out.text(proto::error("rate_limited", "too many typing messages"))?;
            return Ok(Polled::Ok);
        }
        let args = json!({"path": {"thread_id": thread_id}, "query": {}, "body": {"status": status.as_str()}});
        let r = self
            .app
            .db
            .request(
                WS_TYPING,
                cred.kind(),
                cred.raw(),
                cred.claims(),
                self.ip,
                &args,
            )
            .await;
        let (code, message) = match r {
            Ok((env, _)) => match env.status {
                200 => return Ok(Polled::Ok),
                401 => return Ok(Polled::Unauthorized),
                403 => ("forbidden", "this needs the send capability in the thread"),
                404 => ("not_found", "thread not found"),
                429 => ("rate_limited", "too many typing messages"),
                _ => ("bad_message", "typing refused"),
            },
            Err(_) => ("unavailable", "try again later"),
        };
        out.text(proto::error(code, message))?;
        Ok(Polled::Ok)
    }

    /// Tells the client its message was refused; `Err` once it has done so too often.
    pub(super) fn refuse(
        &self,
        budgets: &Budgets,
        out: &Outbox,
        code: &str,
        message: &str,
    ) -> Result<(), End> {
        if !budgets.strike() {
            return Err(End(close::POLICY, "too many bad messages"));
        }
        out.text(proto::error(code, message)).map_err(gone)
    }
}
