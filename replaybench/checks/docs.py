"""Where a configuration's GX project and Data Docs live, and each prompt_version's Data Docs page
for a run, for the report to link to. Reads folders only: no Great Expectations import.

- The GX project: `gx/` beside the config file (`gx.project` in the config, when it has one).
- The Data Docs site: `<reports_dir>/data-docs/` (`gx.docs_dir`), beside the reports, so that a
  report links to its pages with relative paths and the folder can be published as a whole.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from urllib.parse import quote

from replaybench.checks.suites import REFERENCE_SUITE

DOCS_FOLDER = "data-docs"


def project_dir(settings) -> Path:
    """The GX project folder (its `great_expectations.yml`, `expectations/`, ...): `gx.project`,
    relative to the config file's folder."""
    return Path(settings.gx.project)


def docs_dir(settings) -> Path:
    """The folder of the Data Docs site: `gx.docs_dir`, by default `<reports_dir>/data-docs`."""
    return Path(settings.gx.docs_dir or Path(settings.reports_dir) / DOCS_FOLDER)


def data_docs_pages(settings, run_id: str) -> dict[str, str]:
    """{prompt_version: its Data Docs page for the run}, each a URL path relative to
    `reports_dir` (where `<run_id>.html` is written); only prompt_versions that have a suite and
    answers in the run have a page. A run validated twice links to its latest validation."""
    base = docs_dir(settings) / "validations"
    pages: dict[str, str] = {}
    # validations/<suite name, split at dots>/<run name>/<run time>/<batch id>.html; run times
    # sort as they happened, so the latest of a suite comes last
    for page in sorted(base.glob(f"**/{glob.escape(run_id)}/*/*.html")):
        parts = page.relative_to(base).parts
        name = ".".join(parts[:-3])
        if name and name != REFERENCE_SUITE:
            pages[name] = _href(page, Path(settings.reports_dir))
    return pages


def data_docs_index(settings) -> str | None:
    """The Data Docs site's index page relative to `reports_dir`, None before the first build."""
    index = docs_dir(settings) / "index.html"
    return _href(index, Path(settings.reports_dir)) if index.is_file() else None


def _href(path: Path, start: Path) -> str:
    return quote(Path(os.path.relpath(path, start)).as_posix())
