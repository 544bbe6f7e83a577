-- The production mix of a run's window: each prompt_version's share of the traffic (with the
-- run's filters: window_macros.sql), which the report's totals are weighted by.
INSERT INTO traffic_mix (run_id, prompt_version, requests, share)
SELECT $run_id, prompt_version, count(*), count(*) / sum(count(*)) OVER ()
FROM window_logs($window_start, $window_end, $endpoints, $model_ids, $successful_only)
GROUP BY prompt_version
ON CONFLICT DO NOTHING;
