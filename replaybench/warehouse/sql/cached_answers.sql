-- Answers already paid for, for the requests about to be sent ($keys: a registered table of keys).
SELECT c.*
FROM response_cache AS c
JOIN _keys AS k USING (cache_key);
