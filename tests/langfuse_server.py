"""A Langfuse-shaped HTTP server on loopback for the source tests.

It serves Langfuse's public observation listings from a list of observation dicts (in the names
of the v1 API and the UI export, as tests/fixtures/formats/langfuse_observations.json):
- `GET /api/public/v2/observations`: newest first, keyset pages behind an opaque base64
  `meta.cursor`, only the field groups asked for (`fields`, default core and basic), input and
  output as raw text, the model as `providedModelName`, the cost as `totalCost`, and the matched
  model's unit prices as strings, as Langfuse's v2 does;
- `GET /api/public/observations` (legacy v1): `page`/`limit`, `meta.totalItems`/`totalPages`;
  `LangfuseServer(v2=False)` answers 404 on v2, as a self-hosted Langfuse before v4.
Both filter by `type`, `fromStartTime` (inclusive) and `toStartTime` (exclusive), require basic
auth with the server's keys (else 401), and can be told to fail requests (`fail`: a 429 with
Retry-After, a 500). Every request is kept in `requests`.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from replaybench.sim.server import ThreadedApp

V2_GROUPS: dict[str, list[tuple[str, str]]] = {  # group: [(v2 name, stored name)]
    "core": [(k, k) for k in ("id", "traceId", "startTime", "endTime", "projectId",
                              "parentObservationId", "type")],
    "basic": [(k, k) for k in ("name", "level", "statusMessage", "version", "environment",
                               "bookmarked", "public", "userId", "sessionId", "isRootObservation")],
    "time": [(k, k) for k in ("completionStartTime", "createdAt", "updatedAt")],
    "io": [("input", "input"), ("output", "output")],
    "metadata": [("metadata", "metadata")],
    "model": [("providedModelName", "model"), ("internalModelId", "modelId"),
              ("modelParameters", "modelParameters")],
    "usage": [("usageDetails", "usageDetails"), ("costDetails", "costDetails"),
              ("totalCost", "calculatedTotalCost"), ("usagePricingTierName", "usagePricingTierName")],
    "prompt": [(k, k) for k in ("promptId", "promptName", "promptVersion")],
    "metrics": [(k, k) for k in ("latency", "timeToFirstToken")],
}
UNIT_PRICE = "0.0000025"  # what v2 sends as totalPrice for a matched model: a price, not a cost


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    params: dict[str, str]
    status: int
    at: float  # time.monotonic() when it arrived


def _when(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _as_text(value: Any) -> Any:
    """v2 sends input and output as the text Langfuse stored: JSON for objects and lists."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def _v2(obs: dict[str, Any], groups: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group in ("core", *sorted(groups - {"core"})):
        for name, stored in V2_GROUPS.get(group, []):
            value = obs.get(stored)
            out[name] = _as_text(value) if group == "io" else value
    matched = "model" in groups and obs.get("model") is not None
    out |= {"modelId": obs.get("modelId") if "model" in groups else None,
            "inputPrice": UNIT_PRICE if matched else None, "outputPrice": UNIT_PRICE if matched else None,
            "totalPrice": UNIT_PRICE if matched else None}
    return out


