"""The redact step: before any sampled request leaves the machine, take the customer's personal
data out of its whole body.

After sampling, if any candidate needs redaction (`Settings.needs_redaction`: by default, every
endpoint the config does not mark `trusted: true`), each sampled request's body — messages and
parameters — is redacted once and stored in `redacted_requests` with the number of values
replaced by kind; the replay sends those to the candidates that need them
(`pending_replays.sql`, `$redacted`). `redaction_runs` records, per run, whether redaction was on
and for whom, which the report shows with the audit (`audit.redaction_line`).

Idempotent: a resumed run redacts only the requests that have no redacted copy yet.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from replaybench.config import Settings
from replaybench.redact.audit import account
from replaybench.redact.redactor import Redactor
from replaybench.runs import Run
from replaybench.warehouse import Warehouse

log = logging.getLogger("replaybench.redact")


@dataclass
class Redaction:
    """What the redact step did for one run."""

    mode: str                           # redact.enabled: auto, always or never
    candidates: list[str]               # sent redacted requests
    requests: int = 0                   # redacted by this call (0 when already done, or off)
    counts: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        """This call's redaction in one line (`audit.account`)."""
        return account(self.mode, self.candidates, self.requests, self.counts)


def redact_run(wh: Warehouse, settings: Settings, run: Run) -> Redaction:
    """Store the redacted messages of the run's sampled requests (if any candidate needs them)."""
    targets = [c.name for c in settings.candidates if settings.needs_redaction(c)]
    wh.execute(
        "INSERT OR REPLACE INTO redaction_runs (run_id, mode, candidates, patterns) "
        "VALUES ($r, $mode, $candidates, $patterns)",
        {"r": run.run_id, "mode": settings.redact.enabled, "candidates": json.dumps(targets),
         "patterns": json.dumps([p.name for p in settings.redact.patterns])},
    )
    done = Redaction(settings.redact.enabled, targets)
    if not targets:
        return done
    redactor = Redactor(settings.redact.patterns)
    rows = []
    for request_id, messages, params in wh.frame("unredacted_samples",
                                                 run_id=run.run_id).iter_rows():
        try:
            body = json.loads(messages), json.loads(params) if params else {}
        except RecursionError:  # nested past what Python can read: never sent to these candidates
            log.warning("request %s is nested too deep to redact: not sent to %s", request_id,
                        ", ".join(targets))
            continue
        redacted, counts = redact_request(redactor, *body)
        rows.append((request_id, json.dumps(redacted["messages"], ensure_ascii=False),
                     json.dumps(redacted["params"], ensure_ascii=False), json.dumps(counts)))
        done.counts.update(counts)
    if rows:
        frame = pl.DataFrame(rows, schema=["request_id", "messages", "params", "counts"],
                             orient="row")
        # one row a request (no key index: the run's only writer merges), replacing a copy from
        # before parameters were redacted
        with wh.registered("_redacted", frame.with_columns(run_id=pl.lit(run.run_id))):
            wh.execute("MERGE INTO redacted_requests AS held USING (SELECT * FROM _redacted "
                       "QUALIFY row_number() OVER (PARTITION BY request_id) = 1) AS fresh "
                       "ON held.run_id = fresh.run_id AND held.request_id = fresh.request_id "
                       "WHEN MATCHED THEN UPDATE SET messages = fresh.messages, "
                       "params = fresh.params, counts = fresh.counts "
                       "WHEN NOT MATCHED THEN INSERT BY NAME")
    done.requests = len(rows)
    return done


def redact_request(redactor: Redactor, messages: list, params: dict
                   ) -> tuple[dict[str, object], dict[str, int]]:
    """The whole body that leaves: messages and every parameter logged with them (`user`,
    `metadata`, tools, ...), redacted with one set of placeholders (the same address is the same
    <EMAIL_n> in both), and the count of values replaced by kind."""
    redacted, counts = redactor.redact_messages([*messages, params])
    return {"messages": redacted[:-1], "params": redacted[-1]}, counts
