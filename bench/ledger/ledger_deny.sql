\set k random(1, 100000)
SELECT (ama.rate_limit('bench_deny', 'ip:' || :k)).allowed;
