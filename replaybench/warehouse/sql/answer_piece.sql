-- One piece of a run's answers (answer_chunks.sql): answers.sql's rows of one prompt_version and
-- model, from request $first_request to $last_request (both included), in answers.sql's order.
-- Needs answer_macros.sql, as answers.sql does.
SELECT *
FROM run_answers($run_id, the_version := $prompt_version, the_model := $model,
                 first_request := $first_request, last_request := $last_request,
                 with_question := $with_question)
ORDER BY prompt_version, model, request_id;
