-- A text file's lines, numbered (1-based, blank lines included), into the temp table _lines.
-- Lines that are not valid UTF-8 are left out and listed in _rb_bad_lines with their line numbers.
-- They are numbered in a statement of their own: numbering them inside the heavy JSON statement
-- would make DuckDB run all of its work on one thread.
-- Parameter: $path (plain or gzip).
CREATE OR REPLACE TEMP TABLE _lines AS
SELECT row_number() OVER () AS n, line
FROM read_csv($path, columns = {'line': 'VARCHAR'}, delim = E'\x01', quote = '', escape = '',
              header = false, auto_detect = false, strict_mode = false, new_line = '\n',
              store_rejects = true, ignore_errors = true,
              rejects_table = '_rb_bad_lines', rejects_scan = '_rb_bad_scans');

