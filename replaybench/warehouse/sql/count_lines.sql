-- The non-blank lines of a text file that DuckDB can decode; the others (invalid UTF-8) are listed
-- in the temp table _rb_bad_lines. Parameters: $path, $max_line (the line size limit).
SELECT count(*)
FROM read_csv($path, columns = {'line': 'VARCHAR'}, delim = E'\x01', quote = '', escape = '',
              header = false, auto_detect = false, strict_mode = false, new_line = '\n',
              store_rejects = true, ignore_errors = true, max_line_size = $max_line,
              buffer_size = $max_line,
              rejects_table = '_rb_bad_lines', rejects_scan = '_rb_bad_scans')
WHERE regexp_matches(line, '[^ \t\n\v\f\r]');  -- not blank, as read_json sees it
