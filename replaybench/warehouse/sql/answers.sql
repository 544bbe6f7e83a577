-- The answers of one run, ready for validation, each next to production's logged answer to the
-- same request (production_text; null on production's own rows, which are not compared), and
-- the request's last message (user_message: the question an LLM judge is shown).
WITH run_answers AS (
    SELECT request_id, prompt_version, model, status, output_text, reference,
           output_tokens, latency_ms
    FROM answers
    WHERE run_id = $run_id
),

production AS (
    SELECT request_id, output_text AS production_text
    FROM run_answers
    WHERE model = 'production'
)

SELECT a.request_id, a.prompt_version, a.model, a.status, a.output_text, a.reference,
       a.output_tokens, a.latency_ms,
       CASE WHEN a.model <> 'production' THEN p.production_text END AS production_text,
       l.messages->>'$[#-1].content' AS user_message
FROM run_answers AS a
LEFT JOIN production AS p USING (request_id)
LEFT JOIN logs AS l USING (request_id)
ORDER BY a.prompt_version, a.model, a.request_id;
