"""Checks: every answer of a night against its prompt_version's expectation suite.

- `suites`: the YAML suites (`data/suites/*.yaml`, GX's own shape), validated with pydantic and GX.
- `derive`: the columns suites refer to (`answer`, `answer_number`, `answer_norm`, ...).
- `gx_project`: the file Great Expectations project (`gx/`): suites generated from the YAML,
  a Checkpoint per run, Data Docs; `gx_plugins`: its store, action and offline page views.
- `run`: the checks as rows of the `checks` table (`validate_run`: a night's, stored), chunk by
  chunk (`chunk`; `outcomes`: each row's outcome from GX's result; `rows`: the rows' shape);
  `answers`: a night's answers read from the warehouse in chunks; `judged`: the LLM-as-judge
  check.
- `kinds`: the check kinds, one module each (GX's own, by family, and the custom expectations:
  tolerance, similarity, refusal), each saying how it explains a failure; `reasons`: the
  pieces those explanations share. A new kind is one new module in `kinds/`.
- `docs`: where the Data Docs pages of a run are, for the report to link to.

Great Expectations is imported lazily, inside the functions that run it: importing it costs
seconds.
"""
