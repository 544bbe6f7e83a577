-- Decisions that outlive runs: evidence for (prompt_version, candidate, evidence key) accumulates
-- night after night until a group-sequential look reaches a verdict (replaybench/decide/).

CREATE TABLE decisions (
    decision_id     VARCHAR PRIMARY KEY,
    prompt_version  VARCHAR NOT NULL,
    candidate       VARCHAR NOT NULL,
    evidence_key    VARCHAR NOT NULL,   -- hash of what would make old evidence invalid
    key_parts       JSON,               -- ... and what went into it: model sent, params, suite, baseline
    generation      INTEGER NOT NULL,   -- 1, then 2 after a reopen, ...
    state           VARCHAR NOT NULL,   -- open | improved | regressed | equivalent | non_inferior | inconclusive
    recommendation  VARCHAR,            -- promote | canary | hold | reject
    alpha           DOUBLE NOT NULL,    -- its share of the family's error rate, fixed at opening
    family_size     INTEGER NOT NULL,   -- decisions opened with it (Bonferroni)
    margin          DOUBLE NOT NULL,    -- non-inferiority / equivalence margin
    planned_pairs   INTEGER NOT NULL,   -- its final look
    fixed_pairs     INTEGER NOT NULL,   -- what a fixed-size design would take for the same power
    opened_run      VARCHAR NOT NULL,
    opened_on       DATE NOT NULL,      -- the day of traffic of its first night
    reached_run     VARCHAR,
    reached_on      DATE,
    pairs           INTEGER NOT NULL DEFAULT 0,
    nights          INTEGER NOT NULL DEFAULT 0,
    only_candidate  INTEGER NOT NULL DEFAULT 0,
    only_baseline   INTEGER NOT NULL DEFAULT 0,
    delta           DOUBLE,             -- candidate minus baseline pass rate, on the same requests
    delta_low       DOUBLE,             -- the interval every verdict is read from
    delta_high      DOUBLE,
    cost_ratio      DOUBLE,             -- cost per success over the baseline's; NULL = unknown
    reason          VARCHAR,            -- the recommendation in a sentence, as of its last look
    error_rate      DOUBLE,
    pairs_per_night DOUBLE,             -- recent traffic, for "about K more nights"
    closed_at       TIMESTAMPTZ,        -- set when reopened or superseded by a new key: history
    closed_reason   VARCHAR
);

CREATE TABLE decision_evidence (
    decision_id      VARCHAR NOT NULL,
    request_id       VARCHAR NOT NULL,
    run_id           VARCHAR NOT NULL,
    candidate_passed BOOLEAN NOT NULL,
    baseline_passed  BOOLEAN NOT NULL,
    candidate_error  BOOLEAN NOT NULL,
    counts           BOOLEAN NOT NULL,  -- a quality outcome: answered, or refused as a bad request;
                                        -- not a timeout, 429, 5xx or a call never sent (retried later)
    candidate_cost   DOUBLE,            -- NULL on an answered call: no known price
    baseline_cost    DOUBLE,
    PRIMARY KEY (decision_id, request_id)   -- a request counts once, whatever reruns it
);

CREATE TABLE decision_looks (
    decision_id  VARCHAR NOT NULL,
    run_id       VARCHAR NOT NULL,
    look         INTEGER NOT NULL,
    pairs        INTEGER NOT NULL,
    fraction     DOUBLE NOT NULL,       -- pairs / planned_pairs
    critical     DOUBLE,                -- the look's critical value (z scale)
    delta        DOUBLE,
    delta_low    DOUBLE,
    delta_high   DOUBLE,
    state        VARCHAR NOT NULL,
    looked_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (decision_id, run_id)
);

-- Which candidates each sampled prompt_version is replayed against tonight (a candidate whose
-- decision is reached is not asked again), and why the prompt_version got its quota.
CREATE TABLE sample_plan (
    run_id          VARCHAR NOT NULL,
    prompt_version  VARCHAR NOT NULL,
    candidate       VARCHAR NOT NULL,
    PRIMARY KEY (run_id, prompt_version, candidate)
);

CREATE TABLE sample_quotas (
    run_id          VARCHAR NOT NULL,
    prompt_version  VARCHAR NOT NULL,
    available       INTEGER NOT NULL,
    quota           INTEGER NOT NULL,
    reason          VARCHAR NOT NULL,   -- first night | open decisions need N | all reached | budget
    estimated_usd   DOUBLE,
    PRIMARY KEY (run_id, prompt_version)
);

ALTER TABLE scores ADD COLUMN decision_id VARCHAR;
ALTER TABLE scores ADD COLUMN decision_pairs INTEGER;   -- pairs accumulated across nights
ALTER TABLE scores ADD COLUMN decision_nights INTEGER;
ALTER TABLE scores ADD COLUMN planned_pairs INTEGER;
ALTER TABLE scores ADD COLUMN fixed_pairs INTEGER;
ALTER TABLE scores ADD COLUMN nights_left INTEGER;      -- at most, at current traffic (open decisions)
ALTER TABLE scores ADD COLUMN reached_on DATE;
