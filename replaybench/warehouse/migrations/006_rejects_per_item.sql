-- One record can hold several rows (an OTLP export holds many spans): a reject is keyed by its
-- record's position and the item inside it, so two bad spans of one record are both kept.
CREATE TABLE rejects_by_item (
    source      VARCHAR NOT NULL,
    position    BIGINT NOT NULL,      -- 1-based line (or record) number in the source
    item        INTEGER NOT NULL DEFAULT 0,  -- 0 for the record itself; n for its n-th row
    reason      VARCHAR NOT NULL,
    raw         VARCHAR,
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (source, position, item)
);
INSERT INTO rejects_by_item (source, position, reason, raw, rejected_at)
SELECT source, position, reason, raw, rejected_at FROM rejects;
DROP TABLE rejects;
ALTER TABLE rejects_by_item RENAME TO rejects;
