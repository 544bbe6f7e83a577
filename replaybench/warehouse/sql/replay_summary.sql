-- Per candidate: answers stored, how many were reused (paid before, or an identical request of
-- this run) rather than paid now, failures by error class, retries, whether the fleet simulated it.
SELECT model, base_url, any_value(model_sent) AS model_sent, any_value(price_version) AS price_version,
       count(*) AS answers,
       count(*) FILTER (WHERE from_cache) AS reused,
       count(*) FILTER (WHERE status <> 'ok') AS failed,
       sum(attempts) - count(*) FILTER (WHERE attempts > 0) AS retries,
       coalesce(sum(cost_usd) FILTER (WHERE NOT from_cache), 0) AS paid_usd,
       bool_or(simulated) AS simulated,
       string_agg(DISTINCT error_kind, ', ') AS error_kinds
FROM replays
WHERE run_id = $run_id
GROUP BY model, base_url
ORDER BY model;
