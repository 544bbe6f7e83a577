"""Prices: a dated table in `data/prices.yaml`, overridable per candidate in the config."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from replaybench.config import Candidate, Price, Settings
from replaybench.errors import ConfigError


class _Entry(Price):
    effective_from: date


class _Table(BaseModel):
    version: str
    models: dict[str, list[_Entry]]


@dataclass(frozen=True)
class Costing:
    """A price and where it came from (stored with every replay as `price_version`)."""

    price: Price
    version: str

    def cost(self, input_tokens: int | None, cached_tokens: int | None,
             output_tokens: int | None) -> float | None:
        """USD for one call; cached input at the cached price where the model has one."""
        if input_tokens is None or output_tokens is None:
            return None
        cached = min(cached_tokens or 0, input_tokens)
        cached_price = self.price.cached_input if self.price.cached_input is not None \
            else self.price.input
        usd = ((input_tokens - cached) * self.price.input + cached * cached_price
               + output_tokens * self.price.output)
        return usd / 1_000_000


class PriceTable:
    def __init__(self, table: _Table, source: Path):
        self.table = table
        self.source = source

    @classmethod
    def for_settings(cls, settings: Settings) -> PriceTable:
        """The configured price table; when every candidate carries its own `price:` the file is
        not needed, and a missing one is an empty table (a present one still gives its version)."""
        if all(c.price is not None for c in settings.candidates) and not Path(settings.prices).exists():
            return cls(_Table(version="none", models={}), Path(settings.prices))
        return cls.load(settings.prices)

    @classmethod
    def load(cls, path: Path) -> PriceTable:
        try:
            raw = yaml.safe_load(Path(path).read_text())
            return cls(_Table.model_validate(raw), Path(path))
        except FileNotFoundError:
            raise ConfigError(f"price table {path} not found (set `prices:` in the config)") from None
        except (yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"price table {path} is invalid: {str(exc).splitlines()[0]}") from None

    def costing(self, candidate: Candidate, day: date, model: str | None = None) -> Costing | None:
        """The candidate's price on `day`: its config override, else the table's entry (for
        `model`, when the candidate replays each request with its logged model)."""
        if candidate.price is not None:
            return Costing(candidate.price, f"config:{candidate.name}")
        keys = (model, model.split("/")[-1]) if model else \
            (candidate.name, candidate.model, candidate.model.split("/")[-1])
        for key in keys:
            entries = [e for e in self.table.models.get(key, []) if e.effective_from <= day]
            if entries:
                entry = max(entries, key=lambda e: e.effective_from)
                price = Price(input=entry.input, cached_input=entry.cached_input,
                              output=entry.output)
                return Costing(price, f"{self.source.name}@{self.table.version}:{key}"
                                      f"@{entry.effective_from}")
        return None


_price_tables: dict[tuple[Any, ...], PriceTable] = {}


def price_table(settings: Settings) -> PriceTable:
    """`PriceTable.for_settings`, read once per version of its file in this process (replay's
    plan and each send ask for it, and parsing the YAML costs more than a thousand answers'
    bookkeeping)."""
    path = Path(settings.prices)
    try:
        stat = path.stat()
    except OSError:
        return PriceTable.for_settings(settings)
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)  # a file that exists is read
    if key not in _price_tables:
        _price_tables[key] = PriceTable.for_settings(settings)
    return _price_tables[key]
