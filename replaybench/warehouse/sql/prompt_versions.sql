-- What each prompt_version of a run is: its endpoint and production model, and the sample size;
-- with the prompt_versions not sampled tonight whose decisions stand (all reached), sampled 0.
WITH sampled AS (
    SELECT s.prompt_version,
           mode(l.endpoint) AS endpoint,
           mode(l.model_id) AS production_model,
           count(*) AS sampled
    FROM samples AS s
    JOIN logs AS l USING (request_id)
    WHERE s.run_id = $run_id
    GROUP BY s.prompt_version
),
standing AS (
    SELECT DISTINCT d.prompt_version
    FROM decisions AS d, runs AS r
    WHERE r.run_id = $run_id AND d.closed_at IS NULL AND d.opened_on < r.run_date
      AND d.prompt_version NOT IN (SELECT prompt_version FROM sampled)
)
SELECT * FROM sampled
UNION ALL
SELECT st.prompt_version, mode(l.endpoint), mode(l.model_id), 0
FROM standing AS st
JOIN logs AS l USING (prompt_version)
GROUP BY st.prompt_version
ORDER BY prompt_version;
