//! Webhooks: the settings and the thin adapters around `ama_core::ssrf` and `ama_core::webhook`.
//!
//! - `ama.webhook_secret_key` (SIGHUP, superuser-only, hidden from `SHOW ALL`): 64 hex
//!   characters, the key that seals signing secrets. Only postgresql.conf (or `ALTER SYSTEM`)
//!   sets it, so it is not in any dump and no request role can `SHOW` or `current_setting()` it.
//! - `ama.webhook_backoff_base_ms`, `ama.webhook_backoff_cap_ms` (SUSET): the retry schedule.
//!
//! Every function here is executable by nobody but the extension's own SECURITY DEFINER code
//! (`sql/065_webhooks.sql`); the decrypted secret never leaves Rust.

use std::ffi::CString;

use ama_core::webhook;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

/// `ama.webhook_secret_key`: 64 hex characters.
pub static SECRET_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `ama.webhook_backoff_base_ms`: the first retry waits between half and all of this.
pub static BACKOFF_BASE_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);
/// `ama.webhook_backoff_cap_ms`: the longest wait between two attempts.
pub static BACKOFF_CAP_MS: GucSetting<i32> = GucSetting::<i32>::new(3_600_000);

/// Defines the webhook settings (called from `gucs::init`, before the prefix is reserved).
pub fn init_gucs() {
    GucRegistry::define_string_guc(
        c"ama.webhook_secret_key",
        c"Key (64 hex characters) that seals webhook signing secrets.",
        c"Set in postgresql.conf or with ALTER SYSTEM; readable by superusers only.",
        &SECRET_KEY,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL | GucFlags::NO_RESET_ALL,
    );
    GucRegistry::define_int_guc(
        c"ama.webhook_backoff_base_ms",
        c"First webhook retry delay in milliseconds (doubles per consecutive failure, with jitter).",
        c"Attempt n waits between half and all of min(cap, base * 2^(n-1)).",
        &BACKOFF_BASE_MS,
        1,
        86_400_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"ama.webhook_backoff_cap_ms",
        c"Longest webhook retry delay in milliseconds.",
        c"Caps the exponential webhook retry delay.",
        &BACKOFF_CAP_MS,
        1,
        86_400_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
}

/// The sealing key, or 55000 (object not in prerequisite state) naming the setting, never its value.
fn key() -> [u8; webhook::KEY_LEN] {
    let setting = SECRET_KEY.get();
    let text = setting.as_ref().and_then(|c| c.to_str().ok());
    match webhook::parse_key(text) {
        Ok(k) => k,
        Err(e) => crate::errors::not_configured(&e.to_string()),
    }
}

/// `ama._webhook_check_url(url)`: the callback URL in normalised form, or 22023 naming the field.
#[pg_extern(immutable, strict, parallel_safe, name = "_webhook_check_url")]
fn check_url(url: &str) -> String {
    ama_core::ssrf::check_callback_url(url)
        .unwrap_or_else(|e| crate::errors::bad_input(&e.to_string()))
}

/// `ama._webhook_secret_new(subscription)`: a fresh signing secret for the receiver and the same
/// secret sealed for storage (bound to the subscription id). 55000 when no key is configured.
#[pg_extern(volatile, strict, name = "_webhook_secret_new")]
fn secret_new(
    subscription: pgrx::Uuid,
) -> TableIterator<'static, (name!(secret, String), name!(sealed, Vec<u8>))> {
    let key = key();
    let (text, raw) = webhook::new_secret();
    let sealed = webhook::seal(&key, subscription.as_bytes(), &raw);
    TableIterator::once((text, sealed))
}

/// `ama._webhook_sign(subscription, sealed, id, ts, body)`: the `webhook-signature` header
/// value; NULL when the sealed secret does not open under the configured key (another key, or
/// a row moved from another subscription). 55000 when no key is configured.
#[pg_extern(volatile, strict, name = "_webhook_sign")]
fn sign(subscription: pgrx::Uuid, sealed: &[u8], id: &str, ts: i64, body: &str) -> Option<String> {
    let key = key();
    let secret = webhook::open(&key, subscription.as_bytes(), sealed)?;
    Some(webhook::sign(&secret, id, ts, body.as_bytes()))
}

/// `ama._webhook_backoff_ms(failures)`: the wait before the next attempt after `failures`
/// consecutive failures, from the two backoff settings, with jitter.
#[pg_extern(volatile, strict, name = "_webhook_backoff_ms")]
fn backoff_ms(failures: i32) -> i64 {
    webhook::backoff_ms(
        failures,
        i64::from(BACKOFF_BASE_MS.get()),
        i64::from(BACKOFF_CAP_MS.get()),
        webhook::random_unit(),
    )
}
