-- Failures by check, per prompt_version × model.
SELECT prompt_version, model, "check",
       count(*) FILTER (WHERE NOT passed) AS failed,
       count(*) AS total
FROM checks
WHERE run_id = $run_id
GROUP BY ALL
ORDER BY prompt_version, model, "check";
