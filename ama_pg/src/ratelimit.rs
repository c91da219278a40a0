//! The rate-limit ledger: GCRA state for every (policy, key) in shared memory.
//!
//! Layout: a header, then `groups` cache-line-aligned groups of `GROUP` slots, each group guarded
//! by a tiny spinlock held only for the arithmetic (no allocation, no error can be raised while
//! it is held). A key hashes (with a per-cluster random salt) to one group. Within the group a
//! slot is reused when its TAT is in the past (such an entry means "full allowance", exactly like
//! no entry), and when every slot is live the one with the smallest TAT (the least-used key) is
//! evicted. Memory is therefore fixed at `ama.ratelimit_slots`, and a flood of new keys can only
//! evict keys that have used almost nothing, never lock anybody out.
//!
//! The state is not transactional: a decision taken in a transaction that rolls back still
//! counts. It is lost on a server restart, which at worst gives every key its full allowance once.

use ama_core::gcra::{self, Policy};
use pgrx::prelude::*;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::cache_generation::{self, Cached};
use crate::{errors, gucs, rawfn, v1_function};

/// Slots per group (one probe sequence). Sixteen ways keep live keys from being evicted until the
/// ledger is nearly full.
const GROUP: usize = 16;
/// Display bytes kept per key (an IPv6 address with its credential kind, or `sql:tok:<uuid>`, fits).
const KEY_BYTES: usize = 56;
/// Policies with counters (policy ids are 1..MAX_POLICIES).
pub const MAX_POLICIES: usize = 256;
const MAGIC: u64 = 0x616d_615f_726c_0003;

/// A slot's detail, read only once its fingerprint matched (or to claim the slot).
#[repr(C)]
#[derive(Clone, Copy)]
struct Meta {
    /// Emission interval of the policy when the TAT was stored (to rescale after a change).
    interval: u64,
    policy: u16,
    key_len: u8,
    /// bit 0: a denial of the current episode was already audited.
    flags: u8,
    _pad: u32,
    key: [u8; KEY_BYTES],
}

/// One group's slots, as parallel arrays: a decision scans the 16 fingerprints (two cache lines)
/// and touches one slot's TAT and detail, instead of striding over 16 whole slots; with keys
/// spread over a ledger much larger than the CPU caches, cache misses were most of its cost.
#[repr(C)]
#[derive(Clone, Copy)]
struct Slots {
    /// Key fingerprints; 0 marks a free slot.
    fps: [u64; GROUP],
    /// Theoretical arrival times (ns on the monotonic clock); also scanned to pick a victim.
    tats: [u64; GROUP],
    meta: [Meta; GROUP],
}

#[repr(C, align(64))]
struct Group {
    lock: AtomicU32,
    /// Only read or written while `lock` is held.
    slots: std::cell::UnsafeCell<Slots>,
}

#[repr(C)]
struct Header {
    magic: u64,
    groups: u64,
    salt: [u64; 2],
    evictions: AtomicU64,
    allowed: [AtomicU64; MAX_POLICIES],
    denied: [AtomicU64; MAX_POLICIES],
}

static mut SHMEM: *mut Header = std::ptr::null_mut();
static mut PREV_REQUEST: Option<unsafe extern "C-unwind" fn()> = None;
static mut PREV_STARTUP: Option<unsafe extern "C-unwind" fn()> = None;

fn group_count() -> usize {
    let slots = (gucs::RATELIMIT_SLOTS.get().max(1024) as usize).next_power_of_two();
    slots / GROUP
}

fn shmem_size() -> usize {
    std::mem::size_of::<Header>().next_multiple_of(64)
        + group_count() * std::mem::size_of::<Group>()
}

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
        pg_sys::RequestAddinShmemSpace(shmem_size());
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
        let ptr = pg_sys::ShmemInitStruct(
            c"ama_pg rate-limit ledger".as_ptr(),
            shmem_size(),
            &mut found,
        ) as *mut Header;
        if !found {
            std::ptr::write_bytes(ptr as *mut u8, 0, shmem_size());
            (*ptr).groups = group_count() as u64;
            let mut salt = [0u8; 16];
            // pg_strong_random is the server's CSPRNG; a fixed salt is only a fallback.
            if !pg_sys::pg_strong_random(salt.as_mut_ptr() as *mut _, salt.len()) {
                salt = *b"ama_pg-fallback!";
            }
            (*ptr).salt = [
                u64::from_le_bytes(salt[..8].try_into().unwrap_or_default()),
                u64::from_le_bytes(salt[8..].try_into().unwrap_or_default()),
            ];
            (*ptr).magic = MAGIC;
        }
        SHMEM = ptr;
        pg_sys::LWLockRelease(init_lock);
    }
}

