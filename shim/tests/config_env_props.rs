//! Property test of configuration from `AMA_*` environment variables. It sets process
//! environment variables, so it is the only test in this binary (tests in one binary run on
//! parallel threads and clap reads the environment).
//!
//! `PROPTEST_CASES` cases (256 when unset); longer: `PROPTEST_CASES=100000 cargo test --release
//! -p ama-shim --test config_env_props`.

use ama_shim::config::{Config, Options};
use proptest::prelude::*;
use secrecy::ExposeSecret;

/// Every variable the shim reads, from the flag definitions themselves, except the two that
/// name files read at once (`AMA_CONFIG` is read by `Config::load`, not here;
/// `AMA_JWT_SECRET_FILE` could name a device).
fn env_names() -> Vec<String> {
    use clap::CommandFactory;
    let v: Vec<String> = Options::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .filter_map(|e| e.to_str())
        .filter(|e| !matches!(*e, "AMA_CONFIG" | "AMA_JWT_SECRET_FILE"))
        .map(str::to_string)
        .collect();
    assert!(v.len() >= 30, "variables: {v:?}");
    v
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("127.0.0.1:0".to_string()),
        Just("[::1]:8443".to_string()),
        Just("json".to_string()),
        Just("10.0.0.0/8,::1".to_string()),
        Just("10.0.0.0/8,,not-an-ip".to_string()),
        Just("http://127.0.0.1:1/jwks".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just(String::new()),
        (0u64..1_000_000).prop_map(|n| n.to_string()),
        // environment values cannot hold NUL
        "[^\u{0}]{0,16}",
    ]
}

proptest! {
    /// Any set of `AMA_*` values: clap or the validation refuses with a message, or a configuration
    /// that satisfies the documented floors; never a panic.
    #[test]
    fn environment(vars in prop::collection::btree_map(prop::sample::select(env_names()), value(), 0..8)) {
        for v in env_names().iter().chain(["AMA_CONFIG".to_string(), "AMA_JWT_SECRET_FILE".to_string()].iter()) {
            std::env::remove_var(v);
        }
        for (k, v) in &vars {
            if *k == "AMA_DATABASE_URL" {
                // a password that must never show in Debug output
                std::env::set_var(k, format!("{v} password=hunter2-marker"));
            } else {
                std::env::set_var(k, v);
            }
        }
        let got = Config::from_args(["ama-shim"]);
        for k in vars.keys() {
            std::env::remove_var(k);
        }
        match got {
            Ok(c) => {
                prop_assert!(["AMA_TLS_CERT", "AMA_TLS_KEY", "AMA_DATABASE_URL"].iter().all(|k| vars.contains_key(*k)));
                prop_assert!(c.pool_size >= 1 && c.max_connections >= 1);
                prop_assert!(c.max_header_bytes >= 8192 && c.max_headers >= 1);
                prop_assert!(c.jwt_secret.as_ref().is_none_or(|s| !s.expose_secret().is_empty()));
                prop_assert!(!format!("{c:?}").contains("hunter2-marker"), "database URL in Debug output");
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
