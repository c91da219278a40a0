//! The request-context settings.
//!
//! Each is `PGC_SUSET`: only a superuser (in practice the extension's SECURITY DEFINER entry
//! points) can set them, so no request role, service or other SQL session can forge an identity.
//! They are set with `GUC_ACTION_LOCAL` and so end with the transaction, which keeps a pooled
//! connection from carrying one request's identity into the next. The `ama` prefix is reserved:
//! no session can create a look-alike placeholder.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

/// `ama.actor_id`: `user:<uuid>`, `agent:<uuid>`, `visitor:<uuid>` or `service:<name>`.
pub static ACTOR_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `ama.principal_kind`: user, agent, visitor, service or anon.
pub static PRINCIPAL_KIND: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `ama.claims`: the verified JWT claims (or the principal's description) as JSON.
pub static CLAIMS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `ama.credential_id`: the token or key id behind the request, never the secret.
pub static CREDENTIAL_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `ama.client_ip`: the client address the shim saw.
pub static CLIENT_IP: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `ama.plan`: the principal's plan (the owner's plan for an agent).
pub static PLAN: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// `ama.ratelimit_slots`: size of the shared-memory ledger (postmaster start only).
pub static RATELIMIT_SLOTS: GucSetting<i32> = GucSetting::<i32>::new(131_072);

/// The raw bytes of `ama.actor_id` (no copy), or `None` when unset or empty. Valid until the
/// setting next changes: callers compare or copy it at once.
pub fn actor_id_bytes() -> Option<&'static [u8]> {
    let raw = unsafe { *ACTOR_ID.as_ptr() };
    if raw.is_null() {
        return None;
    }
    let bytes = unsafe { CStr::from_ptr(raw) }.to_bytes();
    (!bytes.is_empty()).then_some(bytes)
}

const CONTEXT_FLAGS: GucFlags = GucFlags::NO_RESET_ALL.union(GucFlags::NO_SHOW_ALL);

fn context_guc(
    name: &'static CStr,
    desc: &'static CStr,
    setting: &'static GucSetting<Option<CString>>,
) {
    GucRegistry::define_string_guc(name, desc, desc, setting, GucContext::Suset, CONTEXT_FLAGS);
}

/// Defines the settings and reserves the `ama` prefix.
pub fn init() {
    context_guc(
        c"ama.actor_id",
        c"Actor of the current request (set by ama.request).",
        &ACTOR_ID,
    );
    context_guc(
        c"ama.principal_kind",
        c"Principal kind of the current request.",
        &PRINCIPAL_KIND,
    );
    context_guc(
        c"ama.claims",
        c"Verified claims of the current request, as JSON.",
        &CLAIMS,
    );
    context_guc(
        c"ama.credential_id",
        c"Token or key id of the current request.",
        &CREDENTIAL_ID,
    );
    context_guc(
        c"ama.client_ip",
        c"Client IP address of the current request.",
        &CLIENT_IP,
    );
    context_guc(c"ama.plan", c"Plan of the current principal.", &PLAN);
    GucRegistry::define_int_guc(
        c"ama.ratelimit_slots",
        c"Number of keys the shared-memory rate-limit ledger holds.",
        c"Rounded up to a power of two. Idle keys are reused; when full, the least-used key is evicted.",
        &RATELIMIT_SLOTS,
        1024,
        1 << 24,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    crate::webhooks::init_gucs();
    unsafe { pg_sys::MarkGUCPrefixReserved(c"ama".as_ptr()) };
}

/// Sets `name` to `value` until the end of the current transaction.
pub fn set_local(name: &str, value: &str) {
    let name = CString::new(name).unwrap_or_default();
    let value = CString::new(value.replace('\0', "")).unwrap_or_default();
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            pg_sys::PGERROR as i32,
            false,
        );
    }
}
