//! `ama._event_payload(thread, seq)`: the sealed payload of a live-event notification
//! (`ama_core::events`). Called by the SECURITY DEFINER trigger `ama._notify_message()`, which
//! alone may read `ama.event_keys`; executable by nobody else.

use ama_core::events::{self, KEY_LEN};
use pgrx::prelude::*;
use std::cell::Cell;

use crate::errors;

thread_local! {
    /// The sealing key, read once per backend (it is made at install and never changes).
    static KEY: Cell<Option<[u8; KEY_LEN]>> = const { Cell::new(None) };
}

fn key() -> [u8; KEY_LEN] {
    if let Some(k) = KEY.with(Cell::get) {
        return k;
    }
    let raw: Option<Vec<u8>> =
        Spi::get_one("SELECT k.key FROM ama.event_keys k WHERE k.key_id = 1")
            .unwrap_or_else(|e| errors::internal(&format!("cannot read the event key: {e}")));
    let k: [u8; KEY_LEN] = raw
        .and_then(|v| v.try_into().ok())
        .unwrap_or_else(|| errors::internal("ama.event_keys holds no 32-byte key"));
    KEY.with(|c| c.set(Some(k)));
    k
}

/// The sealed notification payload for a committed message.
#[pg_extern(volatile, parallel_safe, name = "_event_payload")]
fn event_payload(thread: pgrx::Uuid, seq: i64) -> String {
    events::seal(&key(), thread.as_bytes(), seq)
}

/// The sealed payload of an ephemeral typing notice (`ama_core::events::seal_typing`). Called by
/// the SECURITY DEFINER `ama._notify_typing()` only; executable by nobody else.
#[pg_extern(volatile, parallel_safe, name = "_typing_payload")]
fn typing_payload(thread: pgrx::Uuid, actor: &str, started: bool) -> String {
    events::seal_typing(
        &key(),
        thread.as_bytes(),
        actor,
        started,
        ama_core::time::unix_ms_now(),
    )
    .unwrap_or_else(|| errors::bad_input("typing: actor id out of range"))
}
