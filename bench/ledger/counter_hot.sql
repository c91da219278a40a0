INSERT INTO bench.counters AS c (k, n, window_start)
VALUES ('hot-ip', 1, date_trunc('minute', now()))
ON CONFLICT (k) DO UPDATE
   SET n = CASE WHEN c.window_start = excluded.window_start THEN c.n + 1 ELSE 1 END,
       window_start = excluded.window_start
RETURNING n <= 2000000000 AS allowed;
