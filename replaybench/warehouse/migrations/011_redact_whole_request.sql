-- The whole request body that leaves the machine is redacted, not only its messages: parameters
-- (`user`, `metadata`, tool definitions, anything logged with the request) too. A redacted copy
-- made before this migration has no params: it is made again before anything is sent.
ALTER TABLE redacted_requests ADD COLUMN params JSON;   -- the logged params, redacted
