-- The night's sample: per prompt_version, the first $per_prompt_version requests of the run's
-- window in a seeded hash order. A row's rank depends only on its own request_id and the seed,
-- so the same seed and data give the same sample, whatever order the rows were ingested in.
INSERT INTO samples (run_id, request_id, prompt_version)
SELECT $run_id, request_id, prompt_version
FROM logs
WHERE ts >= $window_start
  AND ts <  $window_end
QUALIFY row_number() OVER (
    PARTITION BY prompt_version
    ORDER BY hash(request_id || ':' || $seed), request_id
) <= $per_prompt_version
ON CONFLICT DO NOTHING;
