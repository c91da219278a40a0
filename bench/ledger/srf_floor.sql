-- Diagnostic floor: a pgrx set-returning function (TableIterator::once) that reads three atomics,
-- called like the ledger. Whatever it costs over SELECT 1 is calling convention, not the ledger.
SELECT slots FROM ama.rate_limit_ledger();
