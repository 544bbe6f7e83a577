"""Support-ticket triage: the ticket's key phrase decides the team; the answer is its label."""

from __future__ import annotations

import random
from typing import Any

from replaybench.sim.workloads.base import FIRST_NAMES, LAST_NAMES, Messages, Workload, chat, register

SYSTEM_PROMPTS = {
    "triage@v3": (
        "You are a helpful support assistant for Northwind Cloud. Classify this ticket into a "
        "category (billing, technical, account, shipping or cancellation) so it reaches the "
        "right team."
    ),
    "triage@v4": (
        "You are the ticket router for Northwind Cloud support. Read the customer ticket and "
        "decide which team owns it.\n"
        "Answer with exactly one lowercase label from: billing, technical, account, shipping, "
        "cancellation.\n"
        "Do not add punctuation, explanations or any other text."
    ),
}

LABELS = ("billing", "technical", "account", "shipping", "cancellation")

PRODUCTS = ("Northwind Drive", "Northwind Mail", "Northwind CRM", "Northwind Analytics",
            "the mobile app", "Northwind Backup")

# Each issue sentence carries its category's key phrase; no key phrase occurs in another category.
ISSUES: dict[str, tuple[tuple[str, str], ...]] = {
    "billing": (
        ("charged twice", "I was charged twice for {product} this month and would like one "
                          "payment reversed."),
        ("invoice shows the wrong amount", "My latest invoice shows the wrong amount, {amount} "
                                           "instead of what the price list says."),
        ("vat number", "Please add our VAT number to the invoices, the finance team needs it."),
        ("card was billed", "My card was billed {amount} although we are on the free tier."),
        ("pro-rated", "The upgrade to the Team plan was not pro-rated as promised."),
    ),
    "technical": (
        ("keeps crashing", "{product} keeps crashing as soon as I open a shared folder."),
        ("error 500", "Every upload fails with error 500 since yesterday afternoon."),
        ("stopped syncing", "{product} stopped syncing on my laptop, files are days old."),
        ("times out", "The export API times out after 30 seconds for larger workspaces."),
        ("blank screen", "After the last update {product} only shows a blank screen."),
    ),
    "account": (
        ("reset my password", "I cannot reset my password, the reset link never arrives."),
        ("two-factor", "I lost my phone and need to disable two-factor authentication."),
        ("change the email address", "How do I change the email address on my profile to "
                                     "my new work address?"),
        ("locked out", "I am locked out after too many login attempts."),
        ("transfer ownership", "I need to transfer ownership of our workspace to a colleague "
                               "who is taking over."),
    ),
    "shipping": (
        ("has not arrived", "The hardware key I ordered on {day} has not arrived yet."),
        ("tracking number", "The tracking number you sent me shows no movement for a week."),
        ("wrong address", "The parcel was delivered to the wrong address, a neighbour found it."),
        ("damaged in transit", "The security key box was damaged in transit and the key is "
                               "bent."),
        ("express delivery", "I paid for express delivery but the package is still in the "
                             "depot."),
    ),
    "cancellation": (
        ("cancel my subscription", "Please cancel my subscription for {product} effective "
                                   "immediately."),
        ("stop the auto-renewal", "I want to stop the auto-renewal of our annual plan."),
        ("close our account for good", "We are moving to another vendor, so please close our "
                                       "account for good."),
        ("end the contract", "We would like to end the contract at the end of this term."),
        ("downgrade and leave", "We want to downgrade and leave once the current month is over."),
    ),
}
OPENERS = ("Hello,", "Hi support team,", "Good morning,", "Hey there,", "Dear Northwind,", "Hi,")
CONTEXT = (
    "We have been customers since {year}.", "This is for our {size}-person team.",
    "I already checked the help centre.", "Our workspace is {workspace}.",
    "It is quite urgent for us.", "I am writing from my phone, sorry for typos.",
    "Thanks for looking into it.", "",
)
CLOSERS = ("Thanks, {name}", "Best regards,\n{name}", "Cheers, {name}", "-- {name}",
           "Kind regards, {name}")
_KEYS = tuple((key, cat) for cat, issues in ISSUES.items() for key, _ in issues)


def generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any], str]:
    """A ticket whose key phrase belongs to one team; (messages, metadata, label)."""
    label = rng.choice(LABELS)
    _, sentence = rng.choice(ISSUES[label])
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    fill = {"product": rng.choice(PRODUCTS), "amount": f"€{rng.randint(12, 480)}.00",
            "day": f"November {rng.randint(1, 12)}", "year": rng.randint(2017, 2025),
            "size": rng.choice((3, 8, 12, 25, 40, 120)),
            "workspace": f"{rng.choice(LAST_NAMES).lower()}-{rng.randint(10, 99)}",
            "name": name}
    parts = [rng.choice(OPENERS), sentence.format(**fill)]
    context = rng.choice(CONTEXT).format(**fill)
    if context:
        parts.insert(rng.choice((1, 2)), context)
    parts.append(rng.choice(CLOSERS).format(**fill))
    subject = rng.choice(("", "", "Subject: Help needed\n", "Subject: Quick question\n",
                          "Subject: Urgent\n"))
    user = subject + "\n".join(parts)
    metadata = {"channel": rng.choice(("email", "chat", "web")),
                "locale": rng.choice(("en-GB", "en-US", "de-DE", "fr-FR"))}
    return chat(SYSTEM_PROMPTS[pv], user), metadata, label


def solve(user: str, verbosity: float = 1.0) -> str:
    """The label of the first key phrase found in the ticket."""
    text = user.lower()
    for key, cat in _KEYS:
        if key in text:
            return cat
    return "technical"


def wrong(user: str, rng: random.Random, verbosity: float = 1.0) -> str:
    """A confused label: mostly a neighbouring team, sometimes any other."""
    truth = solve(user)
    confusions = {"billing": ("cancellation", "account"), "technical": ("account",),
                  "account": ("technical", "billing"), "shipping": ("billing", "technical"),
                  "cancellation": ("billing", "account")}
    return rng.choice(confusions[truth]) if rng.random() < 0.8 else rng.choice(
        [lb for lb in LABELS if lb != truth])


def drift(answer: str, rng: random.Random) -> str:
    """The label in a form the prompt forbids: capitalised, prefixed, a sentence."""
    return rng.choice((answer.capitalize(), f"Category: {answer}", f"{answer}.",
                       f"The category is {answer}.", answer.upper()))


register(Workload(
    kind="triage", endpoint="/support/triage", production_model="openai/gpt-5-mini",
    system_prompts=SYSTEM_PROMPTS, reference_rate=0.70, max_tokens=1024, temperature=0.0,
    reasoning_note="The ticket describes the customer's problem; map it to the team that owns it. ",
    generate=generate, solve=solve, wrong=wrong, drift=drift))
