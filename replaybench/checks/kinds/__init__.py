"""Check kinds: what each kind of expectation is, and how it explains a failing row.

A kind is a `CheckKind` subclass naming the GX expectation types it answers for; defining it
registers it. Each module of this package is a kind (GX's own ones grouped by family, and
replaybench's custom expectations, each with its metric, its Data Docs sentence and its
explanation), found by `load_kinds`: a new kind is one new module here, plus its test.

An explanation says what was expected and what was seen ("not in {billing, ...}: 'Billing'");
a type no kind names reads "failed <type>: column=value, ...".
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any, ClassVar

from replaybench.checks.reasons import REASON_MAX, no_value, show, truncate
from replaybench.checks.suites import CheckSpec

_KINDS: dict[str, CheckKind] = {}


class CheckKind:
    """A kind of check; subclasses set `types` and override what differs from the defaults."""

    types: ClassVar[tuple[str, ...]] = ()
    """The GX expectation types this kind answers for."""
    judges_nulls: ClassVar[bool] = False
    """GX evaluates this kind over nulls too, so a null is not failed for it beforehand."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for etype in cls.types:
            _KINDS[etype] = cls()

    def explain(self, check: CheckSpec, values: list[Any]) -> str:
        """What was expected and what was seen, for a row that failed `check` with these values."""
        shown = ", ".join(f"{c}={show(v)}" for c, v in zip(check.columns, values, strict=True))
        return f"failed {check.type}: {shown}"

    def vet(self, check: CheckSpec) -> None:
        """Raise ValueError saying what is wrong with a declared check that GX accepted."""


@functools.cache
def load_kinds() -> dict[str, CheckKind]:
    """Import every kind module (registering its kind, and a custom expectation with GX);
    {type: kind}."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):  # _-modules are helpers, not kinds
            importlib.import_module(f"{__name__}.{module.name}")
    return _KINDS


def kind_of(etype: str) -> CheckKind:
    """The kind of an expectation type (the generic one when no module names it)."""
    return load_kinds().get(etype) or _GENERIC


def reason(check: CheckSpec, values: list[Any]) -> str:
    """What was expected and what was seen, briefly, for a row that failed `check`."""
    missing = [c for c, v in zip(check.columns, values, strict=True) if v is None]
    if missing and check.type.startswith("expect_column_pair"):
        return truncate(no_value(missing), REASON_MAX)
    return truncate(kind_of(check.type).explain(check, values), REASON_MAX)


_GENERIC = CheckKind()
