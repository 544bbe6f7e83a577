-- Token efficiency as Artificial Analysis defines it: output speed is output tokens per second
-- after the first token (median over a model's answered calls); tokens per successful task puts
-- a model's verbosity against what it got right.
ALTER TABLE scores ADD COLUMN tokens_per_success DOUBLE;  -- output tokens of all tasks / passed
ALTER TABLE scores ADD COLUMN output_tps_p50 DOUBLE;      -- median output tokens/s after the first

-- The answers view gains the output speed (replays only: production's logs carry no such figure).
CREATE OR REPLACE VIEW answers AS
SELECT s.run_id, s.request_id, s.prompt_version, 'production' AS model, l.status,
       l.output_text, l.reference, l.input_tokens, l.output_tokens, l.reasoning_tokens,
       l.cached_tokens, l.latency_ms, l.ttft_ms, l.cost_usd, NULL::DOUBLE AS output_tps
FROM samples AS s
JOIN logs AS l USING (request_id)
UNION ALL
SELECT r.run_id, r.request_id, r.prompt_version, r.model, r.status,
       r.output_text, l.reference, r.input_tokens, r.output_tokens, r.reasoning_tokens,
       r.cached_tokens, r.latency_ms, r.ttft_ms, r.cost_usd, r.output_tps
FROM replays AS r
JOIN logs AS l USING (request_id);
