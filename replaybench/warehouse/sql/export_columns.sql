-- What `replaybench export` writes (replaybench/warehouse/export.py): every table and view that
-- holds a run's rows, i.e. has a `run_id` column, and `decisions` (export_decisions.sql picks
-- the run's), with their columns in order.
WITH exported AS (
    SELECT DISTINCT table_name
    FROM duckdb_columns()
    WHERE database_name = current_database() AND schema_name = 'main'
      AND (column_name = 'run_id' OR table_name = 'decisions')
)
SELECT c.table_name, c.column_name, c.data_type
FROM duckdb_columns() AS c
JOIN exported USING (table_name)
WHERE c.database_name = current_database() AND c.schema_name = 'main'
ORDER BY c.table_name, c.column_index
