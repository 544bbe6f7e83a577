-- `samples`, `redacted_requests` and `decision_evidence` lose their PRIMARY KEY, as the night's
-- tables did in 014: each gains a night's requests every night and keeps them, so the room a
-- warehouse gave its key indexes (unevictable, ~100 bytes a key) grew with its history, and
-- DuckDB filled that room with cache in every step (replaybench/warehouse/memory.py).
-- Each row stays unique because its one writer says so, within the run's lease of its day:
-- - `samples`: the sample inserts only the requests the run has not drawn (sql/sample.sql);
-- - `redacted_requests`: redaction merges the samples not redacted yet, one row each (MERGE
--   INTO: a copy from before parameters were redacted is replaced);
-- - `decision_evidence`: a night's pairs are merged into a decision's (MERGE INTO: an answer
--   replaces a failed call, nothing replaces an answer), in the score's atomic unit, which the
--   nights of a parallel backfill take one at a time (`decide.scores.decision_turn`).
-- Same columns, order, types and NOT NULLs (the key's columns were NOT NULL by being the key).

CREATE TABLE samples_unindexed (
    run_id         VARCHAR NOT NULL,
    request_id     VARCHAR NOT NULL,
    prompt_version VARCHAR NOT NULL
);
INSERT INTO samples_unindexed SELECT * FROM samples ORDER BY run_id;
DROP TABLE samples;
ALTER TABLE samples_unindexed RENAME TO samples;

CREATE TABLE redacted_requests_unindexed (
    run_id     VARCHAR NOT NULL,
    request_id VARCHAR NOT NULL,
    messages   JSON NOT NULL,
    counts     JSON NOT NULL,
    params     JSON
);
INSERT INTO redacted_requests_unindexed SELECT * FROM redacted_requests ORDER BY run_id;
DROP TABLE redacted_requests;
ALTER TABLE redacted_requests_unindexed RENAME TO redacted_requests;

CREATE TABLE decision_evidence_unindexed (
    decision_id      VARCHAR NOT NULL,
    request_id       VARCHAR NOT NULL,
    run_id           VARCHAR NOT NULL,
    candidate_passed BOOLEAN NOT NULL,
    baseline_passed  BOOLEAN NOT NULL,
    candidate_error  BOOLEAN NOT NULL,
    counts           BOOLEAN NOT NULL,
    candidate_cost   DOUBLE,
    baseline_cost    DOUBLE
);
INSERT INTO decision_evidence_unindexed SELECT * FROM decision_evidence ORDER BY decision_id;
DROP TABLE decision_evidence;
ALTER TABLE decision_evidence_unindexed RENAME TO decision_evidence;