fn header() -> &'static Header {
    let ptr = unsafe { SHMEM };
    if ptr.is_null() || unsafe { (*ptr).magic } != MAGIC {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the ama_pg rate-limit ledger is not loaded",
            "Add ama_pg to shared_preload_libraries in postgresql.conf \
             (shared_preload_libraries = 'ama_pg') and restart PostgreSQL."
        );
    }
    unsafe { &*ptr }
}

fn groups(h: &Header) -> &[Group] {
    let base = (h as *const Header as *const u8)
        .wrapping_add(std::mem::size_of::<Header>().next_multiple_of(64));
    unsafe { std::slice::from_raw_parts(base as *const Group, h.groups as usize) }
}

struct SpinGuard<'a>(&'a AtomicU32);

impl<'a> SpinGuard<'a> {
    fn lock(lock: &'a AtomicU32) -> Self {
        let mut spins = 0u32;
        while lock
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        SpinGuard(lock)
    }
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Nanoseconds on the system-wide monotonic clock, shared by every backend.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(gcra::NS_PER_SEC)
        .saturating_add(ts.tv_nsec as u64)
}

fn fingerprint(h: &Header, policy_id: u16, key: &str) -> u64 {
    let mut s = std::collections::hash_map::DefaultHasher::new();
    h.salt.hash(&mut s);
    policy_id.hash(&mut s);
    key.hash(&mut s);
    s.finish().max(1)
}

/// The result of one ledger decision.
pub struct Outcome {
    pub decision: gcra::Decision,
    /// First denial of a key since it was last allowed: worth one audit row.
    pub first_denial: bool,
}

/// Decides one request of weight `cost` for `key` under `policy`. With `commit` false nothing
/// is stored: the decision says whether such a request would be admitted now.
pub fn decide(policy_id: u16, policy: &Policy, key: &str, cost: u32, commit: bool) -> Outcome {
    let h = header();
    let fp = fingerprint(h, policy_id, key);
    let all = groups(h);
    let group = &all[(fp as usize) & (all.len() - 1)];
    let now = now_ns();
    let outcome = {
        let _guard = SpinGuard::lock(&group.lock);
        // SAFETY: the group's spinlock is held.
        let g = unsafe { &mut *group.slots.get() };
        let idx = match (0..GROUP).find(|&i| g.fps[i] == fp && g.meta[i].policy == policy_id) {
            Some(i) => i,
            // A look without commit never claims (or evicts) a slot.
            None if !commit => {
                return Outcome {
                    decision: policy.decide(0, now, cost),
                    first_denial: false,
                };
            }
            None => {
                let victim = (0..GROUP)
                    .min_by_key(|&i| if g.fps[i] == 0 { 0 } else { g.tats[i].max(1) })
                    .unwrap_or(0);
                if g.fps[victim] != 0 && g.tats[victim] > now {
                    h.evictions.fetch_add(1, Ordering::Relaxed);
                }
                let bytes = key.as_bytes();
                let n = bytes.len().min(KEY_BYTES);
                let mut k = [0u8; KEY_BYTES];
                k[..n].copy_from_slice(&bytes[..n]);
                g.fps[victim] = fp;
                g.tats[victim] = 0;
                g.meta[victim] = Meta {
                    interval: 0,
                    policy: policy_id,
                    key_len: n as u8,
                    flags: 0,
                    _pad: 0,
                    key: k,
                };
                victim
            }
        };
        let meta = &mut g.meta[idx];
        let tat = gcra::rescale(g.tats[idx], now, meta.interval, policy.interval());
        g.tats[idx] = tat;
        meta.interval = policy.interval();
        let decision = policy.decide(tat, now, cost);
        if !commit {
            return Outcome {
                decision,
                first_denial: false,
            };
        }
        g.tats[idx] = decision.tat;
        let first_denial = !decision.allowed && meta.flags & 1 == 0;
        if decision.allowed && cost > 0 {
            meta.flags &= !1;
        } else if !decision.allowed {
            meta.flags |= 1;
        }
        Outcome {
            decision,
            first_denial,
        }
    };
    if cost > 0 {
        let counters = if outcome.decision.allowed {
            &h.allowed
        } else {
            &h.denied
        };
        counters[usize::from(policy_id) % MAX_POLICIES].fetch_add(1, Ordering::Relaxed);
    }
    outcome
}

