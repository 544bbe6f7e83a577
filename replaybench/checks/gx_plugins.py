"""replaybench's extensions of Great Expectations, named in `gx/great_expectations.yml` by
`module_name`, so that any Data Context opened on the project (replaybench's or a person's own)
loads them:

- `RedactedValidationResultsStore`: validation results are written without the answers'
  personal data (every string in an expectation's result is redacted, as the report redacts what
  it quotes) and without the per-row lists (`unexpected_list`, `unexpected_index_list`: the
  `checks` table holds the per-row outcome); GX's partial lists (up to 20 examples per
  expectation) stay, redacted, for Data Docs to show.
- `UpdateRunDataDocsAction`: GX's `UpdateDataDocsAction`, building the pages of all of a
  Checkpoint's results at once: GX's own action rebuilds the site index once per validation,
  and the index reads every stored result it lists.
- `OfflinePageView`, `OfflineIndexPageView`: Data Docs pages that open without a network, with
  the answers' text escaped (GX writes a data value into the page as HTML). GX's
  pages load Bootstrap, jQuery, bootstrap-table, Vega and Font Awesome from CDNs, draw the index's
  tables with JavaScript, and fetch GX's logo from S3 with the Data Context's id in the URL.
  These views render the same content as static HTML: tables are written out, scripts and remote
  stylesheets are dropped, the logo comes from the site's own `static/` folder, and a small
  stylesheet (`docs_templates/offline.css`) stands in for Bootstrap's layout.

Importing this module imports GX (seconds): only GX loads it, when a context is opened. It
loads the check kinds too (`replaybench.checks.kinds`), so that a project opened by hand knows the custom
expectations its suites use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from great_expectations.checkpoint.actions import UpdateDataDocsAction
from great_expectations.data_context.store import ValidationResultsStore
from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache, ChoiceLoader, FileSystemLoader, pass_context
from markupsafe import escape

from replaybench.checks.gx_project import PER_ROW_LISTS as _PER_ROW_LISTS
from replaybench.checks.gx_project import without_row_lists
from replaybench.checks.kinds import load_kinds

load_kinds()  # registers the custom expectations with GX

TEMPLATES = Path(__file__).with_name("docs_templates")


class RedactedValidationResultsStore(ValidationResultsStore):
    """A ValidationResultsStore that writes results redacted and without per-row lists."""

    redactor: Any = None
    """A `replaybench.redact.Redactor`; the built-in detectors when none was set."""

    def serialize(self, value):
        if self.cloud_mode:
            return super().serialize(value)
        # GX's to_json_dict deep-copies the whole result: drop the per-row lists first (a
        # shallow copy, so the caller's result keeps them)
        doc = _without_row_lists(value).to_json_dict()
        parts = []
        for result in doc.get("results") or []:
            outcome = result.get("result") or {}
            for key in _PER_ROW_LISTS:
                outcome.pop(key, None)
            parts.append({"result": outcome, "exception_info": result.get("exception_info")})
        if parts:
            redacted, _ = self._redactor().redact_messages(parts)
            for result, part in zip(doc["results"], redacted, strict=True):
                result["result"], result["exception_info"] = part["result"], part["exception_info"]
        return self._expectationSuiteValidationResultSchema.dumps(doc, indent=2, sort_keys=True)

    def _redactor(self):
        if self.redactor is None:
            from replaybench.redact import Redactor

            self.redactor = Redactor()
        return self.redactor


def _without_row_lists(value):
    """A suite result whose expectations' results lack the per-row lists, sharing the rest."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )

    return ExpectationSuiteValidationResult(
        success=value.success, results=[without_row_lists(r) for r in value.results],
        suite_name=value.suite_name, suite_parameters=value.suite_parameters,
        statistics=value.statistics, meta=value.meta, batch_id=value.batch_id,
        result_url=value.result_url, id=value.id)


class UpdateRunDataDocsAction(UpdateDataDocsAction):
    """Update Data Docs with all of a Checkpoint run's results in one build (one index)."""

    type: Literal["update_run_data_docs"] = "update_run_data_docs"  # type: ignore[assignment]

    def run(self, checkpoint_result, action_context=None) -> dict:
        identifiers: list = []
        for key, result in checkpoint_result.run_results.items():
            identifiers += [key, ExpectationSuiteIdentifier(name=result.suite_name)]
        self._build_data_docs(site_names=self.site_names, resource_identifiers=identifiers)
        return {
            key: {site["site_name"]: site["site_url"]
                  for site in self._get_docs_sites_urls(site_names=self.site_names,
                                                        resource_identifier=key)}
            for key in checkpoint_result.run_results
        }


# --- Data Docs that open offline --------------------------------------------------------------

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref=[\"']?(?:https?:)?//[^>]*>", re.IGNORECASE)
_REMOTE_IMG = re.compile(r"<img\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>", re.IGNORECASE)


def offline_html(html: str) -> str:
    """A page with no scripts and nothing fetched from elsewhere, plus the offline stylesheet."""
    html = _SCRIPT.sub("", html)
    html = _REMOTE_LINK.sub("", html)
    html = _REMOTE_IMG.sub("", html)
    if "</head>" in html:
        css = (TEMPLATES / "offline.css").read_text(encoding="utf-8")
        html = html.replace("</head>", f"<style>{css}</style>\n</head>", 1)
    return html


class _CompiledTemplates(BytecodeCache):
    """Templates compiled once per process: GX makes a Jinja environment for each view of each
    build, and compiling its templates anew was most of a build's time."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


class _Offline:
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # replaybench's templates first: GX's own only where these do not replace them
        self.env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), self.env.loader])
        self.env.bytecode_cache = _COMPILED

    def render(self, document, template=None, **kwargs):
        return offline_html(super().render(document, template, **kwargs))


class OfflinePageView(_Offline, DefaultJinjaPageView):
    """GX's page view (expectation suites, validation results), static and offline, with the
    data's own values escaped: GX writes a value shown as it is (an unexpected value, a sample)
    into the page unescaped, so an answer holding HTML would become the page's HTML."""

    @pass_context
    def render_content_block(self, jinja_context, content_block, *args, **kwargs):
        # GX's own content comes as content blocks (dicts, rendered objects); bare strings, and
        # the strings of a list, are values from the data
        if isinstance(content_block, str):
            return escape(content_block)
        if isinstance(content_block, list):
            content_block = [escape(c) if isinstance(c, str) else c for c in content_block]
        return super().render_content_block(jinja_context, content_block, *args, **kwargs)


class OfflineIndexPageView(_Offline, DefaultJinjaIndexPageView):
    """GX's site index, its tables written out as HTML, static and offline."""
