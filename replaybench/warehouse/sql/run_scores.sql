-- A run's scores: one row per (prompt_version, model).
SELECT *
FROM scores
WHERE run_id = $run_id;
