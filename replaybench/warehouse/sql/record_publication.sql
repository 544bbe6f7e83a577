-- How publishing a run's report went; a failure ($url NULL) keeps the URL of an earlier one.
UPDATE runs
SET publish_status = $status,
    publish_error = $error,
    report_url = coalesce($url, report_url),
    published_at = CASE WHEN $url IS NULL THEN published_at ELSE $now END
WHERE run_id = $run_id;
