-- The first schema: one table per box of the pipeline (../shared/DESIGN.md, "Warehouse").
-- Timestamps are TIMESTAMPTZ in UTC; token counts follow OpenTelemetry GenAI semantics
-- (input includes cached tokens, output includes reasoning tokens).

CREATE TABLE logs (
    request_id       VARCHAR PRIMARY KEY,
    ts               TIMESTAMPTZ NOT NULL,
    endpoint         VARCHAR,
    model_id         VARCHAR,
    prompt_version   VARCHAR NOT NULL,
    messages         JSON NOT NULL,
    params           JSON,
    output_text      VARCHAR,
    reference        VARCHAR,
    input_tokens     INTEGER,
    output_tokens    INTEGER,
    reasoning_tokens INTEGER,
    cached_tokens    INTEGER,
    latency_ms       DOUBLE,
    ttft_ms          DOUBLE,
    cost_usd         DOUBLE,
    status           VARCHAR NOT NULL,
    error            VARCHAR,
    metadata         JSON,
    source_format    VARCHAR NOT NULL,
    source           VARCHAR,
    ingested_at      TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

CREATE TABLE rejects (
    source      VARCHAR NOT NULL,
    position    BIGINT NOT NULL,      -- 1-based line (or record) number in the source
    reason      VARCHAR NOT NULL,
    raw         VARCHAR,              -- the offending text, truncated
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (source, position)
);

CREATE TABLE runs (
    run_id       VARCHAR PRIMARY KEY,
    kind         VARCHAR NOT NULL,    -- nightly | backfill | demo
    run_date     DATE NOT NULL,       -- the --date the run was asked for; covers the days before it
    window_start TIMESTAMPTZ NOT NULL,
    window_end   TIMESTAMPTZ NOT NULL,
    status       VARCHAR NOT NULL,    -- running | completed | partial | failed
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    report_path  VARCHAR,
    seed         INTEGER,
    config_hash  VARCHAR,
    git_rev      VARCHAR,
    baseline     VARCHAR,
    candidates   JSON,                -- name, provider, base_url, model: never keys
    error        VARCHAR
);

CREATE TABLE samples (
    run_id         VARCHAR NOT NULL,
    request_id     VARCHAR NOT NULL,
    prompt_version VARCHAR NOT NULL,
    PRIMARY KEY (run_id, request_id)
);

CREATE TABLE replays (
    run_id           VARCHAR NOT NULL,
    request_id       VARCHAR NOT NULL,
    model            VARCHAR NOT NULL,   -- the candidate's name
    prompt_version   VARCHAR NOT NULL,
    provider         VARCHAR NOT NULL,
    base_url         VARCHAR NOT NULL,
    model_sent       VARCHAR NOT NULL,   -- the model string in the request
    params           JSON,               -- sampling parameters sent
    output_text      VARCHAR,
    reasoning_text   VARCHAR,
    finish_reason    VARCHAR,
    input_tokens     INTEGER,
    output_tokens    INTEGER,
    reasoning_tokens INTEGER,
    cached_tokens    INTEGER,
    latency_ms       DOUBLE,
    ttft_ms          DOUBLE,
    cost_usd         DOUBLE,
    price_version    VARCHAR,            -- which price table entry costed this row
    status           VARCHAR NOT NULL,   -- ok | error
    error            VARCHAR,
    error_kind       VARCHAR,            -- rate_limited | timeout | server_error | bad_response | auth | bad_request
    attempts         INTEGER NOT NULL,
    simulated        BOOLEAN NOT NULL,   -- answered by the local model fleet
    created_at       TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (run_id, request_id, model)
);

CREATE TABLE checks (
    run_id         VARCHAR NOT NULL,
    request_id     VARCHAR NOT NULL,
    model          VARCHAR NOT NULL,     -- a candidate's name, or the baseline 'production'
    prompt_version VARCHAR NOT NULL,
    "check"        VARCHAR NOT NULL,
    passed         BOOLEAN NOT NULL,
    reason         VARCHAR,
    PRIMARY KEY (run_id, request_id, model, "check")
);

CREATE TABLE scores (
    run_id                 VARCHAR NOT NULL,
    prompt_version         VARCHAR NOT NULL,
    model                  VARCHAR NOT NULL,
    n                      INTEGER NOT NULL,
    passed                 INTEGER NOT NULL,
    pass_rate              DOUBLE,
    pass_rate_low          DOUBLE,   -- Wilson 95 % interval
    pass_rate_high         DOUBLE,
    delta_vs_baseline      DOUBLE,   -- paired: same requests, candidate minus baseline
    delta_low              DOUBLE,
    delta_high             DOUBLE,
    p_value                DOUBLE,   -- exact McNemar on the discordant pairs
    verdict                VARCHAR,  -- improved | regressed | no_difference | inconclusive
    output_tokens_per_task DOUBLE,
    reasoning_tokens_per_task DOUBLE,
    cost_per_task_usd      DOUBLE,
    cost_per_success_usd   DOUBLE,
    latency_p50_ms         DOUBLE,
    latency_p95_ms         DOUBLE,
    ttft_p50_ms            DOUBLE,
    error_rate             DOUBLE,
    recommendation         VARCHAR,  -- promote | canary | hold | reject
    reason                 VARCHAR,  -- the recommendation in a sentence
    PRIMARY KEY (run_id, prompt_version, model)
);

-- Every answer of every run: the baseline's logged production answer for each sampled request,
-- and each candidate's replay; one row per (run_id, request_id, model).
CREATE VIEW answers AS
SELECT s.run_id, s.request_id, s.prompt_version, 'production' AS model, l.status,
       l.output_text, l.reference, l.input_tokens, l.output_tokens, l.reasoning_tokens,
       l.cached_tokens, l.latency_ms, l.ttft_ms, l.cost_usd
FROM samples AS s
JOIN logs AS l USING (request_id)
UNION ALL
SELECT r.run_id, r.request_id, r.prompt_version, r.model, r.status,
       r.output_text, l.reference, r.input_tokens, r.output_tokens, r.reasoning_tokens,
       r.cached_tokens, r.latency_ms, r.ttft_ms, r.cost_usd
FROM replays AS r
JOIN logs AS l USING (request_id);
