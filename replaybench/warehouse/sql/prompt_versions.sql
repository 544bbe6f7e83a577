-- What each sampled prompt_version is: its endpoint and production model, and the sample size.
SELECT s.prompt_version,
       mode(l.endpoint) AS endpoint,
       mode(l.model_id) AS production_model,
       count(*) AS sampled
FROM samples AS s
JOIN logs AS l USING (request_id)
WHERE s.run_id = $run_id
GROUP BY s.prompt_version
ORDER BY s.prompt_version;
