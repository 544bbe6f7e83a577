-- `replays`, `checks` and `response_cache` lose their PRIMARY KEY. DuckDB keeps a primary key as an
-- ART index, and what a connection loads or writes of it stays in memory, unevictable, until the
-- warehouse is closed (about 100 bytes a key), whatever memory limit is set:
-- - `replays` and `checks` (keys starting with the run): the keys a night writes, ~35 MB for
--   `replays` and ~250 MB for `checks` on a night of 100,000 requests (2.9 million checks);
-- - `response_cache` (random keys, a sha256): all of it at every load, so it grew with every
--   night the warehouse had seen (350 MB with 3 million cached answers, where a 256 MB limit
--   ran out of memory).
-- Each row stays unique because the writers say so: replay's load inserts only the rows
-- `replays` lacks (an anti-join on the run's rows, `Warehouse.insert_new`) and merges the answers
-- it paid for into `response_cache` (MERGE INTO, a hash join of the batch against the cache);
-- validation replaces a run's checks whole; all of them within the warehouse's write turn.
-- DuckDB cannot drop a constraint, so each table is built again (same columns, same order, same
-- defaults) and its rows copied; the views that read it bind by name and are untouched.

CREATE TABLE replays_unindexed (
    run_id              VARCHAR NOT NULL,
    request_id          VARCHAR NOT NULL,
    model               VARCHAR NOT NULL,
    prompt_version      VARCHAR NOT NULL,
    provider            VARCHAR NOT NULL,
    base_url            VARCHAR NOT NULL,
    model_sent          VARCHAR NOT NULL,
    params              JSON,
    output_text         VARCHAR,
    reasoning_text      VARCHAR,
    finish_reason       VARCHAR,
    input_tokens        INTEGER,
    output_tokens       INTEGER,
    reasoning_tokens    INTEGER,
    cached_tokens       INTEGER,
    latency_ms          DOUBLE,
    ttft_ms             DOUBLE,
    cost_usd            DOUBLE,
    price_version       VARCHAR,
    status              VARCHAR NOT NULL,
    error               VARCHAR,
    error_kind          VARCHAR,
    attempts            INTEGER NOT NULL,
    simulated           BOOLEAN NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    reasoning_estimated BOOLEAN DEFAULT false,
    output_tps          DOUBLE,
    cache_key           VARCHAR,
    from_cache          BOOLEAN DEFAULT false
);
INSERT INTO replays_unindexed SELECT * FROM replays ORDER BY run_id;
DROP TABLE replays;
ALTER TABLE replays_unindexed RENAME TO replays;

CREATE TABLE checks_unindexed (
    run_id         VARCHAR NOT NULL,
    request_id     VARCHAR NOT NULL,
    model          VARCHAR NOT NULL,
    prompt_version VARCHAR NOT NULL,
    "check"        VARCHAR NOT NULL,
    passed         BOOLEAN NOT NULL,
    reason         VARCHAR
);
INSERT INTO checks_unindexed SELECT * FROM checks ORDER BY run_id;
DROP TABLE checks;
ALTER TABLE checks_unindexed RENAME TO checks;

CREATE TABLE response_cache_unindexed (
    cache_key           VARCHAR NOT NULL,  -- sha256 of provider, base_url, model, messages, params
    provider            VARCHAR NOT NULL,
    base_url            VARCHAR NOT NULL,
    model_sent          VARCHAR NOT NULL,
    params              JSON,
    output_text         VARCHAR,
    reasoning_text      VARCHAR,
    finish_reason       VARCHAR,
    input_tokens        INTEGER,
    output_tokens       INTEGER,
    reasoning_tokens    INTEGER,
    reasoning_estimated BOOLEAN,
    cached_tokens       INTEGER,
    latency_ms          DOUBLE,
    ttft_ms             DOUBLE,
    output_tps          DOUBLE,
    attempts            INTEGER,
    simulated           BOOLEAN,
    paid_by_run         VARCHAR,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
INSERT INTO response_cache_unindexed SELECT * FROM response_cache;
DROP TABLE response_cache;
ALTER TABLE response_cache_unindexed RENAME TO response_cache;
