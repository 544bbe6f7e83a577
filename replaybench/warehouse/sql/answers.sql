-- The answers of one run, ready for validation.
SELECT request_id, prompt_version, model, status, output_text, reference,
       output_tokens, latency_ms
FROM answers
WHERE run_id = $run_id
ORDER BY prompt_version, model, request_id;
