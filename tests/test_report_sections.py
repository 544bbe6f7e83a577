"""The report's sections, a registry: each registered data function serves a partial that exists,
and the partials come in file-name order per folder. (A new partial on a real page:
tests/test_report.py.)"""

from __future__ import annotations

from replaybench.report import sections
from replaybench.report.render import environment


def test_every_registered_function_serves_one_partial():
    names = environment().list_templates(extensions=["j2"])
    found = [sections.section_name(p) for folder in (sections.PAGE, sections.PER_PROMPT_VERSION)
             for p in sections.partials(names, folder)]
    assert len(found) == len(set(found))
    assert set(sections.NAMES) <= set(found)
    assert len(sections.NAMES) == len(sections.DATA)


def test_partials_come_in_file_name_order_per_folder():
    names = ["report.html.j2", "sections/20-b.html.j2", "sections/10-a.html.j2",
             "sections/prompt_version/10-x.html.j2", "email.html.j2"]
    assert sections.partials(names, sections.PAGE) == ["sections/10-a.html.j2",
                                                       "sections/20-b.html.j2"]
    assert sections.partials(names, sections.PER_PROMPT_VERSION) == [
        "sections/prompt_version/10-x.html.j2"]
    assert sections.section_name("sections/prompt_version/40-charts.html.j2") == "charts"
