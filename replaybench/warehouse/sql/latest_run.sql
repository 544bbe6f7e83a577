-- The newest run of a day (by its run_date), in any status or only in $status (NULL: any): the
-- one a day's next attempt resumes or skips, and the one a command reports on.
SELECT run_id, status, report_path, error
FROM runs
WHERE run_date = $run_date
  AND ($status IS NULL OR status = $status)
ORDER BY started_at DESC
LIMIT 1;
