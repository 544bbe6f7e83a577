-- LiteLLM's StandardLoggingPayload read by DuckDB itself: litellm_log_lines(path, pv_path, max_chars,
-- max_line, fast, pv_key) is a table of a JSONL file's non-blank lines (json_lines), each with the
-- `logs` columns and its `lane`:
--   'store'  a call this SQL reads exactly as formats/litellm.py does: store the row;
--   'python' anything else (a field of an unusual type or shape, a bad or missing value, a line that
--            is not a JSON object): the Python parser reads that line, and gives the reject reason.
-- So the SQL never decides a reject, and need not mirror every rule: it takes the payloads LiteLLM
-- writes (an OpenAI-shaped response, epoch or ISO times), and hands the rest over. A test holds the
-- two paths to the same rows on fuzzed records. pv_key: the metadata key holding a prompt version
-- (pv_path its JSON path); max_chars: the field size limit; max_line: the line size limit.
--
-- Metadata loses its credentials as formats.base.scrub drops them: keys naming a key, hash, secret,
-- password, token or headers. The SQL drops them at the top level, where LiteLLM puts them
-- (user_api_key_hash), and leaves a payload with such a key deeper down to the parser.
CREATE OR REPLACE TEMP MACRO litellm_log_lines(path, pv_path, max_chars, max_line, fast, pv_key) AS TABLE
WITH payloads AS (
    SELECT line, r IS NOT NULL AND (fast OR left(ltrim(line), 1) = '{') AND r.id IS NOT NULL AS readable,
           r.*, as_json(r.metadata) AS meta, as_json(r.response) AS resp,
           as_json(r.messages) AS messages_json, as_json(r.model_parameters) AS params_json
    FROM json_lines(path, max_line, fast, {id: 'JSON', trace_id: 'JSON', call_type: 'JSON', stream: 'JSON',
             response_cost: 'JSON', status: 'JSON', prompt_tokens: 'JSON', completion_tokens: 'JSON',
             startTime: 'JSON', endTime: 'JSON', completionStartTime: 'JSON', model: 'JSON',
             model_id: 'JSON', model_group: 'JSON', api_base: 'JSON', metadata: 'JSON', cache_hit: 'JSON',
             request_tags: 'JSON', end_user: 'JSON', messages: 'JSON', response: 'JSON', error_str: 'JSON',
             error_information: 'JSON', model_parameters: 'JSON'})
),
read AS (
    SELECT line, readable,
           CASE WHEN json_kind(id) = 'VARCHAR' AND ord(id->>'$') BETWEEN 33 AND 126
                     AND ord(right(id->>'$', 1)) BETWEEN 33 AND 126 THEN id->>'$' END AS request_id,
           any_timestamp(startTime) AS ts,
           blank(endTime) AS no_end, any_timestamp(endTime) AS end_ts,
           blank(completionStartTime) AS no_first_token, any_timestamp(completionStartTime) AS first_token_ts,
           coalesce(stream::VARCHAR = 'true' OR (kind(stream) = 'VARCHAR' AND lower(stream->>'$') = 'true'),
                    false) AS streamed,
           coalesce(kind(status) = 'VARCHAR' AND (status->>'$') = 'failure', false) AS failed,
           chat_candidate(messages_json) AS turns,
           sampling_params(params_json) AS params,
           model, response_cost, prompt_tokens, completion_tokens, error_str, error_information, resp,
           kind(resp) AS resp_kind,
           -- the answer: the first choice's message (or, without one, its text)
           CASE WHEN json_kind(resp) = 'OBJECT' THEN resp->'$.choices' END AS choices,
           CASE WHEN json_kind(resp) = 'OBJECT' THEN resp->'$.usage' END AS usage,
           -- metadata: the payload's own without credentials, then the call's fields (a blank
           -- request_tags or end_user is left out, as is any null)
           kind(meta) AS meta_kind, meta,
           -- the metadata without its nulls: json_merge_patch drops them at every depth, Python only
           -- at the top, so a line with one deeper down (or ':null' inside a text) is left to Python
           CASE WHEN meta_kind = 'OBJECT' THEN json_merge_patch('{}', meta) ELSE '{}'::JSON END AS meta_base,
           CASE WHEN meta_kind = 'OBJECT'
                THEN (strlen(meta::VARCHAR) - strlen(replace(meta::VARCHAR, ':null', ''))) // 5
                     = len(json_keys(meta)) - len(json_keys(meta_base))
                ELSE true END AS nulls_on_top,
           -- the prompt version: in the metadata, else in the requester's or the spend logs' metadata
           json_extract(meta, [pv_path, '$.requester_metadata', '$.spend_logs_metadata']) AS pv_places,
           list_filter([pv_places[1], json_extract(pv_places[2], pv_path), json_extract(pv_places[3], pv_path)],
                       lambda v: NOT blank(v))[1] AS pv_given,
           -- the call's fields as members of the metadata object (none for a missing value)
           concat_ws(',', member('trace_id', trace_id), member('call_type', call_type),
                     member('model_id', model_id), member('model_group', model_group),
                     member('api_base', api_base), member('cache_hit', cache_hit),
                     member('request_tags', CASE WHEN truthy(request_tags) THEN request_tags END),
                     member('end_user', CASE WHEN truthy(end_user) THEN end_user END)) AS call_fields
    FROM payloads
),
parts AS (
    SELECT *,
           chat_turns(turns) AS messages,
           CASE WHEN json_kind(choices) = 'ARRAY' AND choices::VARCHAR <> '[]' THEN choices->'$[0]' END AS choice,
           -- the message, or (when it is empty) the delta; as Python's `message or delta`, where
           -- a falsy value of another type is left to the parser
           CASE WHEN json_kind(choices) = 'ARRAY' AND choices::VARCHAR <> '[]'
                THEN CASE WHEN (choices->'$[0].message')::VARCHAR NOT IN ('null', '{}')
                            THEN choices->'$[0].message'
                          WHEN (choices->'$[0].delta')::VARCHAR NOT IN ('null', '{}')
                            THEN choices->'$[0].delta' END END AS message,
           (usage->'$.prompt_tokens') AS usage_prompt, (usage->'$.completion_tokens') AS usage_completion,
           (usage->'$.prompt_tokens_details') AS prompt_details,
           (usage->'$.completion_tokens_details') AS completion_details,
           -- the payload's own metadata that goes: credentials, and the keys the call's fields set
           list_filter(json_keys(meta_base), lambda k:
               regexp_matches(k, '(^|_)(api_key|key_hash|hash|secret|password|authorization|token)$|^user_api_key$', 'i')
               OR lower(k) IN ('headers', 'api_key')
               OR k IN ('trace_id', 'call_type', 'model_id', 'model_group', 'api_base', 'cache_hit',
                        'request_tags', 'end_user', pv_key)) AS dropped_keys
    FROM read
),
cleaned AS (
    SELECT *,
           CASE WHEN len(dropped_keys) = 0 THEN meta_base
                ELSE json_merge_patch(meta_base, ('{' || array_to_string(list_transform(dropped_keys,
                         lambda k: to_json(k) || ':null'), ',') || '}')::JSON) END AS meta_kept,
           -- then the call's fields and the prompt version, as members written after the kept ones
           ('{' || concat_ws(',', nullif(substr(meta_kept::VARCHAR, 2, length(meta_kept::VARCHAR) - 2), ''),
                             nullif(call_fields, ''), member(pv_key, pv_given)) || '}')::JSON AS metadata
    FROM parts
),
rows AS (
    SELECT *,
           (epoch_us(end_ts) - epoch_us(ts)) / 1e6 * 1000 AS latency_from_times,
           (epoch_us(first_token_ts) - epoch_us(ts)) / 1e6 * 1000 AS ttft_from_times,
           CASE WHEN json_kind(message) = 'OBJECT' AND json_kind(message->'$.content') IN ('VARCHAR', 'NULL')
                  THEN message->>'$.content'
                WHEN message IS NULL AND json_kind(choice) = 'OBJECT'
                     AND json_kind(choice->'$.text') IN ('VARCHAR', 'NULL')
                  THEN choice->>'$.text' END AS answer
    FROM cleaned
)
SELECT CASE
         WHEN readable IS NOT TRUE THEN 'python'
         -- a condition that comes out unknown (NULL) counts as a reason to leave the line to Python
         WHEN (request_id IS NULL OR ts IS NULL OR messages IS NULL OR params IS NULL
              OR (NOT no_end AND (end_ts IS NULL OR latency_from_times < 0))
              OR (streamed AND NOT no_first_token AND (first_token_ts IS NULL OR ttft_from_times < 0))
              -- the response: absent, or an OpenAI chat completion with a readable first choice
              OR resp_kind NOT IN ('OBJECT', 'NULL')
              OR (resp_kind = 'OBJECT' AND NOT failed
                  AND NOT (kind(choice) = 'OBJECT' AND (kind(message) = 'OBJECT' OR message IS NULL)))
              OR (resp_kind = 'OBJECT' AND NOT failed AND answer IS NULL
                  AND NOT ((kind(message) = 'OBJECT' AND absent(message->'$.content'))
                           OR (message IS NULL AND absent(choice->'$.text'))))
              -- token counts: plain counts, the usage an OpenAI chat completion's
              OR NOT (absent(prompt_tokens) OR small_count(prompt_tokens) IS NOT NULL)
              OR NOT (absent(completion_tokens) OR small_count(completion_tokens) IS NOT NULL)
              OR kind(usage) NOT IN ('OBJECT', 'NULL')
              OR (kind(usage) = 'OBJECT' AND usage_prompt IS NULL AND usage_completion IS NULL)
              OR NOT (absent(usage_prompt) OR small_count(usage_prompt) IS NOT NULL)
              OR NOT (absent(usage_completion) OR small_count(usage_completion) IS NOT NULL)
              OR NOT (absent(prompt_details) OR kind(prompt_details) = 'OBJECT')
              OR NOT (absent(completion_details) OR kind(completion_details) = 'OBJECT')
              OR NOT (absent(prompt_details->'$.cached_tokens')
                      OR small_count(prompt_details->'$.cached_tokens') IS NOT NULL)
              OR NOT (absent(usage->'$.cache_read_input_tokens')
                      OR small_count(usage->'$.cache_read_input_tokens') IS NOT NULL)
              OR NOT (absent(completion_details->'$.reasoning_tokens')
                      OR small_count(completion_details->'$.reasoning_tokens') IS NOT NULL)
              OR NOT (absent(response_cost) OR amount(response_cost) IS NOT NULL)
              -- metadata: an object (or nothing) with no credential below its top level, no key
              -- Python's pattern would read otherwise (a line end), a prompt version as text
              OR NOT nulls_on_top
              OR contains(meta::VARCHAR, '\n')
              -- what is kept holds no key that ends like a credential's (scrub drops them at any depth)
              OR regexp_matches(metadata::VARCHAR, '(?i)(api_key|hash|secret|password|authorization|token|headers)":')
              OR regexp_matches(pv_key, '(^|_)(api_key|key_hash|hash|secret|password|authorization|token)$|^user_api_key$|^headers$', 'i')
              OR pv_key IN ('trace_id', 'call_type', 'model_id', 'model_group', 'api_base', 'cache_hit',
                            'request_tags', 'end_user')
              OR (pv_given IS NOT NULL AND kind(pv_given) <> 'VARCHAR')
              OR (model IS NOT NULL AND kind(model) NOT IN ('VARCHAR', 'NULL'))
              OR (failed AND NOT (absent(error_str) OR kind(error_str) = 'VARCHAR'))
              OR (failed AND blank(error_str) AND NOT absent(error_information))
              OR over_a_limit(max_chars, request_id, model->>'$', pv_given->>'$', answer, error_str->>'$',
                              messages, params, metadata)) IS NOT FALSE
           THEN 'python'
         ELSE 'store'
       END AS lane,
       line, request_id, ts, NULL::VARCHAR AS endpoint, model->>'$' AS model_id,
       CASE WHEN pv_given IS NOT NULL THEN pv_given->>'$' ELSE derived_prompt_version(messages) END AS prompt_version,
       messages::VARCHAR AS messages, params::VARCHAR AS params,
       CASE WHEN NOT failed THEN answer END AS output_text, NULL::VARCHAR AS reference,
       coalesce(small_count(prompt_tokens), small_count(usage_prompt)) AS input_tokens,
       coalesce(small_count(completion_tokens), small_count(usage_completion)) AS output_tokens,
       small_count(completion_details->'$.reasoning_tokens') AS reasoning_tokens,
       coalesce(small_count(prompt_details->'$.cached_tokens'),
                small_count(usage->'$.cache_read_input_tokens')) AS cached_tokens,
       latency_from_times AS latency_ms,
       CASE WHEN streamed THEN ttft_from_times END AS ttft_ms,
       amount(response_cost) AS cost_usd,
       CASE WHEN failed THEN 'error' ELSE 'ok' END AS status,
       CASE WHEN failed AND NOT blank(error_str) THEN error_str->>'$' END AS error,
       CASE WHEN pv_given IS NOT NULL THEN metadata
            ELSE json_merge_patch(metadata, '{"prompt_version_derived": true}') END::VARCHAR AS metadata
FROM rows;
