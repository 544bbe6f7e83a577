-- The answers of one run, ready for validation, in the order they are checked: run_answers in
-- answer_macros.sql (run that file first on the connection: `wh.run("answer_macros")`).
SELECT *
FROM run_answers($run_id, with_question := $with_question)
ORDER BY prompt_version, model, request_id;
