\set k random(1, 100000)
SELECT allowed FROM ama.rate_limit('bench_deny', 'ip:' || :k);
