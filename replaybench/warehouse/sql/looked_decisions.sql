-- The decisions a run looked at (tonight's pairs were added to their evidence), as they stand
-- after that look, with the run: one Prefect event and one artifact version each
-- (replaybench/events.py). A decision reached on an earlier night is not looked at again.
SELECT d.decision_id, d.prompt_version, d.candidate, d.generation, d.state, d.recommendation,
       d.delta, d.delta_low, d.delta_high, d.margin, d.pairs, d.planned_pairs, d.nights,
       d.cost_ratio, d.error_rate, d.reason, d.opened_on, d.reached_on,
       coalesce(d.reached_run = l.run_id, false) AS reached_tonight, l.look,
       r.run_id, r.kind, r.run_date
FROM decision_looks AS l
JOIN decisions AS d USING (decision_id)
JOIN runs AS r ON r.run_id = l.run_id
WHERE l.run_id = $run_id
ORDER BY d.prompt_version, d.candidate;
