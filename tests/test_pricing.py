from datetime import date

import pytest

from replaybench.config import Candidate
from replaybench.errors import ConfigError
from replaybench.pricing import PriceTable


def table(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("""version: "2026-11"
models:
  glm-5.2:
    - {effective_from: 2026-09-01, input: 0.60, cached_input: 0.11, output: 2.20}
    - {effective_from: 2026-11-15, input: 0.40, cached_input: 0.08, output: 1.80}
  gpt-5-mini:
    - {effective_from: 2025-08-07, input: 0.25, output: 2.00}
""")
    return PriceTable.load(path)


def test_a_day_is_costed_at_the_prices_in_force_that_day(tmp_path):
    prices = table(tmp_path)
    glm = Candidate(name="glm-5.2", base_url="http://x/v1", model="glm-5.2")
    before, after = prices.costing(glm, date(2026, 11, 14)), prices.costing(glm, date(2026, 11, 15))
    assert before.price.output == 2.20 and after.price.output == 1.80
    assert before.version.endswith("@2026-09-01") and after.version.endswith("@2026-11-15")
    assert prices.costing(glm, date(2026, 8, 1)) is None  # before any entry: unknown, not free


def test_cached_input_is_charged_at_its_own_price(tmp_path):
    costing = table(tmp_path).costing(
        Candidate(name="glm-5.2", base_url="http://x/v1", model="glm-5.2"), date(2026, 10, 1))
    # 1,000 input of which 400 cached, 100 output: 600 × 0.60 + 400 × 0.11 + 100 × 2.20 per 1M
    assert costing.cost(1000, 400, 100) == pytest.approx((600 * 0.60 + 400 * 0.11 + 100 * 2.20) / 1e6)
    no_cache_price = table(tmp_path).costing(
        Candidate(name="m", base_url="http://x/v1", model="openai/gpt-5-mini"), date(2026, 10, 1))
    assert no_cache_price.cost(1000, 400, 0) == pytest.approx(1000 * 0.25 / 1e6)


def test_a_replay_of_production_is_priced_per_logged_model(tmp_path):
    prod = Candidate(name="production-replay", base_url="http://x/v1", model="@logged")
    assert table(tmp_path).costing(prod, date(2026, 10, 1), "gpt-5-mini").price.input == 0.25


def test_a_broken_price_table_is_a_clear_error(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("models: {glm: [{input: 1}]}\n")
    with pytest.raises(ConfigError, match="price table .* is invalid"):
        PriceTable.load(path)