class LangfuseServer(ThreadedApp):
    """The server on its own event loop in a background thread, on a free port of 127.0.0.1
    (`url` once entered)."""

    def __init__(self, observations: list[dict[str, Any]] | None = None, *,
                 public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test", v2: bool = True):
        self.observations = list(observations or [])
        self.keys = (public_key, secret_key)
        self.v2 = v2
        self.requests: list[Seen] = []
        self._faults: dict[int, tuple[int, str | None]] = {}
        self._lock = threading.Lock()
        super().__init__(web.Application(), name="langfuse-server")
        self.app.router.add_get("/api/public/v2/observations", self._list_v2)
        self.app.router.add_get("/api/public/observations", self._list_v1)

    # --- what the tests tell it ---------------------------------------------------------------

    def fail(self, status: int, on: tuple[int, ...] = (1,), retry_after: str | None = None) -> None:
        """Answer `status` to the `on`-th listing requests from now on (1 = the next one), with a
        Retry-After header when given."""
        with self._lock:
            served = len(self.requests)
            for n in on:
                self._faults[served + n] = (status, retry_after)

    def asked(self, path_end: str = "observations") -> list[Seen]:
        """The listing requests received, in order."""
        return [r for r in self.requests if r.path.endswith(path_end)]

    # --- the API ------------------------------------------------------------------------------

    def _check(self, request: web.Request) -> web.Response | None:
        """Auth, then any fault told for this request; None when it is to be answered."""
        with self._lock:
            number = len(self.requests) + 1
            fault = self._faults.pop(number, None)
        expected = "Basic " + base64.b64encode(":".join(self.keys).encode()).decode()
        if request.headers.get("Authorization") != expected:
            return self._keep(request, web.json_response(
                {"message": "Invalid credentials. Confirm that you've configured the correct host."},
                status=401))
        if fault is not None:
            status, wait = fault
            headers = {"Retry-After": wait} if wait is not None else {}
            return self._keep(request, web.json_response(
                {"message": "rate limit exceeded" if status == 429 else "Internal Server Error"},
                status=status, headers=headers))
        return None

    def _keep(self, request: web.Request, response: web.Response) -> web.Response:
        with self._lock:
            self.requests.append(Seen(request.path, dict(request.query), response.status, time.monotonic()))
        return response

    def _selected(self, query: Any) -> list[dict[str, Any]]:
        """The observations the filters select, newest first (ties by id, descending)."""
        lo = _when(query["fromStartTime"]) if "fromStartTime" in query else None
        hi = _when(query["toStartTime"]) if "toStartTime" in query else None
        kind = query.get("type")
        with self._lock:
            found = [o for o in self.observations
                     if (kind is None or o.get("type") == kind)
                     and (lo is None or _when(o["startTime"]) >= lo)
                     and (hi is None or _when(o["startTime"]) < hi)]
        return sorted(found, key=lambda o: (_when(o["startTime"]), o["id"]), reverse=True)

    async def _list_v2(self, request: web.Request) -> web.Response:
        if not self.v2:
            return self._keep(request, web.json_response(
                {"message": "The observations v2 API is only available in a Langfuse v4 write mode."},
                status=404))
        if (refused := self._check(request)) is not None:
            return refused
        query = request.query
        limit = int(query.get("limit", 50))
        if not 1 <= limit <= 1000:
            return self._keep(request, web.json_response({"message": "limit: 1 to 1000"}, status=400))
        found = self._selected(query)
        if "cursor" in query:
            last = json.loads(base64.b64decode(query["cursor"]))
            after = (_when(last["lastStartTimeTo"]), last["lastId"])
            found = [o for o in found if (_when(o["startTime"]), o["id"]) < after]
        page = found[:limit]
        groups = set((query.get("fields") or "core,basic").split(",")) | {"core"}
        meta: dict[str, Any] = {}
        if len(found) > limit:
            cursor = {"lastStartTimeTo": page[-1]["startTime"], "lastTraceId": page[-1].get("traceId"),
                      "lastId": page[-1]["id"]}
            meta["cursor"] = base64.b64encode(json.dumps(cursor).encode()).decode()
        return self._keep(request, web.json_response({"data": [_v2(o, groups) for o in page],
                                                      "meta": meta}))

    async def _list_v1(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        query = request.query
        page, limit = int(query.get("page", 1)), int(query.get("limit", 50))
        found = self._selected(query)
        data = found[(page - 1) * limit: page * limit]
        return self._keep(request, web.json_response({"data": data, "meta": {
            "page": page, "limit": limit, "totalItems": len(found),
            "totalPages": math.ceil(len(found) / limit)}}))
