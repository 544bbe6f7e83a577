-- Every run, newest first: what `replaybench runs` lists.
SELECT run_id, kind, window_start, window_end, status, started_at, finished_at, report_path
FROM runs
ORDER BY started_at DESC;
