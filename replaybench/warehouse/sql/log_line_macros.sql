-- Macros the SQL readers of log formats share (`*_log_lines.sql`). They read JSON values as DuckDB
-- keeps them: minified JSON text, so the first character says a value's type.
--
-- json_kind(j): the type of a JSON value from its first character (OBJECT, ARRAY, VARCHAR, NULL,
-- BOOLEAN or NUMBER). DuckDB's JSON text is minified, so this says what json_type says without
-- parsing the whole value again.
-- (Its parameter has a name of its own: DuckDB mixes up a macro's parameter with the caller's of
-- the same name when the caller passes an expression on it, as json_kind(j->'$.role').)
CREATE OR REPLACE TEMP MACRO json_kind(kind_of) AS
    CASE left(kind_of::VARCHAR, 1) WHEN '{' THEN 'OBJECT' WHEN '[' THEN 'ARRAY' WHEN '"' THEN 'VARCHAR'
                                   WHEN 'n' THEN 'NULL' WHEN 't' THEN 'BOOLEAN' WHEN 'f' THEN 'BOOLEAN'
                                   WHEN '' THEN NULL ELSE CASE WHEN kind_of IS NOT NULL THEN 'NUMBER' END END;

-- kind(j): json_kind, with a missing value as 'NULL' (so that a condition on it is never unknown).
CREATE OR REPLACE TEMP MACRO kind(kind_of_given) AS coalesce(json_kind(kind_of_given), 'NULL');

-- absent(j): the field is missing or JSON null.
CREATE OR REPLACE TEMP MACRO absent(j) AS j IS NULL OR j::VARCHAR = 'null';

-- blank(j): missing, null or the empty string: what the parsers' `first()` passes over.
CREATE OR REPLACE TEMP MACRO blank(j) AS j IS NULL OR j::VARCHAR IN ('null', '""');

-- truthy(j): a JSON value Python takes as true (not null, false, 0, "", [] or {}).
CREATE OR REPLACE TEMP MACRO truthy(j) AS
    NOT (j IS NULL OR j::VARCHAR IN ('null', 'false', '""', '[]', '{}')
         OR (json_kind(j) = 'NUMBER' AND try_cast(j AS DOUBLE) = 0));

-- nonblank(j): j, or NULL when it is blank.
CREATE OR REPLACE TEMP MACRO nonblank(j) AS CASE WHEN NOT blank(j) THEN j END;

-- all_of(booleans), any_of(booleans): of a list, empty or not (list_bool_and of [] is NULL); a NULL
-- list is false for all_of, true for any_of. The list is named once: a macro's argument is
-- copied wherever it is named, and a list_transform would run as often. list_bool_and passes over
-- NULL elements, so a lambda that fills the list must not give NULL (coalesce it).
CREATE OR REPLACE TEMP MACRO all_of(l) AS coalesce(list_bool_and(l || [true]), false);
CREATE OR REPLACE TEMP MACRO any_of(l) AS coalesce(list_bool_or(l || [false]), true);

-- roomy(json_text, max_chars): JSON text well within the field size limit. Python writes JSON
-- text a little differently (escapes, numbers), so a JSON column close to the limit is left to the
-- Python parser, which says exactly whether it is over.
CREATE OR REPLACE TEMP MACRO roomy(t, max_chars) AS strlen(t) <= max_chars // 2;

-- plain_number(j, digits): true when a JSON value is absent, null or a number that is not
-- negative, has no exponent and fewer than `digits` characters (so it is finite, and a count
-- of fewer than 10 fits the INTEGER token columns).
CREATE OR REPLACE TEMP MACRO plain_number(j, digits) AS
    j IS NULL OR (strlen(j::VARCHAR) < digits AND (ord(j::VARCHAR) BETWEEN 48 AND 57 OR j::VARCHAR = 'null')
                  AND NOT contains(j::VARCHAR, 'e') AND NOT contains(j::VARCHAR, 'E'));

-- amount(j): a JSON number that is finite and not negative, as a DOUBLE (what logformats.measure
-- keeps); NULL for anything else.
CREATE OR REPLACE TEMP MACRO amount(j) AS
    CASE WHEN json_kind(j) = 'NUMBER' AND isfinite(j::DOUBLE) AND j::DOUBLE >= 0 THEN j::DOUBLE END;

