-- Per candidate: answers stored, failures by error class, whether the fleet simulated them.
SELECT model, base_url, any_value(model_sent) AS model_sent, any_value(price_version) AS price_version,
       count(*) AS answers,
       count(*) FILTER (WHERE status <> 'ok') AS failed,
       bool_or(simulated) AS simulated,
       string_agg(DISTINCT error_kind, ', ') AS error_kinds
FROM replays
WHERE run_id = $run_id
GROUP BY model, base_url
ORDER BY model;
