//! Plain-Rust logic shared by the `ama_pg` extension and the `ama-shim` front door.
//!
//! Nothing here knows about PostgreSQL or HTTP: the extension and the shim are thin adapters
//! around these functions, which are unit-tested with plain `cargo test`.

pub mod caps;
pub mod claims;
pub mod envelope;
pub mod errors;
pub mod events;
pub mod gcra;
pub mod input;
pub mod net;
pub mod ssrf;
pub mod time;
pub mod token;
pub mod webhook;
