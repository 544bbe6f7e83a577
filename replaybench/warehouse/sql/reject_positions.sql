-- Line numbers (1-based, blank lines included) of the lines _staged rejected, found by a second,
-- narrow pass over the file that carries only each line's hash. Lines DuckDB could not decode are
-- missing from this numbering; ingest shifts the numbers past them.
-- Parameter: $path.
CREATE OR REPLACE TEMP TABLE _reject_positions AS
WITH numbered AS (
    SELECT row_number() OVER () AS n, hash(line) AS h
    FROM read_csv($path, columns = {'line': 'VARCHAR'}, delim = E'\x01', quote = '', escape = '',
                  header = false, auto_detect = false, strict_mode = false, new_line = '\n',
                  ignore_errors = true)
)
SELECT numbered.n AS line_number, s.reason, s.line
FROM _staged AS s
JOIN numbered ON numbered.h = hash(s.line)
WHERE s.reason IS NOT NULL;
