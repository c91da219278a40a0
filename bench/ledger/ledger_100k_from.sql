-- The same decision in the FROM clause: adds PostgreSQL's function-scan set-up (result type, tuplestore) per statement.
\set k random(1, 100000)
SELECT allowed FROM ama.rate_limit('bench', 'ip:' || :k);
