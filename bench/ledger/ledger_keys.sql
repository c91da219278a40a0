-- run with -D nkeys=<N>
\set k random(1, :nkeys)
SELECT (ama.rate_limit('bench', 'k' || :nkeys || ':' || :k)).allowed;
