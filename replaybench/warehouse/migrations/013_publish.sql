-- Where the night's report was published for readers on other machines (report.publish_to), and
-- whether that worked. Publishing never changes a run's status: a failure is recorded, not raised.
ALTER TABLE runs ADD COLUMN report_url VARCHAR;        -- the page readers open (http(s)); NULL: not published
ALTER TABLE runs ADD COLUMN publish_status VARCHAR;    -- published | failed | skipped (NULL: not tried yet)
ALTER TABLE runs ADD COLUMN publish_error VARCHAR;     -- why it failed, secrets scrubbed
ALTER TABLE runs ADD COLUMN published_at TIMESTAMPTZ;  -- when it was last published
