-- A run's answers (answers.sql's rows, in its order) cut into chunks of $rows answers (the last
-- one fewer), each chunk as its pieces: a piece is one prompt_version and model's answers from
-- first_request to last_request (answer_piece.sql reads one). Only the keys are read here: they
-- come from the answers view, whose rows (of the run) are the ones answers.sql picks.
WITH numbered AS (
    SELECT prompt_version, model, request_id,
           (row_number() OVER (ORDER BY prompt_version, model, request_id) - 1) // $rows AS chunk
    FROM answers
    WHERE run_id = $run_id
)

SELECT chunk, prompt_version, model,
       min(request_id) AS first_request, max(request_id) AS last_request
FROM numbered
GROUP BY chunk, prompt_version, model
ORDER BY chunk, prompt_version, model;
