-- Paired statistics for decisions stakeholders can trust: the McNemar p-value corrected for the
-- number of comparisons in the run (Holm), and the paired difference to the baseline on the same
-- requests, with a 95 % paired bootstrap interval, for output tokens, cost and latency.

ALTER TABLE scores ADD COLUMN p_value_adjusted DOUBLE;         -- Holm across the run's candidate rows
ALTER TABLE scores ADD COLUMN output_tokens_delta DOUBLE;      -- mean per request, candidate minus baseline
ALTER TABLE scores ADD COLUMN output_tokens_delta_low DOUBLE;  -- 95 % paired bootstrap interval
ALTER TABLE scores ADD COLUMN output_tokens_delta_high DOUBLE;
ALTER TABLE scores ADD COLUMN cost_delta_usd DOUBLE;           -- mean per request (failed calls cost 0)
ALTER TABLE scores ADD COLUMN cost_delta_usd_low DOUBLE;       -- 95 % paired bootstrap interval
ALTER TABLE scores ADD COLUMN cost_delta_usd_high DOUBLE;
ALTER TABLE scores ADD COLUMN latency_delta_ms DOUBLE;         -- mean per request answered by both
ALTER TABLE scores ADD COLUMN latency_delta_ms_low DOUBLE;     -- 95 % paired bootstrap interval
ALTER TABLE scores ADD COLUMN latency_delta_ms_high DOUBLE;
ALTER TABLE scores ADD COLUMN reasoning_share DOUBLE;          -- reasoning tokens / output tokens