-- small_count(j): a JSON integer of at most 9 digits, not negative, as a BIGINT (a count no check
-- of logformats.count refuses); NULL for anything else.
CREATE OR REPLACE TEMP MACRO small_count(j) AS
    CASE WHEN regexp_full_match(j::VARCHAR, '[0-9]{1,9}') THEN j::BIGINT END;

-- too_long(text, max_chars): more than max_chars characters. Counting characters reads the whole
-- text; its size in bytes (stored with it) settles almost every row first.
CREATE OR REPLACE TEMP MACRO too_long(t, max_chars) AS
    CASE WHEN strlen(t) > max_chars THEN length(t) > max_chars ELSE false END;

-- bad_measure(field, v): why a JSON value cannot be a duration or amount, in the words of
-- logformats.measure: first a number that is not finite (1e999, NaN), then bad_number's reasons.
CREATE OR REPLACE TEMP MACRO bad_measure(field, v) AS
    CASE WHEN json_kind(v) = 'NUMBER' AND NOT isfinite(v::DOUBLE)
           THEN field || ' is not a number: ''' || v::DOUBLE::VARCHAR || ''''
         ELSE bad_number(field, v) END;

-- bad_count(field, v): bad_measure, then a count over what the INTEGER token columns hold.
CREATE OR REPLACE TEMP MACRO bad_count(field, v) AS
    coalesce(bad_measure(field, v),
             CASE WHEN json_kind(v) = 'NUMBER' AND v::DOUBLE > 2147483647
                  THEN field || ' is too large: over 2,147,483,647' END);

-- epoch_ok(d): epoch seconds in the years 1 to 9999, which Python's datetime holds.
CREATE OR REPLACE TEMP MACRO epoch_ok(d) AS d >= -62135596800 AND d < 253402300800;

-- epoch_timestamp(d): epoch seconds as the instant Python's datetime.fromtimestamp gives: the
-- fraction rounded half to even to the microsecond (DuckDB's to_timestamp rounds otherwise).
CREATE OR REPLACE TEMP MACRO epoch_timestamp(d) AS
    to_timestamp(0) + to_microseconds(trunc(d)::BIGINT * 1000000 + round_even((d - trunc(d)) * 1e6, 0)::BIGINT);

-- any_timestamp(j): a JSON timestamp as logformats.timestamp reads it, ISO-8601 text or epoch
-- seconds; NULL when it is neither (or out of range).
CREATE OR REPLACE TEMP MACRO any_timestamp(j) AS
    CASE json_kind(j) WHEN 'VARCHAR' THEN iso_timestamp(json_extract_string(j, '$'))
                      WHEN 'NUMBER' THEN CASE WHEN epoch_ok(j::DOUBLE) THEN epoch_timestamp(j::DOUBLE) END END;

-- iso_timestamp(t): the text of a timestamp as logformats.timestamp reads it (the grammar of
-- logformats.ISO_TIMESTAMP, which DuckDB's cast is stricter and looser than), NULL if it does not.
CREATE OR REPLACE TEMP MACRO iso_timestamp(t) AS
    CASE WHEN regexp_full_match(t,
           '(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]*)?)?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?')
         THEN try_cast(t AS TIMESTAMPTZ) END;

-- shallow(t): JSON text that cannot nest more than the readers' 512 levels (it has fewer opening
-- brackets than that), so that Python reads it as DuckDB does.
CREATE OR REPLACE TEMP MACRO shallow(t) AS
    strlen(t) < 1024 OR strlen(t) - strlen(replace(replace(t, '[', ''), '{', '')) < 512;

-- as_json(j): a JSON value, with a string that holds JSON (an export's `input`, `metadata`) read
-- as that JSON, as logformats.maybe_json does (it reads text that starts with { or [).
CREATE OR REPLACE TEMP MACRO as_json(j) AS
    CASE WHEN json_kind(j) = 'VARCHAR' AND left(json_extract_string(j, '$'), 1) IN ('{', '[') AND json_valid(json_extract_string(j, '$'))
              AND shallow(json_extract_string(j, '$'))
         THEN (json_extract_string(j, '$'))::JSON ELSE j END;

-- text_of(j): a JSON value as a text column: a string as it is, null as NULL, else its JSON text.
CREATE OR REPLACE TEMP MACRO text_of(j) AS
    CASE json_kind(j) WHEN 'VARCHAR' THEN json_extract_string(j, '$') WHEN 'NULL' THEN NULL ELSE j::VARCHAR END;

-- object_entries(j): the members of a JSON object as a list of (key, value JSON); NULL when j is
-- not an object or repeats a key.
CREATE OR REPLACE TEMP MACRO object_entries(j) AS
    map_entries(try_cast(j AS MAP(VARCHAR, JSON)));

-- object_text(entries): a JSON object's text from its members (a list of key and JSON value), in
-- their order; a quarter of the cost of to_json of a MAP.
CREATE OR REPLACE TEMP MACRO object_text(entries) AS
    ('{' || array_to_string(list_transform(entries, lambda e: to_json(e.key) || ':' || e.value), ',') || '}')::JSON;

-- member(key, j): `"key":j`, a member of a JSON object's text; NULL when j is missing or null.
CREATE OR REPLACE TEMP MACRO member(member_key, member_value) AS
    CASE WHEN NOT absent(member_value) THEN to_json(member_key) || ':' || member_value END;

-- without_nulls(j): a JSON object without its members whose value is null (the parsers drop them
-- from metadata); the same object when it has none.
CREATE OR REPLACE TEMP MACRO without_nulls(j) AS
    CASE WHEN contains(j::VARCHAR, 'null')
         THEN object_text(list_filter(object_entries(j), lambda e: e.value::VARCHAR <> 'null'))
         ELSE j END;

-- roles_given(turns): a non-empty JSON array of objects, each with a role that is a non-empty
-- string. (json_transform reads an element of another type as an object of nulls.)
CREATE OR REPLACE TEMP MACRO roles_given(turns) AS
    turns::VARCHAR <> '[]'
    AND all_of(list_transform(try(json_transform(turns, '[{"role": "JSON"}]')),
                              lambda m: coalesce(json_kind(m.role) = 'VARCHAR' AND m.role::VARCHAR <> '""', false)));

-- chat_turns(turns): chat_candidate's turns when each is an object with a role that is a non-empty
-- string (roles_given), else NULL. Give it a column: DuckDB cannot expand a macro with a lambda
-- whose argument is an expression on another macro's parameter.
CREATE OR REPLACE TEMP MACRO chat_turns(turns) AS CASE WHEN roles_given(turns) THEN turns END;

-- chat_candidate(j): the chat messages a value holds as logformats.chat_messages reads them: a
-- list, the list under `messages` of an object (as some integrations log them), one message
-- object, or a bare string as one user turn. NULL for anything else, which the Python parser reads.
CREATE OR REPLACE TEMP MACRO chat_candidate(j) AS
    CASE json_kind(j)
      WHEN 'ARRAY' THEN j
      WHEN 'OBJECT' THEN
        CASE WHEN json_kind(json_extract(j, '$.messages')) = 'ARRAY' THEN json_extract(j, '$.messages')
             WHEN (json_extract(j, '$.role')) IS NOT NULL THEN ('[' || j::VARCHAR || ']')::JSON END
      WHEN 'VARCHAR' THEN
        CASE WHEN left(json_extract_string(j, '$'), 1) NOT IN ('{', '[') AND regexp_matches(json_extract_string(j, '$'), '[!-~]')
             THEN json_array(json_object('role', 'user', 'content', json_extract_string(j, '$'))) END END;

-- derived_prompt_version(messages): logformats.derived_prompt_version, a stand-in for a missing
-- prompt_version: a hash of the system prompt.
CREATE OR REPLACE TEMP MACRO derived_prompt_version(messages) AS
    'sys:' || left(sha256(array_to_string(list_transform(
        list_filter(json_extract(messages, '$[*]'), lambda m: json_extract_string(m, '$.role') = 'system'),
        lambda m: coalesce(json_extract_string(m, '$.content'), '')), chr(10))), 10);

-- sampling_params(j): (give it a column: it names j often) logformats.sampling_params of an object: without the request-only keys and
-- null values, a string of digits as the number it is; NULL (the Python parser reads it) for a
-- string that may be another number, '{}' for a value that is not an object. The usual parameters
-- (a flat object of numbers and short strings, none to drop) are rewritten as text, at a tenth of
-- the cost of taking the object apart (params_of).
CREATE OR REPLACE TEMP MACRO sampling_params(j) AS
    CASE WHEN json_kind(j) <> 'OBJECT' THEN '{}'::JSON
         WHEN flat_object(j::VARCHAR) AND NOT contains(j::VARCHAR, 'null')
              AND NOT regexp_matches(j::VARCHAR, '"(messages|model|stream|stream_options|input|prompt|system|metadata|user|tools|tool_choice|functions)":')
           THEN CASE WHEN NOT regexp_matches(regexp_replace(j::VARCHAR, ':"0*([0-9]{1,15})"([,}])', ':\1\2', 'g'),
                                             ':"[^"]*[0-9]')
                     THEN regexp_replace(j::VARCHAR, ':"0*([0-9]{1,15})"([,}])', ':\1\2', 'g')::JSON END
         ELSE params_of(object_entries(j)) END;

-- flat_object(t): JSON object text whose values are numbers, literals or strings without escapes
-- (no nested objects or arrays), and whose keys have no escapes.
CREATE OR REPLACE TEMP MACRO flat_object(t) AS
    regexp_full_match(t, '\{("[^"\\]*":("[^"\\]*"|[^",{}\[\]]*),)*("[^"\\]*":("[^"\\]*"|[^",{}\[\]]*))?\}');

-- params_of(entries): sampling_params of any object, from its members.
CREATE OR REPLACE TEMP MACRO params_of(entries) AS
    CASE WHEN all_of(list_transform(entries, lambda e:
                  json_kind(e.value) <> 'VARCHAR' OR NOT regexp_matches(json_extract_string(e.value, '$'), '[0-9]')
                  OR regexp_full_match(json_extract_string(e.value, '$'), '[0-9]{1,15}')))
         THEN to_json(map_from_entries(list_transform(
                  list_filter(entries, lambda e:
                      e.value::VARCHAR <> 'null'
                      AND e.key NOT IN ('messages', 'model', 'stream', 'stream_options', 'input', 'prompt',
                                        'system', 'metadata', 'user', 'tools', 'tool_choice', 'functions')),
                  lambda e: {'key': e.key,
                             'value': CASE WHEN json_kind(e.value) = 'VARCHAR'
                                                AND regexp_full_match(json_extract_string(e.value, '$'), '[0-9]{1,15}')
                                           THEN (json_extract_string(e.value, '$'))::BIGINT::VARCHAR::JSON
                                           ELSE e.value END})))::JSON END;

-- over_a_limit(max_chars, ...): a text column over the field size limit, or a JSON column (messages,
-- params, metadata) not well within it (roomy): the Python parser then says which, and by how much.
CREATE OR REPLACE TEMP MACRO over_a_limit(max_chars, request_id, model_id, prompt_version, output_text,
                                          error, messages, params, metadata) AS
    too_long(request_id, max_chars) OR too_long(model_id, max_chars) OR too_long(prompt_version, max_chars)
    OR too_long(output_text, max_chars) OR too_long(error, max_chars)
    OR NOT (roomy(messages::VARCHAR, max_chars) AND roomy(params::VARCHAR, max_chars)
            AND roomy(metadata::VARCHAR, max_chars));

-- json_lines(path, max_line, fast, fields): a JSON Lines file (gzip or zstd or plain) as rows of
-- (line, r): r the top-level fields named in `fields` (a struct of name: 'JSON'), each as JSON
-- text. Two readers:
-- - fast = true: DuckDB's `read_json`. It says nothing about a line it cannot read (bad JSON, not
--   an object, invalid UTF-8): such a line becomes a row of NULLs. `line` is NULL.
-- - fast = false: each line as text (`read_csv` with no delimiter) parsed by `json_transform`; r
--   is NULL for a line that is not JSON, and `line` is the text.
-- The SQL readers store the good lines with the first and find the others with the second.
CREATE OR REPLACE TEMP MACRO json_lines(path, max_line, fast, fields) AS TABLE
    SELECT line, try(json_transform(line, to_json(fields))) AS r
    FROM read_csv(path, columns = {'line': 'VARCHAR'}, delim = E'\x01', quote = '', escape = '',
                  header = false, auto_detect = false, strict_mode = false, new_line = '\n',
                  ignore_errors = true, max_line_size = max_line, buffer_size = max_line)
    WHERE NOT fast AND regexp_matches(line, '[^ \t\n\v\f\r]')  -- not blank, as read_json sees it
    UNION ALL
    SELECT NULL AS line, j AS r
    FROM read_json(path, format = 'newline_delimited', ignore_errors = true,
                   maximum_object_size = max_line // 2, columns = fields) AS j
    WHERE fast;
