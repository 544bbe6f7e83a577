"""Call summaries: a support-call transcript in, one paragraph naming the order number out."""

from __future__ import annotations

import random
import re
from typing import Any

from replaybench.sim.workloads.base import FIRST_NAMES, LAST_NAMES, Messages, Workload, chat, register

SYSTEM_PROMPTS = {
    "call-summary@v1": (
        "You summarise recorded customer support calls for the CRM. Write one paragraph of 40 to "
        "120 words in the third person. Always mention the order number (e.g. #4829301) and how "
        "the issue was resolved. No headings, no bullet points."
    ),
}

CALL_ISSUES: dict[str, tuple[str, str]] = {
    "late": ("my order still hasn't arrived, it was due last Tuesday",
             "the order had not arrived by its due date"),
    "damaged": ("the monitor in my order arrived with a cracked screen",
                "an item in the order arrived damaged"),
    "wrong_item": ("I received a keyboard instead of the headset I ordered",
                   "the wrong item had been delivered"),
    "double_charge": ("I was charged twice for the same order",
                      "the order had been charged twice"),
    "missing_part": ("the power adapter was missing from the box",
                     "a part was missing from the delivery"),
}
CALL_RESOLUTIONS: dict[str, tuple[str, str]] = {
    "refund": ("I've issued a full refund, you'll see it within five business days",
               "issued a full refund, expected within five business days"),
    "replacement": ("I've arranged a free replacement that ships tomorrow by express",
                    "arranged a free replacement shipping the next day by express"),
    "voucher": ("I've added a 20 euro voucher to your account as an apology",
                "added a 20 euro voucher to the account as an apology"),
    "reship": ("I've re-sent the missing part with tracking, it arrives Thursday",
               "re-sent the missing part with tracking, arriving Thursday"),
    "escalate": ("I've escalated this to our logistics team, they will call you within 24 hours",
                 "escalated the case to the logistics team, who will call back within 24 hours"),
}
CALL_FILLER = (
    ("Agent", "Can I have the email address on the account, please?"),
    ("Customer", "Sure, it's the one I used for the order."),
    ("Agent", "Thank you, one moment while I pull that up."),
    ("Customer", "No problem, take your time."),
    ("Agent", "I can see the order here in our system."),
    ("Customer", "Okay, good."),
    ("Agent", "I'm sorry about the trouble this has caused."),
    ("Customer", "Thanks, it has been a bit frustrating."),
    ("Agent", "Could you confirm the delivery postcode for me?"),
    ("Customer", "Yes, it's the same one as on the invoice."),
)
_RE_ORDER = re.compile(r"#\d{7}")
_RE_CALLER = re.compile(r"this is (\w+ \w+)")


def generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any], str]:
    """A call transcript; (messages, metadata, the order number)."""
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    order = f"#{rng.randint(1_000_000, 9_999_999)}"
    issue = rng.choice(tuple(CALL_ISSUES))
    resolution = rng.choice(tuple(CALL_RESOLUTIONS))
    turns = [("Agent", "Thank you for calling Northwind Store, how can I help?"),
             ("Customer", f"Hi, this is {name}. I'm calling about order {order}, "
                          f"{CALL_ISSUES[issue][0]}.")]
    pairs = [CALL_FILLER[i:i + 2] for i in range(0, len(CALL_FILLER), 2)]
    rng.shuffle(pairs)
    for pair in pairs[: rng.randint(1, len(pairs))]:
        turns += pair
    turns += [("Agent", f"{CALL_RESOLUTIONS[resolution][0]}."),
              ("Customer", "That works for me, thank you."),
              ("Agent", "Is there anything else I can help with?"),
              ("Customer", "No, that's all. Bye!")]
    user = "Transcript:\n" + "\n".join(f"{who}: {text}" for who, text in turns)
    return chat(SYSTEM_PROMPTS[pv], user), {"call_duration_s": rng.randint(90, 900), "queue": rng.choice(
        ("orders", "returns", "payments")), "order_number": order, "resolution": resolution}, order


def _facts(user: str) -> tuple[str, str, str, str]:
    order = m[0] if (m := _RE_ORDER.search(user)) else "#0000000"
    name = m[1] if (m := _RE_CALLER.search(user)) else "The customer"
    issue = next((s for said, s in CALL_ISSUES.values() if said in user), "had a problem")
    resolution = next((s for said, s in CALL_RESOLUTIONS.values() if said in user),
                      "resolved the issue")
    return order, name, issue, resolution


def solve(user: str, verbosity: float = 1.0) -> str:
    """A one-paragraph summary naming caller, order, issue and resolution."""
    order, name, issue, resolution = _facts(user)
    text = (f"{name} called Northwind Store support about order {order} because {issue}. "
            f"The agent confirmed the account details, located the order and apologised for "
            f"the inconvenience. To resolve the issue, the agent {resolution}. {name.split()[0]} "
            f"accepted this resolution and had no further questions.")
    if verbosity >= 1.2:
        text += " The call ended on friendly terms and no follow-up is required from the team."
    return text


def wrong(user: str, rng: random.Random, verbosity: float = 1.0) -> str:
    """A summary that forgets the order number or runs far over the word limit."""
    order, name, issue, resolution = _facts(user)
    if rng.random() < 0.5:  # forgets the order number
        return (f"{name} called support because {issue}. After checking the account, the agent "
                f"{resolution}. The customer was satisfied and the call ended without further "
                f"questions or any open follow-up items for the team.")
    base = solve(user)
    extra = (" The agent then walked through the account history in detail, repeated the "
             "order details back to the customer, explained the relevant policy at length, "
             "described each of the available options and their timelines, and confirmed the "
             "contact preferences for any future correspondence about this matter.")
    return base + extra * 2  # far over the 120-word limit


def drift(answer: str, rng: random.Random) -> str:
    """The summary under a heading."""
    return "Call summary:\n" + answer


def core_value(answer: str) -> str:
    """The order number the summary names ("" if none)."""
    return m[0] if (m := _RE_ORDER.search(answer)) else ""


register(Workload(
    kind="summary", endpoint="/calls/summarize", production_model="anthropic/claude-sonnet-4.5",
    system_prompts=SYSTEM_PROMPTS, reference_rate=0.0, max_tokens=2048, temperature=0.5,
    reasoning_note="Note the caller, the order number, the problem and how the agent resolved it. ",
    generate=generate, solve=solve, wrong=wrong, drift=drift, core_value=core_value))
