-- Macros the SQL ingest path shares. bad_number(field, value): why a JSON value cannot be a
-- token count, duration or amount (not a number, or negative), or NULL when it can (or is absent).
-- The wording matches logformats.measure, so both ingest paths give the same reasons.
CREATE MACRO bad_number(field, v) AS
    CASE
      WHEN v IS NULL OR json_type(v) = 'NULL' THEN NULL
      WHEN json_type(v) NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN
        field || ' is not a number: ''' ||
        CASE json_type(v)
          WHEN 'VARCHAR' THEN left(v->>'$', 40)
          WHEN 'BOOLEAN' THEN CASE WHEN v::VARCHAR = 'true' THEN 'True' ELSE 'False' END
          ELSE left(v::VARCHAR, 40)
        END || ''''
      WHEN v::DOUBLE < 0 THEN field || ' is negative: ' || v::VARCHAR
    END;
