-- One row per answer with its overall outcome: passed = answered, and every check passed; with
-- why a failed call failed (error_kind, attempts: 0 = never sent) and the model production used.
-- $prompt_version: only that prompt_version's answers, or NULL for all (DuckDB binds it as a
-- constant, so the test folds away and the filter reaches the scans).
-- Each answer read once, from `samples` or `replays` beside its log (not through the `answers`
-- view, then `replays` and `logs` again: those joins held the run's replays in one hash table,
-- and a 300,000-request night's largest prompt_version ran out of 128 MB).
WITH verdicts AS (
    SELECT request_id, model, bool_and(passed) AS passed
    FROM checks
    WHERE run_id = $run_id AND ($prompt_version IS NULL OR prompt_version = $prompt_version)
    GROUP BY request_id, model
), answered AS (
    SELECT s.request_id, s.prompt_version, 'production' AS model, l.status, l.output_tokens,
           l.reasoning_tokens, l.cost_usd, l.latency_ms, l.ttft_ms, NULL::DOUBLE AS output_tps,
           NULL::VARCHAR AS error_kind, NULL::INTEGER AS attempts, l.model_id AS production_model
    FROM samples AS s
    JOIN logs AS l USING (request_id)
    WHERE s.run_id = $run_id AND ($prompt_version IS NULL OR s.prompt_version = $prompt_version)
    UNION ALL
    SELECT r.request_id, r.prompt_version, r.model, r.status, r.output_tokens,
           r.reasoning_tokens, r.cost_usd, r.latency_ms, r.ttft_ms, r.output_tps,
           r.error_kind, r.attempts, l.model_id AS production_model
    FROM replays AS r
    JOIN logs AS l USING (request_id)
    WHERE r.run_id = $run_id AND ($prompt_version IS NULL OR r.prompt_version = $prompt_version)
)
SELECT a.request_id, a.prompt_version, a.model, a.status, a.output_tokens, a.reasoning_tokens,
       a.cost_usd, a.latency_ms, a.ttft_ms, a.output_tps,
       coalesce(v.passed, false) AND a.status = 'ok' AS passed,
       a.error_kind, a.attempts, a.production_model
FROM answered AS a
LEFT JOIN verdicts AS v USING (request_id, model);
