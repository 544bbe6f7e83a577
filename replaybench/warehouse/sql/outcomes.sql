-- One row per answer with its overall outcome: passed = answered, and every check passed.
WITH verdicts AS (
    SELECT request_id, model, bool_and(passed) AS passed
    FROM checks
    WHERE run_id = $run_id
    GROUP BY request_id, model
)
SELECT a.request_id, a.prompt_version, a.model, a.status, a.output_tokens, a.reasoning_tokens,
       a.cost_usd, a.latency_ms, a.ttft_ms, a.output_tps,
       coalesce(v.passed, false) AND a.status = 'ok' AS passed
FROM answers AS a
LEFT JOIN verdicts AS v USING (request_id, model)
WHERE a.run_id = $run_id
ORDER BY a.prompt_version, a.model, a.request_id;
