-- The run's sampled requests that have no redacted copy yet (a resumed run redacts only these).
SELECT s.request_id, l.messages
FROM samples AS s
JOIN logs AS l USING (request_id)
WHERE s.run_id = $run_id
  AND NOT EXISTS (
      SELECT 1 FROM redacted_requests AS r
      WHERE r.run_id = s.run_id AND r.request_id = s.request_id
  )
ORDER BY s.request_id;
