-- Redaction: what each run sent to candidates whose endpoints are not on this machine. The redact
-- step stores every sampled request's messages with personal data replaced by placeholders
-- (<EMAIL_1>, <CARD_1>, ...), and how many values of each kind it replaced; the replay sends these
-- to the candidates that need them. `redaction_runs` says, per run, whether redaction was on and for
-- which candidates, so a re-rendered report tells "off" from "on, nothing found".

CREATE TABLE redaction_runs (
    run_id      VARCHAR PRIMARY KEY,
    mode        VARCHAR NOT NULL,     -- redact.enabled: auto | always | never
    candidates  JSON NOT NULL,        -- names of the candidates sent redacted requests
    patterns    JSON,                 -- names of the configured patterns in use
    redacted_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);

CREATE TABLE redacted_requests (
    run_id      VARCHAR NOT NULL,
    request_id  VARCHAR NOT NULL,
    messages    JSON NOT NULL,        -- the logged messages, redacted: what left the machine
    counts      JSON NOT NULL,        -- values replaced, by kind: {"EMAIL": 2, "PHONE": 1}
    PRIMARY KEY (run_id, request_id)
);

-- The audit: per run and kind, how many values were replaced, in how many requests.
CREATE VIEW redaction_audit AS
SELECT r.run_id, c.key AS kind,
       sum(c.value::BIGINT) AS redacted,
       count(*) AS requests
FROM redacted_requests AS r, json_each(r.counts) AS c
GROUP BY r.run_id, c.key;
