-- Production volume per prompt_version: requests a day over the 28 days before the run's window
-- ends (or as many of them as the logs hold), times 30.
WITH span AS (
    SELECT window_end, window_end - INTERVAL 28 DAY AS since FROM runs WHERE run_id = $run_id
),
daily AS (
    SELECT l.prompt_version,
           count(*) AS requests,
           greatest(1, date_diff('day', greatest(min(l.ts), any_value(span.since)),
                                 any_value(span.window_end))) AS days
    FROM logs AS l, span
    WHERE l.ts >= span.since AND l.ts < span.window_end
    GROUP BY l.prompt_version
)
SELECT prompt_version, requests, days, requests / days * 30 AS monthly_requests
FROM daily;
