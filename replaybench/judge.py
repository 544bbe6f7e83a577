"""LLM-as-judge: score answers with an OpenAI-compatible chat endpoint (`settings.judge`).

    score_items(items, judge, api_key=None) -> [(score | None, reason), ...]

Each item (question, answer, reference, rubric) becomes one chat request: the judge system prompt
(it carries `JUDGE_MARKER`, which is how the local fleet recognises a judge request) and a user
message with the rubric, question, reference and answer in tagged sections (`judge_message`). The
judge must reply with a JSON object `{"score": 1-5, "why": "..."}`; `parse_verdict` finds it even
inside code fences, a `<think>` block or surrounding prose.

A failure never yields a score: a transport error (after one retry), an HTTP error, an answer with
no JSON object or no score between 1 and 5 gives `(None, reason)`; the caller turns that into a
failed check with the reason. The function is synchronous: it runs its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from replaybench.config import Judge
from replaybench.errors import register_secret, scrub

JUDGE_MARKER = "[replaybench-judge/v1]"
JUDGE_SYSTEM_PROMPT = (
    f"{JUDGE_MARKER} You are a strict grader of answers given by an AI assistant. You get a "
    "rubric, the user's question, a reference answer when one exists, and the assistant's answer. "
    "Grade the answer against the rubric (and the reference, if given) on a scale from 1 (wrong or "
    "useless) to 5 (fully correct and sound). Reply with only a JSON object, no other text: "
    '{"score": <integer 1-5>, "why": "<one short sentence>"}'
)
SECTIONS = ("rubric", "question", "reference", "answer")
_REASON_MAX = 200


@dataclass(frozen=True)
class JudgeItem:
    """One answer to score."""

    question: str
    answer: str
    reference: str | None
    rubric: str


class JudgeError(Exception):
    """The judge's reply could not be read as a verdict."""


def judge_message(item: JudgeItem) -> str:
    """The user message of a judge request: tagged sections, the answer last."""
    reference = item.reference if item.reference and item.reference.strip() else "(none)"
    values = {"rubric": item.rubric, "question": item.question, "reference": reference,
              "answer": item.answer}
    return "\n".join(f"<{name}>\n{values[name]}\n</{name}>" for name in SECTIONS)


def split_judge_message(text: str) -> dict[str, str]:
    """The sections of a `judge_message` (what the local fleet reads back); missing ones are ''.

    The answer is the last section and may contain anything, so it runs to the final `</answer>`.
    """
    out: dict[str, str] = {}
    for name in SECTIONS:
        start_tag, end_tag = f"<{name}>\n", f"\n</{name}>"
        start = text.find(start_tag)
        if start < 0:
            out[name] = ""
            continue
        start += len(start_tag)
        end = text.rfind(end_tag) if name == "answer" else text.find(end_tag, start)
        out[name] = text[start:end] if end >= start else text[start:]
    return out


def is_judge_request(messages: Sequence[dict[str, Any]]) -> bool:
    """True when a request's system prompt is the judge prompt (recognised by its marker)."""
    for message in messages:
        if message.get("role") in ("system", "developer"):
            content = message.get("content")
            return isinstance(content, str) and content.lstrip().startswith(JUDGE_MARKER)
    return False


_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def parse_verdict(text: str) -> tuple[int, str]:
    """(score, why) from the judge's reply: the first JSON object with a `score` between 1 and 5
    (an integer, or a number/string that is one); raise JudgeError otherwise."""
    cleaned = _THINK_RE.sub("", text or "")
    decoder = json.JSONDecoder()
    found_object = False
    for match in re.finditer(r"\{", cleaned):
        try:
            value, _ = decoder.raw_decode(cleaned, match.start())
        except ValueError:
            continue
        if not isinstance(value, dict):
            continue
        found_object = True
        score = _score(value.get("score"))
        if score is None:
            continue
        why = value.get("why", value.get("reason", ""))
        return score, " ".join(str(why).split())
    shown = _truncate(" ".join((text or "").split()), 80) or "(empty)"
    if found_object:
        raise JudgeError(f"judge answer has no score between 1 and 5: {shown}")
    raise JudgeError(f"judge answer is not JSON: {shown}")


def _score(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and float(value).is_integer() and 1 <= value <= 5:
        return int(value)
    return None


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def score_items(
    items: Sequence[JudgeItem],
    judge: Judge,
    api_key: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[tuple[int | None, str]]:
    """Score every item with the judge endpoint, `judge.max_concurrency` at a time; one
    (score, reason) per item in order. The score is None when the judge failed; the reason says
    why (or, with a score, is the judge's own explanation)."""
    if not items:
        return []

    def run() -> list[tuple[int | None, str]]:
        return asyncio.run(_score_all(list(items), judge, api_key, transport))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    # Called from inside an event loop: run ours on a thread of its own.
    result: list[list[tuple[int | None, str]]] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(run())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="replaybench-judge")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


async def _score_all(
    items: list[JudgeItem], judge: Judge, api_key: str | None,
    transport: httpx.AsyncBaseTransport | None,
) -> list[tuple[int | None, str]]:
    register_secret(api_key)  # an endpoint that echoes the key must not get it into a reason
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=judge.max_concurrency)
    semaphore = asyncio.Semaphore(judge.max_concurrency)
    url = judge.base_url.rstrip("/") + "/chat/completions"
    async with httpx.AsyncClient(timeout=judge.timeout_s, headers=headers, limits=limits,
                                 transport=transport) as client:

        async def one(item: JudgeItem) -> tuple[int | None, str]:
            async with semaphore:
                return await _score_one(client, url, judge.model, item)

        return list(await asyncio.gather(*(one(item) for item in items)))


async def _score_one(client: httpx.AsyncClient, url: str, model: str, item: JudgeItem
                     ) -> tuple[int | None, str]:
    body = {
        "model": model,
        "temperature": 0,
        "messages": [{"role": "system", "content": JUDGE_SYSTEM_PROMPT},
                     {"role": "user", "content": judge_message(item)}],
    }
    response: httpx.Response | None = None
    for attempt in (1, 2):
        try:
            response = await client.post(url, json=body)
            break
        except httpx.TransportError as exc:
            if attempt == 2:
                detail = str(exc) or type(exc).__name__
                return None, _truncate(scrub(f"judge unreachable: {detail}"), _REASON_MAX)
    assert response is not None
    if response.status_code >= 400:
        text = " ".join(response.text.split())
        return None, _truncate(scrub(f"judge HTTP {response.status_code}: {text}"), _REASON_MAX)
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        shown = _truncate(scrub(" ".join(response.text.split())), 80)
        return None, _truncate(f"judge reply is not a chat completion: {shown}", _REASON_MAX)
    try:
        score, why = parse_verdict(content if isinstance(content, str) else "")
    except JudgeError as exc:
        return None, _truncate(scrub(str(exc)), _REASON_MAX)
    return score, _truncate(scrub(why or "(no explanation)"), _REASON_MAX)
