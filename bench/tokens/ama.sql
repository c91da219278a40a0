\set i random(1, :ntokens)
SELECT raw FROM bench.tokens WHERE i = :i \gset
SELECT * FROM ama.verify_agent_token(:raw);
