\set i random(1, :ntokens)
SELECT raw FROM bench.tokens WHERE i = :i \gset
SELECT :raw::text IS NOT NULL;
