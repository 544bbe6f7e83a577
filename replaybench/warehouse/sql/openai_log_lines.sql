-- The `openai` log format, read by DuckDB itself: openai_log_lines(path, pv_path, max_chars, max_line,
-- fast) is a table of a JSONL file's (gzip or not) non-blank lines, each with the `logs` columns and
-- `reason` (why the line is rejected, or NULL). It mirrors `logformats.openai_record` check for check
-- and in the same order, so both ingest paths store the same rows and reasons; a test holds them to it.
--
-- Two readers feed the same checks:
-- - fast = true: DuckDB's `read_json`, each top-level field kept as JSON text. It is three times
--   quicker than parsing lines one by one, but it says nothing about a line it cannot read (bad
--   JSON, not an object, invalid UTF-8): such a line becomes a row of NULLs, which the checks
--   reject without a useful reason and without its text. Ingest uses it to store the good lines.
-- - fast = false: each line as text (`read_csv` with no delimiter), parsed by `json_transform`;
--   every line gets its reason and, when rejected, its raw text. Ingest uses it only for a file
--   where some lines were not stored, to say why.
-- Both give the same `r` (the fields as minified JSON text), so a good line is the same row either
-- way. The costlier checks run only on the rows that need them (DuckDB evaluates a CASE branch only
-- for the rows that reach it). Lines are not numbered here: numbering would make DuckDB do all of
-- this on one thread; ingest numbers the rejected ones afterwards, reading the file line by line.
-- pv_path: the JSON path of the metadata key holding a prompt version; max_chars: the field
-- size limit; max_line: the line size limit. Some files read_json cannot read at all, whatever
-- ignore_errors says: a line over its object size (given half of max_line, it reads lines up to
-- about max_line bytes), some arrays nested deeper than 128 levels, a gzip stream that is cut
-- off. The statement then fails, and ingest reads that file record by record instead.
-- The macros it shares with the other formats' readers are in log_line_macros.sql.

