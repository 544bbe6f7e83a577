-- Sampled requests the candidate has not answered yet in this run (a resumed run asks only these).
-- $redacted: the candidate gets the redacted messages and params; a request with no redacted copy is then
-- not returned at all, so an unredacted request can never be sent by mistake.
-- Only the candidates in the night's sample_plan for a prompt_version are asked (a reached
-- decision costs nothing more); $every_sampled: the noise floor, asked on every sampled request.
-- Which requests is decided on their ids alone, and the messages joined last, so that DuckDB
-- streams them rather than holding the night's (no ORDER BY either: the plan keeps the order
-- they arrive in, and nothing depends on it).
WITH pending AS (
    SELECT s.request_id, s.prompt_version
    FROM samples AS s
    WHERE s.run_id = $run_id
      AND ($every_sampled OR s.prompt_version IN (
          SELECT p.prompt_version FROM sample_plan AS p
          WHERE p.run_id = $run_id AND p.candidate = $model
      ))
      AND s.request_id NOT IN (
          SELECT r.request_id FROM replays AS r WHERE r.run_id = $run_id AND r.model = $model
      )
)
SELECT p.request_id, p.prompt_version,
       CASE WHEN $redacted THEN rr.messages ELSE l.messages END AS messages,
       CASE WHEN $redacted THEN rr.params ELSE l.params END AS params,
       l.model_id,
       l.ts
FROM pending AS p
JOIN logs AS l USING (request_id)
LEFT JOIN redacted_requests AS rr ON rr.run_id = $run_id AND rr.request_id = p.request_id
WHERE NOT $redacted OR (rr.messages IS NOT NULL AND rr.params IS NOT NULL);
