-- The worst failures per prompt_version × candidate, next to production's answer to the same
-- request: regressions first (production passed every check, the candidate did not), then the
-- rest, each in a stable hash order so that a re-rendered report shows the same ones.
WITH production_passed AS (
    SELECT request_id, bool_and(passed) AS passed
    FROM checks
    WHERE run_id = $run_id AND model = 'production'
    GROUP BY request_id
),
failed AS (
    SELECT request_id, model, prompt_version,
           string_agg("check", ', ' ORDER BY "check") AS failed_checks,
           string_agg(reason, ' · ' ORDER BY "check") AS reasons
    FROM checks
    WHERE run_id = $run_id AND NOT passed AND model <> 'production'
    GROUP BY ALL
),
picked AS (
    SELECT *
    FROM failed
    QUALIFY row_number() OVER (
        PARTITION BY prompt_version, model
        ORDER BY (SELECT coalesce(any_value(pp.passed), false) FROM production_passed AS pp
                  WHERE pp.request_id = failed.request_id) DESC,
                 hash(request_id)) <= $per_model
)
SELECT f.prompt_version, f.model, f.request_id, f.failed_checks, f.reasons,
       c.output_text AS candidate_answer,
       p.output_text AS production_answer,
       p.reference,
       l.messages->>'$[#-1].content' AS user_message
FROM picked AS f
JOIN answers AS c ON c.run_id = $run_id AND c.request_id = f.request_id AND c.model = f.model
JOIN answers AS p ON p.run_id = $run_id AND p.request_id = f.request_id AND p.model = 'production'
JOIN logs AS l ON l.request_id = f.request_id
ORDER BY f.prompt_version, f.model, f.request_id;
