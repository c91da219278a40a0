-- Ledger benchmark fixtures (run as superuser in a throwaway cluster).
-- bench:      a huge limit (2e9 per hour, burst 1000), so every call is allowed: measures cost, not denials.
-- bench_deny: 1 per hour, no burst, so after a key's first hit every call is denied.
INSERT INTO ama.rate_policies (name, policy_id, rate_limit, period, burst, key_kind, description) VALUES
    ('bench',      250, 2000000000, '1 hour', 1000, 'ip', 'benchmark: always allowed'),
    ('bench_deny', 251, 1,          '1 hour', 0,    'ip', 'benchmark: denies after the first hit')
ON CONFLICT (name) DO NOTHING;

CREATE SCHEMA IF NOT EXISTS bench;
-- The naive recipe people write instead: a fixed-window counter table.
CREATE TABLE IF NOT EXISTS bench.counters (
    k            text PRIMARY KEY,
    n            integer NOT NULL,
    window_start timestamptz NOT NULL
);
