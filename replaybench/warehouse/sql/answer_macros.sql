-- run_answers(the_run, ...): the answers of one run, ready for validation (answers.sql's rows, in
-- no order), each next to production's logged answer to the same request (production_text; null
-- on production's own rows, which are not compared), and the request's last message
-- (user_message: the question an LLM judge is shown; NULL when with_question is false, and the
-- logs are not read: only a judge, or a suite that names user_message, needs them).
--
-- Narrowed, when given, to one prompt_version (the_version), one model (the_model) and a range of
-- request_ids (first_request to last_request, both included). The narrowing is applied where the
-- run's answers are picked, so DuckDB pushes it into its scans of samples, replays and logs: a piece
-- reads its own requests' rows, not the run's. The model is picked last, after production's answer
-- is found. A missing bound is NULL, and a condition on a NULL bound folds away before DuckDB plans
-- (its parameters are bound as constants).
CREATE OR REPLACE TEMP MACRO run_answers(the_run, the_version := NULL, the_model := NULL,
                                         first_request := NULL, last_request := NULL,
                                         with_question := true) AS TABLE
WITH picked AS (
    SELECT request_id, prompt_version, model, status, output_text, reference,
           output_tokens, latency_ms
    FROM answers
    WHERE run_id = the_run
      AND (the_version IS NULL OR prompt_version = the_version)
      AND (first_request IS NULL OR request_id >= first_request)
      AND (last_request IS NULL OR request_id <= last_request)
),

production AS (
    SELECT request_id, output_text AS production_text
    FROM picked
    WHERE model = 'production'
)

SELECT a.request_id, a.prompt_version, a.model, a.status, a.output_text, a.reference,
       a.output_tokens, a.latency_ms,
       CASE WHEN a.model <> 'production' THEN p.production_text END AS production_text,
       l.messages->>'$[#-1].content' AS user_message
FROM picked AS a
LEFT JOIN production AS p USING (request_id)
LEFT JOIN (SELECT request_id, messages FROM logs WHERE with_question) AS l USING (request_id)
WHERE the_model IS NULL OR a.model = the_model;
