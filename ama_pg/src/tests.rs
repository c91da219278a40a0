//! `#[pg_test]`s: run inside a backend started by pgrx with `shared_preload_libraries = 'ama_pg'`.
//! These run as the superuser, so they cover the Rust adapters (token checks, the ledger,
//! request routing); the RLS policies are tested as non-superuser roles by the pgTAP suite in
//! `tests/sql`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn token_new_returns_a_well_formed_token_and_its_hash() {
        let (raw, hash, prefix) = Spi::get_three::<String, Vec<u8>, String>(
            "SELECT raw_token, token_hash, token_prefix FROM ama._token_new('agent')",
        )
        .unwrap();
        let raw = raw.unwrap();
        assert!(raw.starts_with("ama_eat_"));
        assert_eq!(hash.unwrap(), ama_core::token::hash(&raw).to_vec());
        assert!(raw.starts_with(&prefix.unwrap()));
    }

    #[pg_test(error = "invalid or expired credential")]
    fn token_hash_rejects_a_bad_checksum() {
        let bad = format!("ama_eat_{}", "0".repeat(72));
        Spi::get_one_with_args::<Vec<u8>>("SELECT ama.token_hash($1, 'agent')", &[bad.into()])
            .unwrap();
    }

    #[pg_test]
    fn ledger_admits_exactly_limit_plus_burst() {
        Spi::run("INSERT INTO ama.rate_policies (name, policy_id, rate_limit, burst, key_kind) VALUES ('t_exact', 200, 60, 5, 'ip')").unwrap();
        let admitted = Spi::get_one::<i64>(
            // The key mentions g so the function is called once per row, not once in all.
            "SELECT count(*) FILTER (WHERE allowed) FROM generate_series(1, 200) g, \
             LATERAL ama.rate_limit('t_exact', 'ip:192.0.2.1' || left(g::text, 0)) r",
        )
        .unwrap()
        .unwrap();
        assert_eq!(admitted, 65);
    }

    #[pg_test(error = "unknown rate-limit policy \"nope\"")]
    fn unknown_policy_is_rejected() {
        Spi::run("SELECT * FROM ama.rate_limit('nope', 'k')").unwrap();
    }

    #[pg_test(error = "rate-limit key must not be NULL")]
    fn null_key_is_rejected() {
        Spi::run("SELECT * FROM ama.rate_limit('thread_write', NULL)").unwrap();
    }

    #[pg_test]
    fn policy_change_applies_to_the_next_decision() {
        Spi::run("INSERT INTO ama.rate_policies (name, policy_id, rate_limit, key_kind) VALUES ('t_change', 201, 1, 'ip')").unwrap();
        let first =
            Spi::get_one::<bool>("SELECT allowed FROM ama.rate_limit('t_change', 'k')").unwrap();
        let second =
            Spi::get_one::<bool>("SELECT allowed FROM ama.rate_limit('t_change', 'k')").unwrap();
        assert_eq!((first, second), (Some(true), Some(false)));
        Spi::run("UPDATE ama.rate_policies SET rate_limit = 100 WHERE name = 't_change'").unwrap();
        let third =
            Spi::get_one::<bool>("SELECT allowed FROM ama.rate_limit('t_change', 'k')").unwrap();
        assert_eq!(third, Some(true));
    }

    #[pg_test]
    fn unknown_credentials_get_a_401_envelope() {
        let status = Spi::get_one::<i32>(
            "SELECT (ama.request('threads.list', 'agent', 'ama_eat_nope', NULL, '198.51.100.7'::inet, '{}') ->> 'status')::int",
        )
        .unwrap();
        assert_eq!(status, Some(401));
    }
}
