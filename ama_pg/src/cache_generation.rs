//! The cache generation: one counter in shared memory that says when the tables every backend
//! caches (plans, rate policies and their overrides, routes) last changed. Each backend compares
//! the generation its caches were loaded at with this counter before using them, and reloads
//! on a mismatch; the `ama._bump_cache_generation()` trigger on those tables advances it.

use pgrx::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

const NAME: &std::ffi::CStr = c"ama_pg cache generation";

static mut SHMEM: *const AtomicU64 = std::ptr::null();
static mut PREV_REQUEST: Option<unsafe extern "C-unwind" fn()> = None;
static mut PREV_STARTUP: Option<unsafe extern "C-unwind" fn()> = None;

/// Installs the shared-memory hooks; called from `_PG_init` while preloading.
pub fn init_shmem() {
    unsafe {
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(shmem_request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            prev();
        }
        pg_sys::RequestAddinShmemSpace(std::mem::size_of::<AtomicU64>());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            prev();
        }
        // AddinShmemInitLock is entry 21 of the main LWLock array.
        let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let ptr =
            pg_sys::ShmemInitStruct(NAME.as_ptr(), std::mem::size_of::<AtomicU64>(), &mut found)
                as *mut AtomicU64;
        if !found {
            // Backends start with generation 0, so their first use loads the tables.
            ptr.write(AtomicU64::new(1));
        }
        SHMEM = ptr;
        pg_sys::LWLockRelease(init_lock);
    }
}

fn counter() -> Option<&'static AtomicU64> {
    unsafe { SHMEM.as_ref() }
}

/// The current generation. Raises 55000 unless the library was preloaded.
pub fn current() -> u64 {
    let Some(c) = counter() else {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the ama_pg shared memory is not loaded",
            "Add ama_pg to shared_preload_libraries in postgresql.conf \
             (shared_preload_libraries = 'ama_pg') and restart PostgreSQL."
        );
    };
    c.load(Ordering::Acquire)
}

/// Marks every backend's cached tables stale.
pub fn bump() {
    if let Some(c) = counter() {
        c.fetch_add(1, Ordering::AcqRel);
    }
}

/// A value loaded from the cached tables, kept until the generation moves on.
pub struct Cached<T> {
    generation: u64,
    value: T,
}

impl<T: Default> Default for Cached<T> {
    fn default() -> Self {
        Cached {
            generation: 0,
            value: T::default(),
        }
    }
}

impl<T> Cached<T> {
    /// The value, reloaded with `load` first when the tables changed since it was loaded.
    pub fn get(&mut self, load: impl FnOnce() -> T) -> &T {
        let now = current();
        if self.generation != now {
            self.value = load();
            self.generation = now;
        }
        &self.value
    }
}

/// Trigger (per statement) on the cached tables: a DBA changed plans, rate policies, overrides
/// or routes; every backend reloads them on its next request.
#[pg_trigger]
fn _bump_cache_generation<'a>(
    _trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, std::convert::Infallible> {
    bump();
    // Bump again once the change is visible, so no backend caches the pre-commit rows.
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, bump);
    Ok(None)
}
