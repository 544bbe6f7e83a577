-- Replay that survives real providers: estimated reasoning tokens are marked as such, streamed
-- answers carry their output speed, and every answer is cached by what can change it, so a
-- rerun, a forced run or an overlapping backfill never pays twice for the same answer.

ALTER TABLE replays ADD COLUMN reasoning_estimated BOOLEAN DEFAULT false;
ALTER TABLE replays ADD COLUMN output_tps DOUBLE;          -- output tokens/s after the first token
ALTER TABLE replays ADD COLUMN cache_key VARCHAR;
ALTER TABLE replays ADD COLUMN from_cache BOOLEAN DEFAULT false;  -- reused: not paid this run

CREATE TABLE response_cache (
    cache_key           VARCHAR PRIMARY KEY,  -- sha256 of provider, base_url, model, messages, params
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
    paid_by_run         VARCHAR,              -- the run that paid for it
    created_at          TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
