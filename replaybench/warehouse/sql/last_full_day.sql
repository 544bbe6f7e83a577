-- The latest local day whose traffic is at least half of a typical day's: the day the demo (and
-- anyone replaying a static export) should look at. Days are in the configured timezone.
WITH daily AS (
    SELECT (ts AT TIME ZONE $tz)::DATE AS day, count(*) AS n
    FROM logs
    GROUP BY 1
)
SELECT max(day)
FROM daily
WHERE n >= 0.5 * (SELECT median(n) FROM daily);
