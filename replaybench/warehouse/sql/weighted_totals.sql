-- Each model over all prompt_versions of a run, every prompt_version weighted by its share of the
-- production traffic (traffic_mix), not by how many requests the sample happened to take from it.
SELECT s.model,
       sum(m.share * s.pass_rate) / sum(m.share) AS pass_rate,
       sum(m.share * s.delta_vs_baseline) / sum(m.share) AS delta_vs_baseline,
       sum(m.share * s.output_tokens_per_task) / sum(m.share) AS output_tokens_per_task,
       sum(m.share * s.cost_per_task_usd) / sum(m.share) AS cost_per_task_usd,
       sum(m.share * s.error_rate) / sum(m.share) AS error_rate,
       sum(m.share) AS share_covered,
       sum(s.n) AS n
FROM scores AS s
JOIN traffic_mix AS m USING (run_id, prompt_version)
WHERE s.run_id = $run_id
GROUP BY s.model
ORDER BY s.model = $baseline DESC, pass_rate DESC, s.model;  -- ties in a stable order
