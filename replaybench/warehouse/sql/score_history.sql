-- The scores of the same prompt_version × model in the last $runs completed runs up to this one
-- (by run date), oldest first: the trend a stakeholder compares tonight with.
WITH this AS (SELECT run_date FROM runs WHERE run_id = $run_id),
recent AS (
    SELECT r.run_id, r.run_date
    FROM runs AS r, this
    WHERE (r.run_date <= this.run_date AND r.status IN ('completed', 'partial'))
       OR r.run_id = $run_id
    -- one run a day: this one on its own day, else the day's latest
    QUALIFY row_number() OVER (PARTITION BY r.run_date
                               ORDER BY r.run_id = $run_id DESC, r.started_at DESC) = 1
    ORDER BY r.run_date DESC
    LIMIT $runs
)
SELECT s.prompt_version, s.model, recent.run_date, s.run_id, s.pass_rate, s.passed, s.n, s.cost_per_task_usd,
       s.output_tokens_per_task
FROM scores AS s
JOIN recent USING (run_id)
ORDER BY s.prompt_version, s.model, recent.run_date;
