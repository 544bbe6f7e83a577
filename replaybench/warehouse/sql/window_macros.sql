-- The logs of a run's window that its sample filters let through: what traffic_mix counts and
-- sample draws from (a temporary table macro: define it on the connection before either).
CREATE OR REPLACE TEMP MACRO window_logs(window_start, window_end, endpoints, model_ids,
                                         successful_only) AS TABLE
SELECT *
FROM logs
WHERE ts >= window_start
  AND ts <  window_end
  AND (endpoints IS NULL OR list_contains(endpoints, endpoint))
  AND (model_ids IS NULL OR list_contains(model_ids, model_id))
  AND (NOT successful_only OR status = 'ok');
