-- The run's sampled requests that have no complete redacted copy yet (a resumed run redacts only
-- these; a copy from before parameters were redacted counts as missing).
SELECT s.request_id, l.messages, l.params
FROM samples AS s
JOIN logs AS l USING (request_id)
WHERE s.run_id = $run_id
  AND NOT EXISTS (
      SELECT 1 FROM redacted_requests AS r
      WHERE r.run_id = s.run_id AND r.request_id = s.request_id AND r.params IS NOT NULL
  )
ORDER BY s.request_id;
