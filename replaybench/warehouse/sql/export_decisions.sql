-- The decisions a run looked at (or reported: its scores name them), as they stand now; for
-- `replaybench export`. JSON is written as text, as for every other table.
SELECT * REPLACE (key_parts::VARCHAR AS key_parts)
FROM decisions
WHERE decision_id IN (
    SELECT decision_id FROM decision_looks WHERE run_id = $run_id
    UNION
    SELECT decision_id FROM scores WHERE run_id = $run_id AND decision_id IS NOT NULL
)
ORDER BY prompt_version, candidate, generation
