"""Text to SQL: an analyst's question from a few templates, answered with the one right SELECT."""

from __future__ import annotations

import random
import re
from typing import Any

from replaybench.sim.workloads.base import MONTHS, Messages, Workload, chat, register

SCHEMA = """\
customers(customer_id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT, created_at DATE)
orders(order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
       order_date DATE, status TEXT, total_amount DECIMAL(10,2))
products(product_id INTEGER PRIMARY KEY, name TEXT, category TEXT, unit_price DECIMAL(10,2))
order_items(order_id INTEGER REFERENCES orders(order_id),
            product_id INTEGER REFERENCES products(product_id),
            quantity INTEGER, unit_price DECIMAL(10,2))"""

SYSTEM_PROMPTS = {
    "text-to-sql@v2": (
        "You translate analysts' questions into SQL for our DuckDB warehouse.\n"
        "Schema:\n" + SCHEMA + "\n"
        "Rules: answer with exactly one SQL SELECT statement terminated by a semicolon. Use only "
        "the tables and columns above. Do not explain, do not use code fences, no prose."
    ),
}

COUNTRIES = ("Germany", "France", "Spain", "Italy", "Poland", "Sweden", "Netherlands", "Austria")
CATEGORIES = ("storage", "security", "networking", "analytics", "accessories")
STATUSES = ("shipped", "delivered", "cancelled", "pending")
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
_SLOTS = {"country": "(?P<country>[A-Z][a-z]+)", "month": "(?P<month>[A-Z][a-z]+)",
              "year": "(?P<year>\\d{4})", "n": "(?P<n>\\d+)", "category": "(?P<category>[a-z]+)",
              "status": "(?P<status>[a-z]+)"}


def _pattern(question: str) -> re.Pattern[str]:
    pattern = re.escape(question)
    for slot, regex in _SLOTS.items():
        pattern = pattern.replace(re.escape("{" + slot + "}"), regex)
    return re.compile(pattern)


_PATTERNS = tuple((_pattern(q), sql) for questions, sql in SQL_TEMPLATES
                      for q in questions)


def _render(sql: str, slots: dict[str, str]) -> str:
    fill = dict(slots)
    if "month" in fill:
        mo = MONTHS.index(fill["month"]) + 1
        y = int(fill["year"])
        fill["start"] = f"{y}-{mo:02d}-01"
        fill["end"] = f"{y + mo // 12}-{mo % 12 + 1:02d}-01"
    if "year" in fill:
        fill["next_year"] = str(int(fill["year"]) + 1)
    return sql.format(**fill)


def generate(pv: str, rng: random.Random) -> tuple[Messages, dict[str, Any], str]:
    """An analyst's question from a template; (messages, metadata, the SQL)."""
    questions, sql = rng.choice(SQL_TEMPLATES)
    slots = {"country": rng.choice(COUNTRIES), "month": rng.choice(MONTHS),
             "year": str(rng.randint(2023, 2026)), "n": str(rng.choice((3, 5, 10, 20))),
             "category": rng.choice(CATEGORIES), "status": rng.choice(STATUSES)}
    template = rng.choice(questions)
    question = template.format(**slots)
    used = {k: v for k, v in slots.items() if "{" + k + "}" in template}
    return (chat(SYSTEM_PROMPTS[pv], question),
            {"dashboard": rng.choice(("growth", "finance", "ops", "adhoc"))},
            _render(sql, used))


def solve(user: str, verbosity: float = 1.0) -> str:
    """The template's SQL with the question's values filled in."""
    for pattern, sql in _PATTERNS:
        if m := pattern.search(user):
            return _render(sql, m.groupdict())
    return "SELECT 1;"


def wrong(user: str, rng: random.Random, verbosity: float = 1.0) -> str:
    """A typical slip: a dropped GROUP BY, wrong column or table names, prose around."""
    right = solve(user)
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


def drift(answer: str, rng: random.Random) -> str:
    """The SQL in code fences."""
    return f"```sql\n{answer}\n```"


def judgeable(question: str) -> bool:
    """A question of one of the templates."""
    return any(pattern.search(question) for pattern, _ in _PATTERNS)


register(Workload(
    kind="sql", endpoint="/analytics/text-to-sql", production_model="openai/gpt-5-mini",
    system_prompts=SYSTEM_PROMPTS, reference_rate=0.50, max_tokens=2048, temperature=0.0,
    reasoning_note="Identify the tables and joins the question needs, then the filters and grouping. ",
    generate=generate, solve=solve, wrong=wrong, drift=drift, judgeable=judgeable))
