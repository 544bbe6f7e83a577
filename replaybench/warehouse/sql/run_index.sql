-- Every run, newest first, with its headline: how many prompt_versions got each recommendation
-- from their best candidate (the noise floor, which gets none, does not count).
WITH best AS (
    SELECT run_id, prompt_version, recommendation
    FROM scores
    WHERE recommendation IS NOT NULL
    QUALIFY row_number() OVER (
        PARTITION BY run_id, prompt_version
        ORDER BY CASE recommendation WHEN 'promote' THEN 0 WHEN 'canary' THEN 1
                                     WHEN 'hold' THEN 2 ELSE 3 END,
                 pass_rate DESC) = 1
)
SELECT r.run_id, r.kind, r.run_date, r.status, r.started_at, r.report_path, r.report_url,
       count(b.prompt_version) AS prompt_versions,
       count(*) FILTER (WHERE b.recommendation = 'promote') AS promote,
       count(*) FILTER (WHERE b.recommendation = 'canary') AS canary,
       count(*) FILTER (WHERE b.recommendation = 'hold') AS hold,
       count(*) FILTER (WHERE b.recommendation = 'reject') AS reject
FROM runs AS r
LEFT JOIN best AS b USING (run_id)
GROUP BY ALL
ORDER BY r.run_date DESC, r.started_at DESC;