/// Forgets one key's state; returns whether it was present.
pub fn reset(policy_id: u16, key: &str) -> bool {
    let h = header();
    let fp = fingerprint(h, policy_id, key);
    let all = groups(h);
    let group = &all[(fp as usize) & (all.len() - 1)];
    let _guard = SpinGuard::lock(&group.lock);
    // SAFETY: the group's spinlock is held.
    let g = unsafe { &mut *group.slots.get() };
    match (0..GROUP).find(|&i| g.fps[i] == fp && g.meta[i].policy == policy_id) {
        Some(i) => {
            let live = g.tats[i] > now_ns();
            g.fps[i] = 0;
            g.tats[i] = 0;
            live
        }
        None => false,
    }
}

/// A live bucket, for the DBA view.
pub struct Bucket {
    pub policy_id: u16,
    pub key: String,
    pub tat: u64,
}

/// Copies every live bucket (TAT in the future) out of shared memory.
pub fn live_buckets() -> (u64, Vec<Bucket>) {
    let h = header();
    let now = now_ns();
    let mut out = Vec::new();
    for group in groups(h) {
        let copy: Slots = {
            let _guard = SpinGuard::lock(&group.lock);
            // SAFETY: the group's spinlock is held.
            unsafe { *group.slots.get() }
        };
        for i in (0..GROUP).filter(|&i| copy.fps[i] != 0 && copy.tats[i] > now) {
            let m = &copy.meta[i];
            out.push(Bucket {
                policy_id: m.policy,
                key: String::from_utf8_lossy(&m.key[..usize::from(m.key_len)]).into_owned(),
                tat: copy.tats[i],
            });
        }
    }
    (now, out)
}

/// Allowed and denied decision counts for one policy id.
pub fn counters(policy_id: u16) -> (u64, u64) {
    let h = header();
    let i = usize::from(policy_id) % MAX_POLICIES;
    (
        h.allowed[i].load(Ordering::Relaxed),
        h.denied[i].load(Ordering::Relaxed),
    )
}

/// Evictions of live keys since start.
pub fn evictions() -> u64 {
    header().evictions.load(Ordering::Relaxed)
}

/// Total slots.
pub fn capacity() -> u64 {
    header().groups * GROUP as u64
}

// ---------------------------------------------------------------------------
// Policies, cached per backend and reloaded when the generation changes.
// ---------------------------------------------------------------------------

/// A policy as cached in a backend.
#[derive(Clone)]
pub struct CachedPolicy {
    pub id: u16,
    pub name: String,
    pub key_kind: String,
    pub base: Policy,
    pub by_plan: HashMap<String, Policy>,
}

impl CachedPolicy {
    /// The policy that applies to a principal on `plan`.
    pub fn for_plan(&self, plan: &str) -> Policy {
        self.by_plan.get(plan).copied().unwrap_or(self.base)
    }

    /// Whole seconds of the period, for `RateLimit-Policy`'s `w`.
    pub fn window_secs(&self) -> u64 {
        gcra::ceil_secs(self.base.period_ns)
    }
}

thread_local! {
    static POLICIES: std::cell::RefCell<Cached<HashMap<String, Rc<CachedPolicy>>>> =
        std::cell::RefCell::new(Cached::default());
}

