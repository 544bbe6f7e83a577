-- The night's sample, stratified by prompt_version: per prompt_version its quota (the registered
-- frame _quotas, worked out in replaybench/sample.py from the allocation, what the open decisions still
-- need and the budget), then the first requests in a seeded hash order. A row's rank depends
-- only on its own request_id and the seed, so the same seed and data give the same sample, and new rows do not reshuffle the old ones.
INSERT INTO samples (run_id, request_id, prompt_version)
WITH eligible AS (
    SELECT request_id, prompt_version
    FROM window_logs($window_start, $window_end, $endpoints, $model_ids, $successful_only)
)
SELECT $run_id, drawn.request_id, drawn.prompt_version
FROM (
    SELECT e.request_id, e.prompt_version
    FROM eligible AS e
    JOIN _quotas AS q USING (prompt_version)
    QUALIFY row_number() OVER (
        PARTITION BY e.prompt_version
        ORDER BY hash(e.request_id || ':' || $seed), e.request_id
    ) <= q.quota
) AS drawn
-- a resumed run draws the same requests: only those it has not stored yet are added (samples
-- has no key index, migration 015; the run's day is leased to one process)
WHERE NOT EXISTS (SELECT 1 FROM samples AS s
                  WHERE s.run_id = $run_id AND s.request_id = drawn.request_id);
