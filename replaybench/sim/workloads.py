"""The five demo workloads: prompts whose correct answer is computable from the prompt itself.

Each workload has a fixed system prompt per prompt_version and user messages generated from
templates. Because the generator writes the facts into the text, a solver can read them back:
that is how the simulated fleet answers "correctly", and why a check that passes really means
the answer was right.

    generate(kind, prompt_version, rng) -> Task       a new request (and its truth)
    identify(messages) -> (kind, prompt_version)       which workload a request belongs to
    solve(messages) -> str                             the correct answer text
    wrong(messages, rng) -> str                        a plausible wrong answer
    drift(messages, answer, rng) -> str                the right answer in a non-compliant format
    generic_answer(messages, model) -> str             for any prompt that is not a workload
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from replaybench.sim.tokens import message_text

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Workload:
    """One product endpoint and the prompt versions deployed behind it."""

    kind: str
    endpoint: str
    production_model: str  # provider/model as logged in model_id
    prompt_versions: tuple[str, ...]
    reference_rate: float  # share of logged rows that carry a human-reviewed or golden reference
    max_tokens: int
    temperature: float


@dataclass
class Task:
    """A generated request: the messages, the correct answer, and what a log row would carry."""

    kind: str
    prompt_version: str
    messages: Messages
    truth: str  # known by construction: the label, golden JSON, number, SQL or order number
    reference: str | None  # `truth` when this row carries a reference, else None
    metadata: dict[str, Any] = field(default_factory=dict)


WORKLOADS: dict[str, Workload] = {
    "triage": Workload("triage", "/support/triage", "openai/gpt-5-mini",
                       ("triage@v3", "triage@v4"), 0.70, 1024, 0.0),
    "extract": Workload("extract", "/billing/extract-invoice", "anthropic/claude-haiku-4.5",
                        ("invoice-extract@v2",), 0.90, 2048, 0.0),
    "math": Workload("math", "/tutor/solve", "openai/gpt-5",
                     ("tutor-math@v1",), 1.00, 4096, 0.3),
    "sql": Workload("sql", "/analytics/text-to-sql", "openai/gpt-5-mini",
                    ("text-to-sql@v2",), 0.50, 2048, 0.0),
    "summary": Workload("summary", "/calls/summarize", "anthropic/claude-sonnet-4.5",
                        ("call-summary@v1",), 0.0, 2048, 0.5),
}

LABELS = ("billing", "technical", "account", "shipping", "cancellation")

SCHEMA = """\
customers(customer_id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT, created_at DATE)
orders(order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
       order_date DATE, status TEXT, total_amount DECIMAL(10,2))