fn load_policies() -> HashMap<String, Rc<CachedPolicy>> {
    let mut map: HashMap<String, CachedPolicy> = HashMap::new();
    Spi::connect(|client| {
        // A SECURITY DEFINER SQL function reads the policy tables, so callers need no privilege
        // on them and this function needs no SECURITY DEFINER (and no per-call setup) itself.
        let rows = client
            .select("SELECT * FROM ama._rate_policy_rows()", None, &[])
            .unwrap_or_else(|e| errors::internal(&format!("cannot load rate policies: {e}")));
        for row in rows {
            let id: i32 = row.get(1).ok().flatten().unwrap_or(0);
            let name: String = row.get(2).ok().flatten().unwrap_or_default();
            let key_kind: String = row.get(3).ok().flatten().unwrap_or_default();
            let limit: i64 = row.get(4).ok().flatten().unwrap_or(0);
            let period: i64 = row.get(5).ok().flatten().unwrap_or(0);
            let burst: i64 = row.get(6).ok().flatten().unwrap_or(0);
            let Ok(base) = Policy::new(limit, period, burst) else {
                continue;
            };
            let entry = map.entry(name.clone()).or_insert_with(|| CachedPolicy {
                id: id as u16,
                name,
                key_kind,
                base,
                by_plan: HashMap::new(),
            });
            let plan: Option<String> = row.get(7).ok().flatten();
            let o_limit: Option<i64> = row.get(8).ok().flatten();
            let o_burst: Option<i64> = row.get(9).ok().flatten();
            if let (Some(plan), Some(l)) = (plan, o_limit) {
                if let Ok(p) = Policy::new(l, period, o_burst.unwrap_or(burst)) {
                    entry.by_plan.insert(plan, p);
                }
            }
        }
    });
    map.into_iter().map(|(k, v)| (k, Rc::new(v))).collect()
}

/// Runs `f` on the backend's policy cache, reloading it first when a DBA changed the policies.
fn with_policies<R>(f: impl FnOnce(&HashMap<String, Rc<CachedPolicy>>) -> R) -> R {
    POLICIES.with(|cell| f(cell.borrow_mut().get(load_policies)))
}

/// Looks a policy up by name.
pub fn policy(name: &str) -> Option<Rc<CachedPolicy>> {
    with_policies(|m| m.get(name).cloned())
}

fn require_policy(name: Option<&str>) -> Rc<CachedPolicy> {
    let name = name.unwrap_or_else(|| errors::null_input("policy must not be NULL"));
    policy(name).unwrap_or_else(|| {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "unknown rate-limit policy \"{}\"",
                name.chars().take(64).collect::<String>()
            ),
            "List the policies with: SELECT name FROM ama.rate_policies"
        );
    })
}

fn require_key(key: Option<&str>) -> &str {
    match key {
        Some(k) if !k.is_empty() => k,
        Some(_) => errors::bad_input("rate-limit key must not be empty"),
        None => errors::null_input("rate-limit key must not be NULL"),
    }
}

/// Keys given to `ama.rate_limit` over SQL are stored under this prefix, so a service can never
/// touch the buckets `ama.request` keeps for IPs, tokens and users (their keys never start with it).
pub const SQL_KEY_PREFIX: &str = "sql:";

/// `ama.rate_limit(policy, key, plan, cost)`: takes one decision for `key` under `policy`, for
/// `plan` when given, and returns one record (allowed, limit, remaining, reset_seconds,
/// retry_after_seconds, window_seconds). The hit counts even if the calling transaction rolls
/// back. The key is stored as `sql:<key>` (see [`SQL_KEY_PREFIX`]).
///
/// A plain version-1 C function (declared in `sql/040_ratelimit.sql`) rather than a `#[pg_extern]`
/// set-returning function: it is the ledger's hot path, and the set-returning protocol and
/// argument marshalling cost as much as the decision itself. The result row type is built once
/// per call site and kept in `fn_extra`.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn ama_rate_limit(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    unsafe { rate_limit_call(fcinfo, Some(SQL_KEY_PREFIX)) }
}

v1_function!(pg_finfo_ama_rate_limit);

/// `ama._rate_limit_raw(policy, key, plan, cost)`: the same decision on the key as given, for the
/// extension's own SECURITY DEFINER code (plan changes); executable by nobody else.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn ama_rate_limit_raw(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    unsafe { rate_limit_call(fcinfo, None) }
}

v1_function!(pg_finfo_ama_rate_limit_raw);

