"""Maths word problems: a running count through a few steps; the last line is `Answer: N`."""

from __future__ import annotations

import random
import re
from typing import Any

from replaybench.sim.workloads.base import FIRST_NAMES, Messages, Workload, chat, register

SYSTEM_PROMPTS = {
    "tutor-math@v1": (
        "You are a patient maths tutor for secondary-school students. Solve the word problem "
        "step by step, one short line per step, using whole-number arithmetic.\n"
        "The last line of your answer must be exactly `Answer: N` where N is the final number."
    ),
}

MATH_ITEMS = ("apples", "stickers", "marbles", "cookies", "pencils", "books", "stamps", "cards")
PLACES = ("bakery", "school", "shop", "library", "club")
_MULT_WORDS = {"doubles": 2, "triples": 3, "quadruples": 4}
_RE_MATH = re.compile(
    r"(?P<start>has (?P<s>\d+) \w+\.)"
    r"|(?P<pack>packs (?P<pa>\d+) boxes with (?P<pb>\d+) \w+ in each)"
    r"|(?P<add>(?:buys|receives|finds) (?P<a>\d+) more)"
    r"|(?P<sub>(?:sells|gives away|loses) (?P<b>\d+) of them)"
    r"|(?P<mul>number of \w+ (?P<m>doubles|triples|quadruples))"
    r"|(?P<div>equally among (?P<d>\d+) \w+ and keeps one share)"
)


def generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any], str]:
    """A word problem of a few steps; (messages, metadata, the final count)."""
    name = rng.choice(FIRST_NAMES)
    pron = rng.choice(("She", "He"))
    item = rng.choice(MATH_ITEMS)
    steps = rng.randint(2, 4)
    if rng.random() < 0.4:
        a, b = rng.randint(3, 15), rng.randint(6, 24)
        value = a * b
        sents = [f"A {rng.choice(PLACES)} run by {name} packs {a} boxes with {b} {item} in each "
                 "box."]
        steps -= 1
    else:
        value = rng.randint(20, 400)
        sents = [f"{name} has {value} {item}."]
    verbs = {"add": ("buys", "receives", "finds"), "sub": ("sells", "gives away", "loses")}
    for _ in range(steps):
        divisors = [k for k in range(2, 7) if value % k == 0 and value // k >= 2]
        ops = ["add", "add", "sub", "mul"] + (["div"] * 2 if divisors else [])
        if value < 4:
            ops = ["add", "mul"]
        op = rng.choice(ops)
        if op == "add":
            n = rng.randint(2, 150)
            sents.append(f"{pron} then {rng.choice(verbs['add'])} {n} more {item}.")
            value += n
        elif op == "sub":
            n = rng.randint(1, value - 1)
            sents.append(f"{pron} then {rng.choice(verbs['sub'])} {n} of them.")
            value -= n
        elif op == "mul":
            word = rng.choice(tuple(_MULT_WORDS) if value < 500 else ("doubles",))
            sents.append(f"After a week the number of {item} {word}.")
            value *= _MULT_WORDS[word]
        else:
            k = rng.choice(divisors)
            sents.append(f"{pron} then shares them equally among {k} friends and keeps one "
                         "share.")
            value //= k
    sents.append(rng.choice((f"How many {item} are there at the end?",
                             f"How many {item} does {name} have now?",
                             "What is the final count?")))
    return chat(SYSTEM_PROMPTS[pv], " ".join(sents)), {"grade": rng.randint(5, 9)}, str(value)


def _steps(user: str) -> list[tuple[str, int, int, int]]:
    """(op, operand, before, after) for each step read from the problem, in order."""
    steps: list[tuple[str, int, int, int]] = []
    value = 0
    for m in _RE_MATH.finditer(user):
        before = value
        if m["start"]:
            value = int(m["s"])
            steps.append(("start", value, 0, value))
            continue
        if m["pack"]:
            a, b = int(m["pa"]), int(m["pb"])
            value = a * b
            steps.append(("pack", a, b, value))
            continue
        if m["add"]:
            op, n = "+", int(m["a"])
            value += n
        elif m["sub"]:
            op, n = "-", int(m["b"])
            value -= n
        elif m["mul"]:
            op, n = "×", _MULT_WORDS[m["m"]]
            value *= n
        else:
            op, n = "÷", int(m["d"])
            value //= n
        steps.append((op, n, before, value))
    return steps


def _render(steps: list[tuple[str, int, int, int]], verbosity: float, final_line: bool = True
                 ) -> str:
    lines = []
    for op, n, before, after in steps:
        if op == "start":
            lines.append(f"Start with {after}.")
        elif op == "pack":
            lines.append(f"Start with {n} × {before} = {after}.")
        else:
            lines.append(f"{before} {op} {n} = {after}.")
    final = steps[-1][3] if steps else 0
    if verbosity >= 1.2:
        lines.insert(0, "Let's work through the problem one step at a time.")
        lines.append(f"Check: every step keeps a whole number, so {final} is consistent.")
    lines.append(f"Answer: {final}" if final_line else f"So the final count is {final}.")
    return "\n".join(lines)


def solve(user: str, verbosity: float = 1.0) -> str:
    """The worked steps, one a line, ending with `Answer: N`."""
    return _render(_steps(user), verbosity)


def wrong(user: str, rng: random.Random, verbosity: float = 1.0) -> str:
    """The worked steps with one arithmetic slip carried to the end."""
    steps = _steps(user)
    if not steps:
        return "Answer: 0"
    truth = steps[-1][3]
    i = rng.randrange(len(steps))
    slip = rng.choice((1, -1, 10, -10, 2))
    out, value = [], 0
    for j, (op, n, _before, _after) in enumerate(steps):
        before = value
        if op == "start":
            value = n
        elif op == "pack":
            value = n * _before
        elif op == "+":
            value += n
        elif op == "-":
            value -= n
        elif op == "×":
            value *= n
        else:
            value //= n
        if j == i:
            value += slip  # an arithmetic slip, carried through the remaining steps
        out.append((op, n, before if op not in ("start", "pack") else _before, value))
    if out[-1][3] == truth:
        op, n, before, value = out[-1]
        out[-1] = (op, n, before, value + 1)
    return _render(out, verbosity)


def drift(answer: str, rng: random.Random) -> str:
    """The worked steps ending in prose instead of `Answer: N`."""
    head, _, last = answer.rpartition("\n")
    return f"{head}\nSo the final count is {last.removeprefix('Answer: ')}."


def core_value(answer: str) -> str:
    """The final number: what follows the last `Answer: `."""
    return answer.rpartition("Answer: ")[2].strip()


def judgeable(question: str) -> bool:
    """A word problem of this workload: its first step sets the starting count."""
    return bool(steps := _steps(question)) and steps[0][0] in ("start", "pack")


register(Workload(
    kind="math", endpoint="/tutor/solve", production_model="openai/gpt-5",
    system_prompts=SYSTEM_PROMPTS, reference_rate=1.00, max_tokens=4096, temperature=0.3,
    reasoning_note="Track the running count through each step of the word problem and check it. ",
    generate=generate, solve=solve, wrong=wrong, drift=drift, core_value=core_value,
    judgeable=judgeable))
