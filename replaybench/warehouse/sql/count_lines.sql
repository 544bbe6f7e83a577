-- The non-blank lines of a text file that DuckDB can decode. Parameter: $path.
SELECT count(*)
FROM read_csv($path, columns = {'line': 'VARCHAR'}, delim = E'\x01', quote = '', escape = '',
              header = false, auto_detect = false, strict_mode = false, new_line = '\n',
              ignore_errors = true)
WHERE regexp_matches(line, '\S');
