-- One row per answer with its overall outcome: passed = answered, and every check passed; with
-- why a failed call failed (error_kind, attempts: 0 = never sent) and the model production used.
-- $prompt_version: only that prompt_version's answers, or NULL for all (DuckDB binds it as a
-- constant, so the test folds away and the filter reaches the scans).
WITH verdicts AS (
    SELECT request_id, model, bool_and(passed) AS passed
    FROM checks
    WHERE run_id = $run_id AND ($prompt_version IS NULL OR prompt_version = $prompt_version)
    GROUP BY request_id, model
)
SELECT a.request_id, a.prompt_version, a.model, a.status, a.output_tokens, a.reasoning_tokens,
       a.cost_usd, a.latency_ms, a.ttft_ms, a.output_tps,
       coalesce(v.passed, false) AND a.status = 'ok' AS passed,
       r.error_kind, r.attempts, l.model_id AS production_model
FROM answers AS a
LEFT JOIN verdicts AS v USING (request_id, model)
LEFT JOIN replays AS r ON r.run_id = a.run_id AND r.request_id = a.request_id AND r.model = a.model
LEFT JOIN logs AS l ON l.request_id = a.request_id
WHERE a.run_id = $run_id AND ($prompt_version IS NULL OR a.prompt_version = $prompt_version);
