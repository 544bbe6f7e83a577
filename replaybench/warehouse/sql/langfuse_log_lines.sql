-- Langfuse observations read by DuckDB itself: langfuse_log_lines(path, pv_path, max_chars, max_line,
-- fast, export, ms_per_unit) is a table of a JSONL file's non-blank lines (json_lines), each with the
-- `logs` columns and its `lane`:
--   'store'  a GENERATION this SQL reads exactly as formats/langfuse.py does: store the row;
--   'skip'   another observation type (SPAN, EVENT, …), which gives no row;
--   'python' anything else (a field of an unusual type or shape, a bad or missing value, a line that
--            is not a JSON object): the Python parser reads that line, and gives the reject reason.
-- So the SQL never decides a reject, and need not mirror every rule: it takes the shapes Langfuse
-- writes, and hands the rest over. A test holds the two paths to the same rows on fuzzed records.
--
-- export = false reads the public API's camelCase observations (`langfuse`); export = true the
-- blob-storage export's snake_case rows (`langfuse_export`), where `input`, `output` and others are
-- JSON text. ms_per_unit: milliseconds per unit of `latency` / `time_to_first_token`, read only when
-- the row's own times are missing (1000 for the API; for the export the configured unit, or NULL for
-- `auto`, which the Python parser works out row by row). pv_path: the JSON path of the metadata key
-- holding a prompt version; max_chars: the field size limit; max_line: the line size limit.
CREATE OR REPLACE TEMP MACRO langfuse_log_lines(path, pv_path, max_chars, max_line, fast, export,
                                                ms_per_unit) AS TABLE
