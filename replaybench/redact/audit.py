"""The one account of a run's redaction: whether it was on, for whom, and what it replaced, in
words ("redacted before replay: 2 e-mail addresses in 40 requests (sent redacted to: glm-5.2)"),
for the night's log and the report alike."""

from __future__ import annotations

import json
from collections.abc import Mapping

from replaybench.warehouse import Warehouse

# Kind -> how the report names it: one, many.
KIND_LABELS = {kind: (one, many) for kind, one, many in (
    line.split(" | ") for line in """\
EMAIL | e-mail address | e-mail addresses
PHONE | phone number | phone numbers
CARD | payment card number | payment card numbers
IBAN | IBAN | IBANs
IPV4 | IPv4 address | IPv4 addresses
IPV6 | IPv6 address | IPv6 addresses
SECRET | API key or token | API keys and tokens
AWS_SECRET | AWS secret access key | AWS secret access keys
SSN | US social security number | US social security numbers
PASSPORT | passport number | passport numbers
DATE_OF_BIRTH | date of birth | dates of birth
ADDRESS | street address | street addresses
PERSON | name | names
LOCATION | place name | place names""".splitlines())}  # LOCATION: only with the `ner` extra


def describe(counts: Mapping[str, int]) -> str:
    """'12 e-mail addresses, 1 phone number' in the order of KIND_LABELS, then configured kinds."""
    order = list(KIND_LABELS) + sorted(k for k in counts if k not in KIND_LABELS)
    parts = []
    for kind in order:
        n = counts.get(kind, 0)
        if n:
            one, many = KIND_LABELS.get(kind, (kind.lower(), kind.lower()))
            parts.append(f"{n:,} {one if n == 1 else many}")
    return ", ".join(parts)


def account(mode: str, candidates: list[str], requests: int, counts: Mapping[str, int]) -> str:
    """A redaction in one line: off and why, or on, for whom, and the values replaced in how many
    requests."""
    if not candidates:
        if mode == "never":
            return "off (redact.enabled: never) — requests were sent as logged"
        return "off — every endpoint is on this machine"
    to = ", ".join(candidates)
    if not any(counts.values()):
        return f"on, nothing found to redact in {requests:,} requests (sent redacted to: {to})"
    return f"redacted before replay: {describe(counts)} in {requests:,} requests (sent redacted to: {to})"


def redaction_line(wh: Warehouse, run_id: str) -> str:
    """The `account` of a stored run's redaction, from the warehouse (for the report)."""
    found = wh.execute("SELECT mode, candidates FROM redaction_runs WHERE run_id = $r",
                       {"r": run_id}).fetchone()
    if found is None:
        return "not recorded for this run"
    mode, candidates = found[0], json.loads(found[1])
    if not candidates:
        return account(mode, candidates, 0, {})
    audit = {kind: n for kind, n, _ in wh.query("redaction_audit", run_id=run_id).fetchall()}
    requests = wh.execute("SELECT count(*) FROM redacted_requests WHERE run_id = $r",
                          {"r": run_id}).fetchone()[0]
    return account(mode, candidates, requests, audit)


def redacted_candidates(wh: Warehouse, run_id: str) -> frozenset[str]:
    """The candidates this run sent redacted requests (none when not recorded)."""
    found = wh.execute("SELECT candidates FROM redaction_runs WHERE run_id = $r",
                       {"r": run_id}).fetchone()
    return frozenset(json.loads(found[0])) if found else frozenset()
