\set i random(1, :ntokens)
SELECT raw FROM bench.tokens WHERE i = :i \gset
SELECT * FROM bench.verify_agent_token_plpgsql(:raw);
