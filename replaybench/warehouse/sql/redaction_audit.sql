-- One run's redaction audit: values replaced per kind, and in how many of the sampled requests.
SELECT kind, redacted, requests
FROM redaction_audit
WHERE run_id = $run_id
ORDER BY redacted DESC, kind;