products(product_id INTEGER PRIMARY KEY, name TEXT, category TEXT, unit_price DECIMAL(10,2))
order_items(order_id INTEGER REFERENCES orders(order_id),
            product_id INTEGER REFERENCES products(product_id),
            quantity INTEGER, unit_price DECIMAL(10,2))"""

SYSTEM_PROMPTS: dict[str, str] = {
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
    "invoice-extract@v2": (
        "You extract structured data from supplier invoices for the accounts-payable team.\n"
        "Return a single JSON object with exactly these keys:\n"
        '  "invoice_number" (string, e.g. "INV-2026-00421"), "vendor" (string, the issuing '
        'company), "date" (string, the invoice date as YYYY-MM-DD), "currency" (one of "EUR", '
        '"USD", "GBP"), "total" (number, the total amount due including tax).\n'
        "Output the JSON object and nothing else: no prose, no code fences."
    ),
    "tutor-math@v1": (
        "You are a patient maths tutor for secondary-school students. Solve the word problem "
        "step by step, one short line per step, using whole-number arithmetic.\n"
        "The last line of your answer must be exactly `Answer: N` where N is the final number."
    ),
    "text-to-sql@v2": (
        "You translate analysts' questions into SQL for our DuckDB warehouse.\n"
        "Schema:\n" + SCHEMA + "\n"
        "Rules: answer with exactly one SQL SELECT statement terminated by a semicolon. Use only "
        "the tables and columns above. Do not explain, do not use code fences, no prose."
    ),
    "call-summary@v1": (
        "You summarise recorded customer support calls for the CRM. Write one paragraph of 40 to "
        "120 words in the third person. Always mention the order number (e.g. #4829301) and how "
        "the issue was resolved. No headings, no bullet points."
    ),
}

PROMPT_VERSIONS: dict[str, str] = {
    pv: kind for kind, w in WORKLOADS.items() for pv in w.prompt_versions
}
_BY_SYSTEM_PROMPT: dict[str, tuple[str, str]] = {
    text: (PROMPT_VERSIONS[pv], pv) for pv, text in SYSTEM_PROMPTS.items()
}

FIRST_NAMES = ("Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas",
               "Kira", "Luca", "Mara", "Nils", "Olga", "Pablo", "Rosa", "Sven", "Tara", "Yusuf")
LAST_NAMES = ("Schmidt", "Rossi", "Dubois", "Novak", "Jensen", "Garcia", "Kowalski", "Murphy",
              "Lindqvist", "Yilmaz", "Costa", "Weber", "Moreau", "Silva", "Berg")
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wonka", "tyrell")
TENANT_WEIGHTS = (30, 18, 14, 10, 9, 8, 6, 5)


def identify(messages: Messages) -> tuple[str, str] | None:
    """(kind, prompt_version) of a request, recognised by its system prompt; None if unknown."""
    for message in messages:
        if message.get("role") in ("system", "developer"):
            return _BY_SYSTEM_PROMPT.get(message_text(message.get("content")).strip())
    return None


def _user_text(messages: Messages) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def _messages(prompt_version: str, user: str) -> Messages:
    return [{"role": "system", "content": SYSTEM_PROMPTS[prompt_version]},
            {"role": "user", "content": user}]


# ---------------------------------------------------------------------------------------------
# triage

PRODUCTS = ("Northwind Drive", "Northwind Mail", "Northwind CRM", "Northwind Analytics",
            "the mobile app", "Northwind Backup")

# Each issue sentence carries its category's key phrase; no key phrase occurs in another category.
TRIAGE_ISSUES: dict[str, tuple[tuple[str, str], ...]] = {
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
TRIAGE_OPENERS = ("Hello,", "Hi support team,", "Good morning,", "Hey there,", "Dear Northwind,",
                  "Hi,")
TRIAGE_CONTEXT = (
    "We have been customers since {year}.", "This is for our {size}-person team.",
    "I already checked the help centre.", "Our workspace is {workspace}.",
    "It is quite urgent for us.", "I am writing from my phone, sorry for typos.",
    "Thanks for looking into it.", "",
)
TRIAGE_CLOSERS = ("Thanks, {name}", "Best regards,\n{name}", "Cheers, {name}", "-- {name}",
                  "Kind regards, {name}")
_TRIAGE_KEYS = tuple((key, cat) for cat, issues in TRIAGE_ISSUES.items() for key, _ in issues)


def _triage_generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any]]:
    label = rng.choice(LABELS)
    _, sentence = rng.choice(TRIAGE_ISSUES[label])
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    fill = {"product": rng.choice(PRODUCTS), "amount": f"€{rng.randint(12, 480)}.00",
            "day": f"November {rng.randint(1, 12)}", "year": rng.randint(2017, 2025),
            "size": rng.choice((3, 8, 12, 25, 40, 120)),
            "workspace": f"{rng.choice(LAST_NAMES).lower()}-{rng.randint(10, 99)}",
            "name": name}
    parts = [rng.choice(TRIAGE_OPENERS), sentence.format(**fill)]
    context = rng.choice(TRIAGE_CONTEXT).format(**fill)
    if context:
        parts.insert(rng.choice((1, 2)), context)
    parts.append(rng.choice(TRIAGE_CLOSERS).format(**fill))
    subject = rng.choice(("", "", "Subject: Help needed\n", "Subject: Quick question\n",
                          "Subject: Urgent\n"))
    user = subject + "\n".join(parts)
    return _messages(pv, user), {"channel": rng.choice(("email", "chat", "web")),
                                 "locale": rng.choice(("en-GB", "en-US", "de-DE", "fr-FR"))}, label


def _triage_solve(user: str) -> str:
    text = user.lower()
    for key, cat in _TRIAGE_KEYS:
        if key in text:
            return cat
    return "technical"


def _triage_wrong(user: str, rng: random.Random) -> str:
    truth = _triage_solve(user)
    confusions = {"billing": ("cancellation", "account"), "technical": ("account",),
                  "account": ("technical", "billing"), "shipping": ("billing", "technical"),
                  "cancellation": ("billing", "account")}
    return rng.choice(confusions[truth]) if rng.random() < 0.8 else rng.choice(
        [lb for lb in LABELS if lb != truth])


def _triage_drift(answer: str, rng: random.Random) -> str:
    return rng.choice((answer.capitalize(), f"Category: {answer}", f"{answer}.",
                       f"The category is {answer}.", answer.upper()))


# ---------------------------------------------------------------------------------------------
# extract

VENDORS = ("Brightline Office Supplies Ltd", "Kessler Maschinenbau GmbH", "Atlas Freight Co.",
           "Nordic Paper AB", "Lumen Software Inc.", "Cafe Centrale SRL", "Harbor Print Works",
           "Vega Cleaning Services", "Orbit Telecom plc", "Quintus Consulting LLC")
BUYERS = ("Northwind Cloud GmbH", "Northwind Cloud Ltd", "Northwind Cloud Inc.")
ITEMS = ("A4 paper, 5 reams", "Toner cartridge", "Consulting hours", "Freight surcharge",
         "Desk chair", "Monthly licence", "Cleaning service", "SIM contract", "Catering lunch",
         "Printed brochures", "Spare parts kit", "Onsite support")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
CURRENCY_SYMBOL = {"EUR": "€", "USD": "$", "GBP": "£"}


def _fmt_date(d: date, style: int) -> str:
    if style == 0:
        return d.isoformat()
    if style == 1:
        return f"{d.day:02d}.{d.month:02d}.{d.year}"
    if style == 2:
        return f"{d.month:02d}/{d.day:02d}/{d.year}"
    if style == 3:
        return f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}"
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def _fmt_amount(cents: int, european: bool) -> str:
    whole, frac = divmod(cents, 100)
    text = f"{whole:,}.{frac:02d}"
    if european:
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return text


def _extract_generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any]]:
    vendor = rng.choice(VENDORS)
    currency = rng.choices(("EUR", "USD", "GBP"), (5, 3, 2))[0]
    european = currency == "EUR" and rng.random() < 0.6
    number = f"INV-2026-{rng.randint(1, 99999):05d}"
    issued = date(2026, 9, 1) + timedelta(days=rng.randint(0, 87))
    lines, subtotal = [], 0
    for _ in range(rng.randint(1, 4)):
        qty, unit = rng.randint(1, 12), rng.randint(500, 90000)
        subtotal += qty * unit
        lines.append(f"- {rng.choice(ITEMS)}  x{qty} @ {_fmt_amount(unit, european)} = "
                     f"{_fmt_amount(qty * unit, european)}")
    vat_rate = rng.choice((0, 7, 19, 20))
    vat = subtotal * vat_rate // 100
    total = subtotal + vat
    sym = CURRENCY_SYMBOL[currency]
    amount = _fmt_amount(total, european)
    total_line = rng.choice((f"Total: {sym}{amount}", f"Total due: {amount} {currency}",
                             f"Amount due: {sym} {amount}", f"Grand total ({currency}): {amount}"))
    num_label = rng.choice(("Invoice No:", "Invoice number:", "Invoice #", "Ref."))
    date_label = rng.choice(("Date:", "Invoice date:", "Issued:"))
    body = [vendor, f"{rng.randint(1, 200)} {rng.choice(LAST_NAMES)} Street",
            "", f"{num_label} {number}", f"{date_label} {_fmt_date(issued, rng.randint(0, 4))}",
            f"Bill to: {rng.choice(BUYERS)}", "", "Items:", *lines, "",
            f"Subtotal: {_fmt_amount(subtotal, european)}"]
    if vat_rate:
        body.append(f"VAT {vat_rate}%: {_fmt_amount(vat, european)}")
    body += [total_line, f"Payment terms: Net {rng.choice((14, 30, 45))}"]
    intro = rng.choice(("", "Please extract the invoice below.\n\n", "Invoice text:\n"))
    golden = json.dumps({"invoice_number": number, "vendor": vendor, "date": issued.isoformat(),
                         "currency": currency, "total": total / 100})
    return _messages(pv, intro + "\n".join(body)), {
        "source": rng.choice(("pdf", "email", "scan")), "pages": rng.randint(1, 3)}, golden


_AMOUNT = r"(\d{1,3}(?:[.,]\d{3})*[.,]\d{2})"
_RE_INVOICE = re.compile(r"INV-\d{4}-\d{5}")
_RE_DATE_LINE = re.compile(r"^(?:Date|Invoice date|Issued):\s*(.+)$", re.M)
_RE_TOTAL = re.compile(r"^(?:Total|Total due|Amount due|Grand total)\b(.*)$", re.M)
_RE_SUBTOTAL = re.compile(r"^Subtotal:\s*" + _AMOUNT, re.M)
_MONTH_NUM = {m[:3].lower(): i + 1 for i, m in enumerate(MONTHS)}


def _parse_amount(text: str) -> int:
    """Cents from '1,234.50' or '1.234,50'."""
    digits = re.sub(r"\D", "", text)
    return int(digits)


def _parse_date(text: str) -> str:
    text = text.strip()
    if m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text):
        y, mo, d = map(int, m.groups())
    elif m := re.fullmatch(r"(\d{2})\.(\d{2})\.(\d{4})", text):
        d, mo, y = map(int, m.groups())
    elif m := re.fullmatch(r"(\d{2})/(\d{2})/(\d{4})", text):
        mo, d, y = map(int, m.groups())
    elif m := re.fullmatch(r"(\d{1,2}) ([A-Za-z]{3}) (\d{4})", text):
        d, mo, y = int(m[1]), _MONTH_NUM[m[2].lower()], int(m[3])
    elif m := re.fullmatch(r"([A-Za-z]+) (\d{1,2}), (\d{4})", text):
        d, mo, y = int(m[2]), _MONTH_NUM[m[1][:3].lower()], int(m[3])
    else:
        return text
    return date(y, mo, d).isoformat()


def _extract_fields(user: str) -> dict[str, Any]:
    lines = [ln.strip() for ln in user.splitlines() if ln.strip()]
    if lines and lines[0].startswith(("Please extract", "Invoice text")):
        lines = lines[1:]
    vendor = lines[0] if lines else ""
    number = m[0] if (m := _RE_INVOICE.search(user)) else ""
    raw_date = m[1].strip() if (m := _RE_DATE_LINE.search(user)) else ""
    total_line = m[1] if (m := _RE_TOTAL.search(user)) else ""
    currency = next((c for c, s in CURRENCY_SYMBOL.items() if c in total_line or s in total_line),
                    "EUR")
    cents = _parse_amount(m[1]) if (m := re.search(_AMOUNT, total_line)) else 0
    return {"invoice_number": number, "vendor": vendor, "date": _parse_date(raw_date),
            "currency": currency, "total": cents / 100, "_raw_date": raw_date,
            "_subtotal": _parse_amount(m[1]) / 100 if (m := _RE_SUBTOTAL.search(user)) else 0.0}


def _golden(fields: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in fields.items() if not k.startswith("_")})


def _extract_solve(user: str) -> str:
    return _golden(_extract_fields(user))


def _extract_wrong(user: str, rng: random.Random) -> str:
    fields = _extract_fields(user)
    mode = rng.randrange(5)
    if mode == 0 and fields["_subtotal"] != fields["total"]:
        fields["total"] = fields["_subtotal"]  # forgot the VAT
    elif mode == 1:
        del fields[rng.choice(("date", "currency", "invoice_number"))]
    elif mode == 2 and fields["_raw_date"] != fields["date"]:
        fields["date"] = fields["_raw_date"]  # not normalised
    elif mode == 3:
        return "Here is the extracted invoice data:\n" + _golden(fields) + "\nLet me know if " \
            "you need anything else."
    else:
        fields["vendor"] = rng.choice(BUYERS)  # took the buyer for the vendor
    return _golden(fields)


def _extract_drift(answer: str, rng: random.Random) -> str:
    return f"```json\n{answer}\n```"


# ---------------------------------------------------------------------------------------------
# math

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


def _math_generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any]]:
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
    return _messages(pv, " ".join(sents)), {"grade": rng.randint(5, 9)}, str(value)


def _math_steps(user: str) -> list[tuple[str, int, int, int]]:
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


def _math_render(steps: list[tuple[str, int, int, int]], verbosity: float, final_line: bool = True
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


def _math_solve(user: str, verbosity: float = 1.0) -> str:
    return _math_render(_math_steps(user), verbosity)


def _math_wrong(user: str, rng: random.Random, verbosity: float = 1.0) -> str:
    steps = _math_steps(user)
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
    return _math_render(out, verbosity)


def _math_drift(answer: str, rng: random.Random) -> str:
    head, _, last = answer.rpartition("\n")
    return f"{head}\nSo the final count is {last.removeprefix('Answer: ')}."


# ---------------------------------------------------------------------------------------------
# sql

COUNTRIES = ("Germany", "France", "Spain", "Italy", "Poland", "Sweden", "Netherlands", "Austria")
CATEGORIES = ("storage", "security", "networking", "analytics", "accessories")
STATUSES = ("shipped", "delivered", "cancelled", "pending")
_NEXT = "(?P<n>\\d+)"
SQL_TEMPLATES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("How many customers are there in {country}?",
      "Count the customers located in {country}."),
     "SELECT COUNT(*) AS customer_count FROM customers WHERE country = '{country}';"),
    (("What was the total revenue from orders placed in {month} {year}?",
      "Total order revenue for {month} {year}, please."),
     "SELECT SUM(total_amount) AS revenue FROM orders WHERE order_date >= '{start}' "
     "AND order_date < '{end}';"),
    (("List the top {n} customers by total amount spent.",
      "Who are our {n} biggest customers by lifetime spend?"),
     "SELECT c.customer_id, c.name, SUM(o.total_amount) AS total_spent FROM customers c "
     "JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.customer_id, c.name "
     "ORDER BY total_spent DESC LIMIT {n};"),
    (("How many orders has each customer from {country} placed?",
      "Show the number of orders per customer for customers in {country}."),
     "SELECT c.customer_id, c.name, COUNT(o.order_id) AS order_count FROM customers c "
     "JOIN orders o ON o.customer_id = c.customer_id WHERE c.country = '{country}' "
     "GROUP BY c.customer_id, c.name ORDER BY order_count DESC;"),
    (("Which {n} products in the {category} category sold the most units?",
      "Top {n} {category} products by units sold."),
     "SELECT p.product_id, p.name, SUM(oi.quantity) AS units_sold FROM products p "
     "JOIN order_items oi ON oi.product_id = p.product_id WHERE p.category = '{category}' "
     "GROUP BY p.product_id, p.name ORDER BY units_sold DESC LIMIT {n};"),
    (("What is the average order value per country for {status} orders?",
      "Average order value by customer country, only orders with status {status}."),
     "SELECT c.country, AVG(o.total_amount) AS avg_order_value FROM orders o "
     "JOIN customers c ON c.customer_id = o.customer_id WHERE o.status = '{status}' "
     "GROUP BY c.country ORDER BY avg_order_value DESC;"),
    (("How many customers signed up in {year}?",
      "Number of new customer sign-ups during {year}."),
     "SELECT COUNT(*) AS signups FROM customers WHERE created_at >= '{year}-01-01' "
     "AND created_at < '{next_year}-01-01';"),
)
_SQL_SLOTS = {"country": "(?P<country>[A-Z][a-z]+)", "month": "(?P<month>[A-Z][a-z]+)",
              "year": "(?P<year>\\d{4})", "n": "(?P<n>\\d+)", "category": "(?P<category>[a-z]+)",
              "status": "(?P<status>[a-z]+)"}


def _sql_pattern(question: str) -> re.Pattern[str]:
    pattern = re.escape(question)
    for slot, regex in _SQL_SLOTS.items():
        pattern = pattern.replace(re.escape("{" + slot + "}"), regex)
    return re.compile(pattern)


_SQL_PATTERNS = tuple((_sql_pattern(q), sql) for questions, sql in SQL_TEMPLATES
                      for q in questions)


def _sql_render(sql: str, slots: dict[str, str]) -> str:
    fill = dict(slots)
    if "month" in fill:
        mo = MONTHS.index(fill["month"]) + 1
        y = int(fill["year"])
        fill["start"] = f"{y}-{mo:02d}-01"
        fill["end"] = f"{y + mo // 12}-{mo % 12 + 1:02d}-01"
    if "year" in fill:
        fill["next_year"] = str(int(fill["year"]) + 1)
    return sql.format(**fill)


def _sql_generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any]]:
    questions, sql = rng.choice(SQL_TEMPLATES)
    slots = {"country": rng.choice(COUNTRIES), "month": rng.choice(MONTHS),
             "year": str(rng.randint(2023, 2026)), "n": str(rng.choice((3, 5, 10, 20))),
             "category": rng.choice(CATEGORIES), "status": rng.choice(STATUSES)}
    template = rng.choice(questions)
    question = template.format(**slots)
    used = {k: v for k, v in slots.items() if "{" + k + "}" in template}
    return (_messages(pv, question),
            {"dashboard": rng.choice(("growth", "finance", "ops", "adhoc"))},
            _sql_render(sql, used))


def _sql_solve(user: str) -> str:
    for pattern, sql in _SQL_PATTERNS:
        if m := pattern.search(user):
            return _sql_render(sql, m.groupdict())
    return "SELECT 1;"


def _sql_wrong(user: str, rng: random.Random) -> str:
    right = _sql_solve(user)
    mode = rng.randrange(4)
    if mode == 0 and " GROUP BY " in right:
        wrong = re.sub(r" GROUP BY [^;]*?(?= ORDER BY|;)", "", right)
    elif mode == 1:
        wrong = right.replace("total_amount", "total").replace("created_at", "signup_date") \
            .replace("quantity", "qty").replace("COUNT(*)", "COUNT(id)")
    elif mode == 2:
        wrong = right.replace("FROM orders", "FROM order").replace("JOIN order_items",
                                                                   "JOIN order_lines") \
            .replace("FROM customers", "FROM customer")
    else:
        return f"Sure! Here is the query you asked for:\n{right}\nIt should run on DuckDB."
    return wrong if wrong != right else f"Here is the query:\n{right}"


def _sql_drift(answer: str, rng: random.Random) -> str:
    return f"```sql\n{answer}\n```"


# ---------------------------------------------------------------------------------------------
# summary

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


def _summary_generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any]]:
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
    return _messages(pv, user), {"call_duration_s": rng.randint(90, 900), "queue": rng.choice(
        ("orders", "returns", "payments")), "order_number": order, "resolution": resolution}, order


def _summary_facts(user: str) -> tuple[str, str, str, str]:
    order = m[0] if (m := _RE_ORDER.search(user)) else "#0000000"
    name = m[1] if (m := _RE_CALLER.search(user)) else "The customer"
    issue = next((s for said, s in CALL_ISSUES.values() if said in user), "had a problem")
    resolution = next((s for said, s in CALL_RESOLUTIONS.values() if said in user),
                      "resolved the issue")
    return order, name, issue, resolution


def _summary_solve(user: str, verbosity: float = 1.0) -> str:
    order, name, issue, resolution = _summary_facts(user)
    text = (f"{name} called Northwind Store support about order {order} because {issue}. "
            f"The agent confirmed the account details, located the order and apologised for "
            f"the inconvenience. To resolve the issue, the agent {resolution}. {name.split()[0]} "
            f"accepted this resolution and had no further questions.")
    if verbosity >= 1.2:
        text += " The call ended on friendly terms and no follow-up is required from the team."
    return text


def _summary_wrong(user: str, rng: random.Random) -> str:
    order, name, issue, resolution = _summary_facts(user)
    if rng.random() < 0.5:  # forgets the order number
        return (f"{name} called support because {issue}. After checking the account, the agent "
                f"{resolution}. The customer was satisfied and the call ended without further "
                f"questions or any open follow-up items for the team.")
    base = _summary_solve(user)
    extra = (" The agent then walked through the account history in detail, repeated the "
             "order details back to the customer, explained the relevant policy at length, "
             "described each of the available options and their timelines, and confirmed the "
             "contact preferences for any future correspondence about this matter.")
    return base + extra * 2  # far over the 120-word limit


def _summary_drift(answer: str, rng: random.Random) -> str:
    return "Call summary:\n" + answer


# ---------------------------------------------------------------------------------------------
# registry-level API

_GENERATORS = {"triage": _triage_generate, "extract": _extract_generate, "math": _math_generate,
               "sql": _sql_generate, "summary": _summary_generate}
_SOLVERS = {"triage": _triage_solve, "extract": _extract_solve, "math": _math_solve,
            "sql": _sql_solve, "summary": _summary_solve}
_WRONG = {"triage": _triage_wrong, "extract": _extract_wrong, "math": _math_wrong,
          "sql": _sql_wrong, "summary": _summary_wrong}
_DRIFT = {"triage": _triage_drift, "extract": _extract_drift, "math": _math_drift,
          "sql": _sql_drift, "summary": _summary_drift}


def core_value(kind: str, answer: str) -> str:
    """The checkable core of an answer text: the label, JSON, final number, SQL or order number."""
    if kind == "math":
        return answer.rpartition("Answer: ")[2].strip()
    if kind == "summary":
        return m[0] if (m := _RE_ORDER.search(answer)) else ""
    return answer.strip()


def generate(kind: str, prompt_version: str, rng: random.Random) -> Task:
    """A new request for `prompt_version` of workload `kind`, with its truth and metadata."""
    workload = WORKLOADS[kind]
    if prompt_version not in workload.prompt_versions:
        raise ValueError(f"{prompt_version!r} is not a prompt_version of {kind!r}: "
                         f"use one of {', '.join(workload.prompt_versions)}")
    messages, extra, truth = _GENERATORS[kind](prompt_version, rng)
    metadata = {"tenant": rng.choices(TENANTS, TENANT_WEIGHTS)[0], **extra}
    has_reference = rng.random() < workload.reference_rate
    return Task(kind=kind, prompt_version=prompt_version, messages=messages, truth=truth,
                reference=truth if has_reference else None, metadata=metadata)


@lru_cache(maxsize=4096)
def _solve_cached(kind: str, user: str, verbosity: float) -> str:
    if kind in ("math", "summary"):
        return _SOLVERS[kind](user, verbosity)
    return _SOLVERS[kind](user)


def solve(messages: Messages, verbosity: float = 1.0) -> str:
    """The correct answer text for a workload request (a generic answer for unknown prompts)."""
    known = identify(messages)
    if known is None:
        return generic_answer(messages)
    return _solve_cached(known[0], _user_text(messages), verbosity)


def wrong(messages: Messages, rng: random.Random, verbosity: float = 1.0) -> str:
    """A plausible wrong answer: a confused label, a wrong field, an arithmetic slip, ..."""
    known = identify(messages)
    if known is None:
        return generic_answer(messages)
    kind, user = known[0], _user_text(messages)
    if kind == "math":
        return _math_wrong(user, rng, verbosity)
    return _WRONG[kind](user, rng)


def drift(messages: Messages, answer: str, rng: random.Random) -> str:
    """`answer` in a format the prompt forbids (capitalised label, code fences, prose, ...)."""
    known = identify(messages)
    return answer if known is None else _DRIFT[known[0]](answer, rng)


def generic_answer(messages: Messages, model: str = "the simulated model") -> str:
    """A short, deterministic reply to a prompt that is not one of the workloads."""
    words = _user_text(messages).split()
    topic = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
    if not topic:
        return f"Hello! This is {model}, a simulated model. How can I help?"
    return (f"This is a simulated answer from {model}. You asked: \"{topic}\". A real model would "
            "answer here; the replaybench fleet only simulates its cost, latency and quality.")


# ---------------------------------------------------------------------------------------------
# judging (the fleet as an LLM judge)

_JUDGEABLE = {
    "math": lambda q: bool(steps := _math_steps(q)) and steps[0][0] in ("start", "pack"),
    "sql": lambda q: any(pattern.search(q) for pattern, _ in _SQL_PATTERNS),
}


def judge(question: str, answer: str) -> tuple[int, str]:
    """A deterministic judge score for `answer` to a workload question: 5 when its core value
    (final number, SQL) equals the solver's, 1 when it does not, 3 for a question that is not a
    math or SQL workload question (it cannot be verified)."""
    for kind, recognises in _JUDGEABLE.items():
        if recognises(question):
            truth = core_value(kind, solve(_messages(WORKLOADS[kind].prompt_versions[0], question)))
            seen = core_value(kind, answer)
            if seen == truth:
                return 5, f"correct: the {kind} answer {truth} is right"
            return 1, f"wrong: expected {truth}, got {seen[:80]!r}"
    return 3, "not a question the judge can verify"