CREATE OR REPLACE TEMP MACRO openai_log_lines(path, pv_path, max_chars, max_line, fast) AS TABLE
WITH fields AS (
    SELECT line, try(json_transform(line, '{
               "request_id": "JSON", "ts": "JSON", "endpoint": "JSON", "model_id": "JSON",
               "prompt_version": "JSON", "request": "JSON", "response": "JSON",
               "latency_ms": "JSON", "ttft_ms": "JSON", "cost_usd": "JSON", "status": "JSON",
               "reference": "JSON", "metadata": "JSON", "error": "JSON"}')) AS r
    FROM read_csv(path, columns = {'line': 'VARCHAR'}, delim = E'\x01', quote = '', escape = '',
                  header = false, auto_detect = false, strict_mode = false, new_line = '\n',
                  ignore_errors = true, max_line_size = max_line,
                  buffer_size = max_line)
    WHERE NOT fast AND regexp_matches(line, '[^ \t\n\v\f\r]')  -- not blank, as read_json sees it
    UNION ALL
    SELECT NULL AS line,
           struct_pack(request_id, ts, endpoint, model_id, prompt_version, request, response,
                       latency_ms, ttft_ms, cost_usd, status, reference, metadata, error) AS r
    FROM read_json(path, format = 'newline_delimited', ignore_errors = true,
                   maximum_object_size = max_line // 2,
                   columns = {request_id: 'JSON', ts: 'JSON', endpoint: 'JSON', model_id: 'JSON',
                              prompt_version: 'JSON', request: 'JSON', response: 'JSON',
                              latency_ms: 'JSON', ttft_ms: 'JSON', cost_usd: 'JSON', status: 'JSON',
                              reference: 'JSON', metadata: 'JSON', error: 'JSON'})
    WHERE fast
),
parsed AS (
    SELECT line, r,
           -- the details as JSON text, so that one of the wrong type is seen as such (json_transform
           -- reads a part of the wrong type as nulls)
           try(json_transform(r.response, '{
               "choices": [{"message": {"content": "JSON"}}],
               "usage": {"prompt_tokens": "JSON", "completion_tokens": "JSON",
                         "prompt_tokens_details": "JSON", "completion_tokens_details": "JSON"}}')) AS resp
    FROM fields
),
parts AS (
    SELECT line, r, resp, resp.usage AS usage,
           CASE json_kind(r.request_id) WHEN 'VARCHAR' THEN trim(r.request_id->>'$') END AS rid,
           r.request->'$.messages' AS messages,
           resp.choices[1].message.content AS content,
           CASE json_kind(r.ts) WHEN 'VARCHAR' THEN r.ts->>'$' END AS ts_text,
           CASE WHEN json_kind(r.ts) = 'NUMBER' AND epoch_ok(r.ts::DOUBLE)
                THEN epoch_timestamp(r.ts::DOUBLE) END AS ts_epoch,
           CASE WHEN json_kind(r.metadata) = 'OBJECT' THEN r.metadata ELSE '{}'::JSON END AS metadata0,
           CASE WHEN json_kind(r.prompt_version) = 'VARCHAR' AND r.prompt_version->>'$' <> ''
                  THEN r.prompt_version->>'$'
                WHEN json_kind(r.prompt_version) NOT IN ('NULL', 'VARCHAR')
                  THEN r.prompt_version::VARCHAR END AS pv_given
    FROM parsed
),
typed AS (
    SELECT *,
           usage.prompt_tokens_details->'$.cached_tokens' AS cached,
           usage.completion_tokens_details->'$.reasoning_tokens' AS reasoning,
           -- the timestamps logformats.ISO_TIMESTAMP admits: DuckDB's cast takes others too
           CASE WHEN regexp_full_match(ts_text,
                  '(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]*)?)?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?')
                THEN try_cast(ts_text AS TIMESTAMPTZ) END AS ts_parsed,
           CASE json_kind(content)
                WHEN 'VARCHAR' THEN content->>'$'
                WHEN 'ARRAY' THEN array_to_string(json_extract_string(content, '$[*].text'), '')
                WHEN 'NULL' THEN NULL
                ELSE content::VARCHAR END AS output_text,
           coalesce(pv_given, nullif(json_extract_string(metadata0, pv_path), '')) AS pv_found,
           CASE WHEN json_kind(r.model_id) = 'VARCHAR' AND r.model_id->>'$' <> '' THEN r.model_id->>'$'
                WHEN json_kind(r.model_id) NOT IN ('NULL', 'VARCHAR') THEN r.model_id::VARCHAR
                ELSE r.request->>'$.model' END AS model_id,
           CASE json_kind(r.error) WHEN 'VARCHAR' THEN r.error->>'$'
                                   WHEN 'NULL' THEN NULL ELSE r.error::VARCHAR END AS error
    FROM parts
)
SELECT CASE
         WHEN r IS NULL THEN
           CASE WHEN json_type(try_cast(line AS JSON)) = 'NULL' THEN 'not a JSON object but a NoneType'
                ELSE 'invalid JSON' END
         WHEN rid IS NULL OR rid = '' THEN
           CASE json_type(line::JSON)
             WHEN 'OBJECT' THEN 'missing request_id'
             WHEN 'ARRAY' THEN 'not a JSON object but a list'
             WHEN 'VARCHAR' THEN 'not a JSON object but a str'
             WHEN 'BIGINT' THEN 'not a JSON object but a int'
             WHEN 'UBIGINT' THEN 'not a JSON object but a int'
             WHEN 'DOUBLE' THEN CASE WHEN regexp_matches(line, '^\s*-?[0-9]+\s*$')
                                     THEN 'not a JSON object but a int'  -- too big for UBIGINT
                                     ELSE 'not a JSON object but a float' END
             WHEN 'BOOLEAN' THEN 'not a JSON object but a bool'
             ELSE 'not a JSON object but a NoneType' END
         -- json_type would parse the whole text again: the first character of DuckDB's own
         -- (minified) JSON text says the same
         WHEN r.request IS NULL OR left(r.request::VARCHAR, 1) <> '{' THEN 'missing request object'
         WHEN messages IS NULL OR left(messages::VARCHAR, 1) <> '[' OR messages::VARCHAR = '[]'
           THEN 'missing request.messages'
         WHEN len(json_extract(messages, '$[*].role')) <> json_array_length(messages)
           THEN 'request.messages must be objects with a role'
         WHEN json_kind(r.response) NOT IN ('OBJECT', 'NULL') THEN 'response is not an object'
         -- json_transform reads a part of the wrong type as nulls: where a part came out null,
         -- the response itself says whether it was absent or of the wrong type
         WHEN resp.choices IS NULL AND json_kind(r.response->'$.choices') NOT IN ('ARRAY', 'NULL')
           THEN 'response.choices is not a list'
         WHEN resp.choices[1].message IS NULL
              AND json_kind(r.response->'$.choices[0]') NOT IN ('OBJECT', 'NULL')
           THEN 'response.choices[0] is not an object'
         WHEN content IS NULL
              AND json_kind(r.response->'$.choices[0].message') NOT IN ('OBJECT', 'NULL')
           THEN 'response.choices[0].message is not an object'
         WHEN usage.prompt_tokens IS NULL AND usage.completion_tokens IS NULL
              AND usage.prompt_tokens_details IS NULL AND usage.completion_tokens_details IS NULL
              AND json_kind(r.response->'$.usage') NOT IN ('OBJECT', 'NULL')
           THEN 'response.usage is not an object'
         WHEN json_kind(usage.prompt_tokens_details) NOT IN ('OBJECT', 'NULL')
           THEN 'response.usage.prompt_tokens_details is not an object'
         WHEN json_kind(usage.completion_tokens_details) NOT IN ('OBJECT', 'NULL')
           THEN 'response.usage.completion_tokens_details is not an object'
         WHEN json_kind(r.ts) = 'NUMBER' AND ts_epoch IS NULL
           THEN 'unparsable timestamp (ts): ' || r.ts::DOUBLE::VARCHAR
         WHEN r.ts IS NULL OR json_kind(r.ts) = 'NULL' OR ts_text = ''
              OR (ts_text IS NULL AND ts_epoch IS NULL) THEN 'missing timestamp (ts)'
         WHEN ts_text IS NOT NULL AND ts_parsed IS NULL
           THEN 'unparsable timestamp: ''' || left(ts_text, 40) || ''''
         WHEN too_long(r.endpoint::VARCHAR, max_chars)
           THEN 'endpoint is over the size limit (' || format('{:,}', length(r.endpoint->>'$'))
                || ' > ' || format('{:,}', max_chars) || ' chars)'
         WHEN too_long(model_id, max_chars)
           THEN 'model_id is over the size limit (' || format('{:,}', length(model_id))
                || ' > ' || format('{:,}', max_chars) || ' chars)'
         WHEN too_long(messages::VARCHAR, max_chars)
           THEN 'request.messages is over the size limit (' || format('{:,}', length(messages::VARCHAR))
                || ' > ' || format('{:,}', max_chars) || ' chars)'
         WHEN too_long(output_text, max_chars)
           THEN 'response content is over the size limit (' || format('{:,}', length(output_text))
                || ' > ' || format('{:,}', max_chars) || ' chars)'
         WHEN too_long(r.reference::VARCHAR, max_chars)
           THEN 'reference is over the size limit (' || format('{:,}', length(r.reference->>'$'))
                || ' > ' || format('{:,}', max_chars) || ' chars)'
         -- numbers: a look at the text passes the usual row (a short JSON number that starts
         -- with a digit is not negative); the detailed check runs only for the others
         WHEN NOT (plain_number(usage.prompt_tokens, 10) AND plain_number(usage.completion_tokens, 10)
                   AND plain_number(reasoning, 10) AND plain_number(cached, 10)
                   AND plain_number(r.latency_ms, 16) AND plain_number(r.ttft_ms, 16)
                   AND plain_number(r.cost_usd, 16))
              AND coalesce(bad_count('prompt_tokens', usage.prompt_tokens),
                           bad_count('completion_tokens', usage.completion_tokens),
                           bad_count('reasoning_tokens', reasoning),
                           bad_count('cached_tokens', cached),
                           bad_measure('latency_ms', r.latency_ms),
                           bad_measure('ttft_ms', r.ttft_ms),
                           bad_measure('cost_usd', r.cost_usd)) IS NOT NULL
         THEN coalesce(bad_count('prompt_tokens', usage.prompt_tokens),
                       bad_count('completion_tokens', usage.completion_tokens),
                       bad_count('reasoning_tokens', reasoning),
                       bad_count('cached_tokens', cached),
                       bad_measure('latency_ms', r.latency_ms),
                       bad_measure('ttft_ms', r.ttft_ms),
                       bad_measure('cost_usd', r.cost_usd))
         WHEN too_long(error, max_chars)
           THEN 'error is over the size limit (' || format('{:,}', length(error))
                || ' > ' || format('{:,}', max_chars) || ' chars)'
       END AS reason,
       CASE WHEN reason IS NOT NULL THEN line END AS line,  -- the raw line explains a reject
       rid AS request_id,
       coalesce(ts_parsed, ts_epoch) AS ts,
       CASE json_kind(r.endpoint) WHEN 'VARCHAR' THEN r.endpoint->>'$'
                                  WHEN 'NULL' THEN NULL ELSE r.endpoint::VARCHAR END AS endpoint,
       model_id,
       CASE WHEN pv_found IS NOT NULL THEN pv_found
            ELSE 'sys:' || left(sha256(array_to_string(list_transform(
                   list_filter(json_extract(messages, '$[*]'),
                               lambda m: json_extract_string(m, '$.role') = 'system'),
                   lambda m: coalesce(json_extract_string(m, '$.content'), '')), chr(10))), 10)
       END AS prompt_version,
       CASE WHEN pv_found IS NOT NULL THEN metadata0
            ELSE json_merge_patch(metadata0, '{"prompt_version_derived": true}') END AS metadata,
       messages,
       json_merge_patch(r.request, '{"messages": null, "model": null, "stream": null}') AS params,
       output_text,
       CASE json_kind(r.reference) WHEN 'VARCHAR' THEN r.reference->>'$'
                                   WHEN 'NULL' THEN NULL ELSE r.reference::VARCHAR END AS reference,
       -- truncated, as Python's int() does (a cast would round)
       trunc(try_cast(usage.prompt_tokens AS DOUBLE))::BIGINT AS input_tokens,
       trunc(try_cast(usage.completion_tokens AS DOUBLE))::BIGINT AS output_tokens,
       trunc(try_cast(reasoning AS DOUBLE))::BIGINT AS reasoning_tokens,
       trunc(try_cast(cached AS DOUBLE))::BIGINT AS cached_tokens,
       try_cast(r.latency_ms AS DOUBLE) AS latency_ms,
       try_cast(r.ttft_ms AS DOUBLE) AS ttft_ms,
       try_cast(r.cost_usd AS DOUBLE) AS cost_usd,
       coalesce(CASE WHEN json_kind(r.status) = 'VARCHAR' AND r.status->>'$' <> ''
                     THEN r.status->>'$' END,
                CASE WHEN len(resp.choices) > 0 THEN 'ok' ELSE 'error' END) AS status,
       error
FROM typed;
