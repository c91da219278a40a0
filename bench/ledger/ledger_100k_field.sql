-- The same decision called in the target list: no FunctionScan (tuplestore, result-type set-up).
\set k random(1, 100000)
SELECT (ama.rate_limit('bench', 'ip:' || :k)).allowed;
