-- Sampled requests the candidate has not answered yet in this run (a resumed run asks only these).
SELECT s.request_id, s.prompt_version, l.messages, l.params
FROM samples AS s
JOIN logs AS l USING (request_id)
WHERE s.run_id = $run_id
  AND NOT EXISTS (
      SELECT 1 FROM replays AS r
      WHERE r.run_id = s.run_id AND r.request_id = s.request_id AND r.model = $model
  )
ORDER BY s.prompt_version, s.request_id;
