-- The production mix of a run's window: each prompt_version's share of the traffic (with the
-- run's filters), which the report's totals are weighted by.
INSERT INTO traffic_mix (run_id, prompt_version, requests, share)
SELECT $run_id, prompt_version, count(*), count(*) / sum(count(*)) OVER ()
FROM logs
WHERE ts >= $window_start
  AND ts <  $window_end
  AND ($endpoints IS NULL OR list_contains($endpoints, endpoint))
  AND ($model_ids IS NULL OR list_contains($model_ids, model_id))
  AND (NOT $successful_only OR status = 'ok')
GROUP BY prompt_version
ON CONFLICT DO NOTHING;