WITH api AS (
    SELECT line, r IS NOT NULL AND (fast OR left(ltrim(line), 1) = '{') AND r.type IS NOT NULL AS readable,
           r.id, r.type, r.startTime AS start_time, r.endTime AS end_time,
           r.completionStartTime AS first_token_time, [r.model, r.providedModelName] AS models,
           r.modelParameters AS params, r.input, r.output, r.usageDetails AS usage_details, r.usage,
           r.costDetails AS cost_details, [r.totalCost, r.calculatedTotalCost] AS costs, r.metadata,
           r.level, r.statusMessage AS status_message, r.promptName AS prompt_name,
           r.promptVersion AS prompt_version, r.latency, r.timeToFirstToken AS ttft,
           json_object('trace_id', nonblank(r.traceId), 'observation_name', nonblank(r.name),
                       'environment', nonblank(r.environment), 'prompt_id', nonblank(r.promptId)) AS context
    FROM json_lines(path, max_line, fast, {id: 'JSON', type: 'JSON', startTime: 'JSON',
             endTime: 'JSON', completionStartTime: 'JSON', model: 'JSON', providedModelName: 'JSON',
             modelParameters: 'JSON', input: 'JSON', output: 'JSON', usageDetails: 'JSON', usage: 'JSON',
             costDetails: 'JSON', totalCost: 'JSON', calculatedTotalCost: 'JSON', metadata: 'JSON',
             level: 'JSON', statusMessage: 'JSON', promptName: 'JSON', promptVersion: 'JSON',
             latency: 'JSON', timeToFirstToken: 'JSON', traceId: 'JSON', name: 'JSON',
             environment: 'JSON', promptId: 'JSON'})
    WHERE NOT export
),
export AS (
    SELECT line, r IS NOT NULL AND (fast OR left(ltrim(line), 1) = '{') AND r.type IS NOT NULL AS readable,
           r.id, r.type, r.start_time, r.end_time, r.completion_start_time AS first_token_time,
           [r.provided_model_name] AS models, r.model_parameters AS params, r.input, r.output,
           r.usage_details, r.usage, r.cost_details, [r.total_cost] AS costs, r.metadata, r.level,
           r.status_message, r.prompt_name, r.prompt_version, r.latency, r.time_to_first_token AS ttft,
           json_object('trace_id', nonblank(r.trace_id), 'observation_name', nonblank(r.name),
                       'environment', nonblank(r.environment), 'prompt_id', nonblank(r.prompt_id),
                       'project_id', nonblank(r.project_id), 'trace_name', nonblank(r.trace_name),
                       'user_id', nonblank(r.user_id), 'session_id', nonblank(r.session_id),
                       'tags', nonblank(r.tags), 'release', nonblank(r.release)) AS context
    FROM json_lines(path, max_line, fast, {id: 'JSON', type: 'JSON', start_time: 'JSON',
             end_time: 'JSON', completion_start_time: 'JSON', provided_model_name: 'JSON',
             model_parameters: 'JSON', input: 'JSON', output: 'JSON', usage_details: 'JSON', usage: 'JSON',
             cost_details: 'JSON', total_cost: 'JSON', metadata: 'JSON', level: 'JSON',
             status_message: 'JSON', prompt_name: 'JSON', prompt_version: 'JSON', latency: 'JSON',
             time_to_first_token: 'JSON', trace_id: 'JSON', name: 'JSON', environment: 'JSON',
             prompt_id: 'JSON', project_id: 'JSON', trace_name: 'JSON', user_id: 'JSON',
             session_id: 'JSON', tags: 'JSON', release: 'JSON'})
    WHERE export
),
observations AS (
    -- the fields an export may give as JSON text, read as JSON (once: the macros name them often)
    SELECT * REPLACE (as_json(input) AS input, as_json(output) AS output, as_json(params) AS params,
                      as_json(usage_details) AS usage_details, as_json(cost_details) AS cost_details,
                      as_json(metadata) AS metadata)
    FROM (SELECT * FROM api UNION ALL SELECT * FROM export)
),
read AS (
    SELECT line, readable,
           json_kind(type) = 'VARCHAR' AND upper(type->>'$') = 'GENERATION' AS generation,
           CASE WHEN json_kind(id) = 'VARCHAR' AND ord(id->>'$') BETWEEN 33 AND 126
                     AND ord(right(id->>'$', 1)) BETWEEN 33 AND 126 THEN id->>'$' END AS request_id,
           iso_timestamp(CASE json_kind(start_time) WHEN 'VARCHAR' THEN start_time->>'$' END) AS ts,
           -- the end and first token times: NULL when blank (Python then reads `latency` and
           -- `time_to_first_token`), else the time (NULL too when it is not a timestamp)
           blank(end_time) AS no_end, iso_timestamp(CASE json_kind(end_time) WHEN 'VARCHAR'
                                                     THEN end_time->>'$' END) AS end_ts,
           blank(first_token_time) AS no_first_token,
           iso_timestamp(CASE json_kind(first_token_time) WHEN 'VARCHAR'
                         THEN first_token_time->>'$' END) AS first_token_ts,
           chat_candidate(input) AS turns,
           output,
           list_filter(models, lambda m: NOT blank(m))[1] AS model,
           sampling_params(params) AS params,
           usage_details, usage,
           list_filter(list_concat([CASE WHEN json_kind(cost_details) = 'OBJECT'
                                         THEN cost_details->'$.total' END], costs),
                       lambda c: NOT blank(c))[1] AS cost,
           metadata, level, status_message, prompt_name, prompt_version,
           latency, ttft, context
    FROM observations
),
measured AS (
    SELECT *,
           chat_turns(turns) AS messages,
           (epoch_us(end_ts) - epoch_us(ts)) / 1e6 * 1000 AS latency_from_times,
           (epoch_us(first_token_ts) - epoch_us(ts)) / 1e6 * 1000 AS ttft_from_times,
           -- usage details, when they are a non-empty object (else Python reads the older `usage`)
           coalesce(json_kind(usage_details) = 'OBJECT' AND usage_details::VARCHAR <> '{}', false) AS has_usage_details,
           -- the older usage object (API v1): input and output, or promptTokens and completionTokens
           list_filter([json_extract(usage, '$.input'), json_extract(usage, '$.promptTokens')],
                       lambda v: NOT blank(v))[1] AS older_input_given,
           list_filter([json_extract(usage, '$.output'), json_extract(usage, '$.completionTokens')],
                       lambda v: NOT blank(v))[1] AS older_output_given,
           small_count(older_input_given) AS older_input,
           small_count(older_output_given) AS older_output,
           -- the usual usage details (counts under the keys Langfuse's integrations write) are read
           -- as a struct; others are taken apart member by member, at several times the cost
           has_usage_details
             AND regexp_full_match(usage_details::VARCHAR,
                                   '\{("[a-z_]+":([0-9]{1,9}|null),)*"[a-z_]+":([0-9]{1,9}|null)\}')
             AND NOT regexp_matches(regexp_replace(usage_details::VARCHAR,
                                                   '"(input|input_cached_tokens|input_cached|cache_read_input_tokens|input_cache_read|output|output_reasoning_tokens|output_reasoning)":',
                                                   ':', 'g'),
                                    'input|output') AS usual_usage,
           CASE WHEN usual_usage THEN json_transform(usage_details, '{"input": "BIGINT",
                    "input_cached_tokens": "BIGINT", "input_cached": "BIGINT",
                    "cache_read_input_tokens": "BIGINT", "input_cache_read": "BIGINT", "output": "BIGINT",
                    "output_reasoning_tokens": "BIGINT", "output_reasoning": "BIGINT"}') END AS usual,
           CASE WHEN has_usage_details AND NOT usual_usage
                THEN try_cast(usage_details AS MAP(VARCHAR, JSON)) END AS usage_map,
           map_entries(usage_map) AS usage_entries,
           -- the Langfuse prompt the observation used, as `name@vN`
           CASE WHEN json_kind(prompt_name) = 'VARCHAR' THEN prompt_name->>'$'
                WHEN absent(prompt_name) THEN '' END AS prompt_name_text,
           CASE WHEN blank(prompt_version) THEN ''
                WHEN json_kind(prompt_version) = 'VARCHAR' THEN prompt_version->>'$'
                WHEN regexp_full_match(prompt_version::VARCHAR, '-?[0-9]{1,15}')
                  THEN prompt_version::VARCHAR END AS prompt_version_text,
    FROM read
),
rows AS (
    SELECT *,
           -- Langfuse's input and output exclude their details: every count under a key naming
           -- input (output) is part of the input (output)
           CASE WHEN NOT has_usage_details THEN older_input
                WHEN usual_usage THEN
                  CASE WHEN coalesce(usual.input, usual.input_cached_tokens, usual.input_cached,
                                     usual.cache_read_input_tokens, usual.input_cache_read) IS NOT NULL
                       THEN coalesce(usual.input, 0) + coalesce(usual.input_cached_tokens, 0)
                            + coalesce(usual.input_cached, 0) + coalesce(usual.cache_read_input_tokens, 0)
                            + coalesce(usual.input_cache_read, 0) END
                ELSE list_sum(list_transform(list_filter(usage_entries, lambda e: contains(e.key, 'input')
                                                                          AND e.value::VARCHAR <> 'null'),
                                             lambda e: small_count(e.value))) END AS input_tokens,
           CASE WHEN NOT has_usage_details THEN older_output
                WHEN usual_usage THEN
                  CASE WHEN coalesce(usual.output, usual.output_reasoning_tokens, usual.output_reasoning) IS NOT NULL
                       THEN coalesce(usual.output, 0) + coalesce(usual.output_reasoning_tokens, 0)
                            + coalesce(usual.output_reasoning, 0) END
                ELSE list_sum(list_transform(list_filter(usage_entries, lambda e: contains(e.key, 'output')
                                                                          AND e.value::VARCHAR <> 'null'),
                                             lambda e: small_count(e.value))) END AS output_tokens,
           CASE WHEN usual_usage
                THEN coalesce(usual.input_cached_tokens, usual.input_cached, usual.cache_read_input_tokens,
                              usual.input_cache_read)
                ELSE coalesce(small_count(usage_map['input_cached_tokens']), small_count(usage_map['input_cached']),
                              small_count(usage_map['cache_read_input_tokens']),
                              small_count(usage_map['input_cache_read'])) END AS cached_tokens,
           CASE WHEN usual_usage THEN coalesce(usual.output_reasoning_tokens, usual.output_reasoning)
                ELSE coalesce(small_count(usage_map['output_reasoning_tokens']),
                              small_count(usage_map['output_reasoning'])) END AS reasoning_tokens,
           usual_usage OR all_of(list_transform(usage_entries, lambda e: e.value::VARCHAR = 'null'
                                                                  OR small_count(e.value) IS NOT NULL)) AS usage_ok,
           CASE WHEN prompt_name_text <> '' AND prompt_version_text <> ''
                  THEN prompt_name_text || '@v' || prompt_version_text
                WHEN prompt_version_text <> '' THEN 'v' || prompt_version_text
                WHEN prompt_name_text <> '' THEN prompt_name_text END AS langfuse_prompt,
           json_merge_patch(CASE WHEN json_kind(metadata) = 'OBJECT' THEN without_nulls(metadata)
                                 ELSE '{}'::JSON END,
                            context) AS metadata_with_context
    FROM measured
),
final AS (
    SELECT *,
           coalesce(langfuse_prompt,
                    CASE WHEN json_kind(metadata_with_context->pv_path) = 'VARCHAR'
                              AND (metadata_with_context->>pv_path) <> ''
                         THEN metadata_with_context->>pv_path END) AS pv_found,
           coalesce(latency_from_times,
                    CASE WHEN NOT blank(latency) THEN amount(latency) * ms_per_unit END) AS latency_ms,
           coalesce(ttft_from_times,
                    CASE WHEN NOT blank(ttft) THEN amount(ttft) * ms_per_unit END) AS ttft_ms,
           CASE WHEN json_kind(level) = 'VARCHAR' AND (level->>'$') = 'ERROR' THEN 'error' ELSE 'ok' END AS status,
           CASE WHEN json_kind(output) = 'OBJECT' THEN
                  CASE WHEN (output->'$.choices') IS NULL AND (output->'$.type') IS NULL
                            AND (output->'$.object') IS NULL AND json_kind(output->'$.content') IN ('VARCHAR', 'NULL')
                       THEN output->>'$.content' END
                WHEN json_kind(output) = 'VARCHAR' AND output::VARCHAR <> '""' THEN output->>'$' END AS output_text
    FROM rows
)
SELECT CASE
         WHEN readable IS NOT TRUE THEN 'python'
         WHEN generation IS NOT TRUE THEN 'skip'
         -- a condition that comes out unknown (NULL) counts as a reason to leave the line to Python
         WHEN (request_id IS NULL OR ts IS NULL OR messages IS NULL OR params IS NULL
              OR (NOT no_end AND (end_ts IS NULL OR latency_from_times < 0))
              OR (NOT no_first_token AND (first_token_ts IS NULL OR ttft_from_times < 0))
              OR (latency_from_times IS NULL AND NOT blank(latency) AND latency_ms IS NULL)
              OR (ttft_from_times IS NULL AND NOT blank(ttft) AND ttft_ms IS NULL)
              OR (cost IS NOT NULL AND amount(cost) IS NULL)
              -- without usage details, the API's older usage object: plain counts
              OR (NOT has_usage_details AND NOT absent(usage)
                  AND (json_kind(usage) <> 'OBJECT' OR older_input IS NULL AND NOT blank(older_input_given)
                       OR older_output IS NULL AND NOT blank(older_output_given)))
              OR (has_usage_details AND NOT usual_usage AND (usage_entries IS NULL OR NOT usage_ok))
              OR coalesce(input_tokens, 0) > 2147483647 OR coalesce(output_tokens, 0) > 2147483647
              OR prompt_name_text IS NULL OR prompt_version_text IS NULL
              OR metadata_with_context IS NULL
              -- a context field that is an object would be merged into metadata, not set
              OR contains(substr(context::VARCHAR, 2), '{')
              OR (pv_found IS NULL AND NOT absent(metadata_with_context->pv_path)
                  AND (metadata_with_context->pv_path)::VARCHAR <> '""')
              OR (NOT blank(output) AND output_text IS NULL)
              OR (model IS NOT NULL AND json_kind(model) <> 'VARCHAR')
              OR (status = 'error' AND NOT blank(status_message) AND json_kind(status_message) <> 'VARCHAR')
              OR over_a_limit(max_chars, request_id, model->>'$', pv_found, output_text, text_of(status_message),
                              messages, params, metadata_with_context)) IS NOT FALSE
           THEN 'python'
         ELSE 'store'
       END AS lane,
       line, request_id, ts, NULL::VARCHAR AS endpoint, model->>'$' AS model_id,
       CASE WHEN pv_found IS NOT NULL THEN pv_found ELSE derived_prompt_version(messages) END AS prompt_version,
       messages::VARCHAR AS messages, params::VARCHAR AS params, output_text, NULL::VARCHAR AS reference,
       input_tokens, output_tokens, reasoning_tokens, cached_tokens, latency_ms, ttft_ms,
       amount(cost) AS cost_usd, status,
       CASE WHEN status = 'error' THEN text_of(status_message) END AS error,
       CASE WHEN pv_found IS NOT NULL THEN metadata_with_context
            ELSE json_merge_patch(metadata_with_context, '{"prompt_version_derived": true}')
       END::VARCHAR AS metadata
FROM final;
