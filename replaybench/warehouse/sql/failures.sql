-- The worst failures per prompt_version × candidate, next to production's answer to the same
-- request: regressions first (production passed every check, the candidate did not), then the
-- rest, each in a stable hash order so that a re-rendered report shows the same ones.
WITH production_passed AS (
    SELECT request_id, bool_and(passed) AS passed
    FROM checks
    WHERE run_id = $run_id AND model = 'production'
    GROUP BY request_id
),
failed AS (  -- the failing answers' keys: what they failed is read for the picked ones only
    SELECT DISTINCT request_id, model, prompt_version
    FROM checks
    WHERE run_id = $run_id AND NOT passed AND model <> 'production'
),
picked AS (
    SELECT f.*
    FROM failed AS f
    LEFT JOIN production_passed AS pp USING (request_id)
    QUALIFY row_number() OVER (
        PARTITION BY f.prompt_version, f.model
        ORDER BY coalesce(pp.passed, false) DESC, hash(f.request_id)) <= $per_model
),
reasons AS (
    SELECT c.request_id, c.model,
           string_agg(c."check", ', ' ORDER BY c."check") AS failed_checks,
           string_agg(c.reason, ' · ' ORDER BY c."check") AS reasons
    FROM checks AS c
    JOIN picked AS p ON p.request_id = c.request_id AND p.model = c.model
    WHERE c.run_id = $run_id AND NOT c.passed
    GROUP BY c.request_id, c.model
)
SELECT f.prompt_version, f.model, f.request_id, r.failed_checks, r.reasons,
       c.output_text AS candidate_answer,
       p.output_text AS production_answer,
       p.reference,
       l.messages->>'$[#-1].content' AS user_message
FROM picked AS f
JOIN reasons AS r USING (request_id, model)
JOIN answers AS c ON c.run_id = $run_id AND c.request_id = f.request_id AND c.model = f.model
JOIN answers AS p ON p.run_id = $run_id AND p.request_id = f.request_id AND p.model = 'production'
JOIN logs AS l ON l.request_id = f.request_id
ORDER BY f.prompt_version, f.model, f.request_id;
