-- The night fetches its own logs: the `sources` ledger remembers what each configured source held
-- and what was read of it, so that a rerun or a backfill reads nothing twice.
CREATE TABLE sources (
    source      VARCHAR NOT NULL,      -- the source as configured: its path template, or langfuse:<host>
    item        VARCHAR NOT NULL,      -- a file's URL or path; an API window "start/end"; '*' = the listing
    version     VARCHAR,               -- a file's size + mtime or ETag when it was read (NULL: not read)
    cursor      VARCHAR,               -- where an API's next read starts
    status      VARCHAR NOT NULL,      -- read | failed
    error       VARCHAR,               -- why it failed (secrets scrubbed)
    read_at     TIMESTAMPTZ NOT NULL,
    rows_read   BIGINT NOT NULL DEFAULT 0,
    ingested    BIGINT NOT NULL DEFAULT 0,
    duplicates  BIGINT NOT NULL DEFAULT 0,
    rejected    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (source, item)
);

-- Why a run's logs counted as incomplete (the freshness check), shown in its report and e-mail.
ALTER TABLE runs ADD COLUMN logs_incomplete VARCHAR;
