//! Test and development support for ama_pg: a throwaway PostgreSQL cluster ([`cluster`]),
//! development credentials ([`dev`]), a small HTTPS client for end-to-end tests ([`client`]), a
//! running system ([`stack`]) and the fixtures the end-to-end tests share ([`fixtures`]).

pub mod client;
pub mod cluster;
pub mod dev;
pub mod fixtures;
pub mod pooler;
pub mod receiver;
pub mod stack;
pub mod ws;

/// One line on stderr and exit status 2: the harness's way to fail without a stack trace.
pub fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("ama-harness: {message}");
    std::process::exit(2)
}