unsafe fn rate_limit_call(fcinfo: pg_sys::FunctionCallInfo, prefix: Option<&str>) -> pg_sys::Datum {
    let (policy, key, plan, cost) = unsafe {
        (
            pgrx::fcinfo::pg_getarg::<&str>(fcinfo, 0),
            pgrx::fcinfo::pg_getarg::<&str>(fcinfo, 1),
            pgrx::fcinfo::pg_getarg::<&str>(fcinfo, 2),
            pgrx::fcinfo::pg_getarg::<i32>(fcinfo, 3),
        )
    };
    let p = require_policy(policy);
    let key = require_key(key);
    let cost = cost.unwrap_or_else(|| errors::null_input("cost must not be NULL"));
    if cost < 0 {
        errors::bad_input("cost must not be negative");
    }
    let applied = p.for_plan(plan.unwrap_or(""));
    let d = match prefix {
        Some(pre) => decide(p.id, &applied, &format!("{pre}{key}"), cost as u32, true),
        None => decide(p.id, &applied, key, cost as u32, true),
    }
    .decision;
    let mut values = [
        pg_sys::Datum::from(d.allowed),
        pg_sys::Datum::from(i64::from(d.limit)),
        pg_sys::Datum::from(i64::from(d.remaining)),
        pg_sys::Datum::from(gcra::ceil_secs(d.reset_ns) as i64),
        pg_sys::Datum::from(gcra::ceil_secs(d.retry_after_ns) as i64),
        pg_sys::Datum::from(p.window_secs() as i64),
    ];
    unsafe { rawfn::record(fcinfo, &mut values) }
}

/// Forgets the state of one key so it gets its full allowance again.
#[pg_extern(volatile, parallel_unsafe, security_definer, name = "rate_limit_reset")]
#[search_path(pg_catalog, pg_temp)]
fn rate_limit_reset(policy: Option<&str>, key: Option<&str>) -> bool {
    let p = require_policy(policy);
    reset(p.id, require_key(key))
}

/// Every live bucket: policy, key (a token id, user id or IP; never a secret), remaining, reset.
#[pg_extern(volatile, parallel_unsafe, security_definer, name = "_rate_buckets")]
#[search_path(pg_catalog, pg_temp)]
fn rate_buckets() -> TableIterator<
    'static,
    (
        name!(policy, String),
        name!(key, String),
        name!(remaining, i64),
        name!(reset_seconds, i64),
    ),
> {
    let by_id: HashMap<u16, Rc<CachedPolicy>> =
        with_policies(|m| m.values().map(|p| (p.id, p.clone())).collect());
    let (now, buckets) = live_buckets();
    let rows: Vec<_> = buckets
        .into_iter()
        .map(|b| {
            let (name, remaining) = match by_id.get(&b.policy_id) {
                Some(p) => (
                    p.name.clone(),
                    i64::from(p.base.decide(b.tat, now, 0).remaining),
                ),
                None => (format!("#{}", b.policy_id), 0),
            };
            (
                name,
                b.key,
                remaining,
                gcra::ceil_secs(b.tat.saturating_sub(now)) as i64,
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// Allowed and denied decisions per policy id since the server started.
#[pg_extern(volatile, parallel_safe, name = "_rate_counters")]
fn rate_counters() -> TableIterator<
    'static,
    (
        name!(policy_id, i32),
        name!(allowed, i64),
        name!(denied, i64),
    ),
> {
    let rows: Vec<_> = (1..MAX_POLICIES as u16)
        .map(|id| (id, counters(id)))
        .filter(|(_, (a, d))| *a > 0 || *d > 0)
        .map(|(id, (a, d))| (i32::from(id), a as i64, d as i64))
        .collect();
    TableIterator::new(rows)
}

/// Ledger size and evictions of live keys.
#[pg_extern(volatile, parallel_safe, name = "rate_limit_ledger")]
fn rate_limit_ledger() -> TableIterator<
    'static,
    (
        name!(slots, i64),
        name!(live_evictions, i64),
        name!(generation, i64),
    ),
> {
    TableIterator::once((
        capacity() as i64,
        evictions() as i64,
        cache_generation::current() as i64,
    ))
}
