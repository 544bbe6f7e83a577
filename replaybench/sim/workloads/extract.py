"""Invoice extraction: a supplier invoice in, its five key fields out as one JSON object."""

from __future__ import annotations

import json
import random
import re
from datetime import date, timedelta
from typing import Any

from replaybench.sim.workloads.base import LAST_NAMES, MONTHS, Messages, Workload, chat, register

SYSTEM_PROMPTS = {
    "invoice-extract@v2": (
        "You extract structured data from supplier invoices for the accounts-payable team.\n"
        "Return a single JSON object with exactly these keys:\n"
        '  "invoice_number" (string, e.g. "INV-2026-00421"), "vendor" (string, the issuing '
        'company), "date" (string, the invoice date as YYYY-MM-DD), "currency" (one of "EUR", '
        '"USD", "GBP"), "total" (number, the total amount due including tax).\n'
        "Output the JSON object and nothing else: no prose, no code fences."
    ),
}

VENDORS = ("Brightline Office Supplies Ltd", "Kessler Maschinenbau GmbH", "Atlas Freight Co.",
           "Nordic Paper AB", "Lumen Software Inc.", "Cafe Centrale SRL", "Harbor Print Works",
           "Vega Cleaning Services", "Orbit Telecom plc", "Quintus Consulting LLC")
BUYERS = ("Northwind Cloud GmbH", "Northwind Cloud Ltd", "Northwind Cloud Inc.")
ITEMS = ("A4 paper, 5 reams", "Toner cartridge", "Consulting hours", "Freight surcharge",
         "Desk chair", "Monthly licence", "Cleaning service", "SIM contract", "Catering lunch",
         "Printed brochures", "Spare parts kit", "Onsite support")
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


def generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any], str]:
    """An invoice in one of several layouts; (messages, metadata, golden JSON)."""
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
    return chat(SYSTEM_PROMPTS[pv], intro + "\n".join(body)), {
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


def solve(user: str, verbosity: float = 1.0) -> str:
    """The golden JSON, read back from the invoice text."""
    return _golden(_extract_fields(user))


def wrong(user: str, rng: random.Random, verbosity: float = 1.0) -> str:
    """A typical extraction slip: VAT forgotten, a field missing, a raw date, prose."""
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


def drift(answer: str, rng: random.Random) -> str:
    """The JSON in code fences."""
    return f"```json\n{answer}\n```"


register(Workload(
    kind="extract", endpoint="/billing/extract-invoice", production_model="anthropic/claude-haiku-4.5",
    system_prompts=SYSTEM_PROMPTS, reference_rate=0.90, max_tokens=2048, temperature=0.0,
    reasoning_note="Find the invoice number, the issuing vendor, normalise the date, read the total. ",
    generate=generate, solve=solve, wrong=wrong, drift=drift))
