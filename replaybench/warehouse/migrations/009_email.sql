-- The night's e-mail: whether it went out, and why not when it did not. Sending never changes a
-- run's status; a failure here is recorded, not raised.
ALTER TABLE runs ADD COLUMN email_status VARCHAR;      -- sent | failed | skipped (NULL: not tried yet)
ALTER TABLE runs ADD COLUMN email_error VARCHAR;       -- why it failed, secrets scrubbed
ALTER TABLE runs ADD COLUMN emailed_at TIMESTAMPTZ;    -- when it was sent
