-- Sampled requests the candidate has not answered yet in this run (a resumed run asks only these).
-- $redacted: the candidate gets the redacted messages and params; a request with no redacted copy is then
-- not returned at all, so an unredacted request can never be sent by mistake.
-- Only the candidates in the night's sample_plan for a prompt_version are asked (a reached
-- decision costs nothing more); $every_sampled: the noise floor, asked on every sampled request.
SELECT s.request_id, s.prompt_version,
       CASE WHEN $redacted THEN rr.messages ELSE l.messages END AS messages,
       CASE WHEN $redacted THEN rr.params ELSE l.params END AS params,
       l.model_id,
       l.ts
FROM samples AS s
JOIN logs AS l USING (request_id)
LEFT JOIN redacted_requests AS rr ON rr.run_id = s.run_id AND rr.request_id = s.request_id
WHERE s.run_id = $run_id
  AND (NOT $redacted OR (rr.messages IS NOT NULL AND rr.params IS NOT NULL))
  AND ($every_sampled OR EXISTS (
      SELECT 1 FROM sample_plan AS p
      WHERE p.run_id = s.run_id AND p.prompt_version = s.prompt_version AND p.candidate = $model
  ))
  AND NOT EXISTS (
      SELECT 1 FROM replays AS r
      WHERE r.run_id = s.run_id AND r.request_id = s.request_id AND r.model = $model
  )
ORDER BY s.prompt_version, s.request_id;
