-- The non-blank lines of a text file that DuckDB can decode; the others (invalid UTF-8) are listed
-- in the temp table _rb_bad_lines. Parameter: $path.
SELECT count(*)
FROM read_csv($path, columns = {'line': 'VARCHAR'}, delim = E'\x01', quote = '', escape = '',
              header = false, auto_detect = false, strict_mode = false, new_line = '\n',
              store_rejects = true, ignore_errors = true,
              rejects_table = '_rb_bad_lines', rejects_scan = '_rb_bad_scans')
WHERE regexp_matches(line, '\S');
