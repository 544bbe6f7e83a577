import yaml

from replaybench.config import Candidate
from replaybench.decide.extras import (
    litellm_canary,
    monthly_projection,
    pareto_frontier,
    trend,
)


def test_the_frontier_keeps_only_models_nobody_beats_on_both_axes():
    rows = [{"model": "production", "pass_rate": 0.90, "cost_per_task_usd": 0.010},
            {"model": "cheap", "pass_rate": 0.85, "cost_per_task_usd": 0.001},
            {"model": "worse-and-dearer", "pass_rate": 0.80, "cost_per_task_usd": 0.020},
            {"model": "best", "pass_rate": 0.95, "cost_per_task_usd": 0.030},
            {"model": "twin", "pass_rate": 0.90, "cost_per_task_usd": 0.010}]
    assert pareto_frontier(rows) == {"production", "cheap", "best", "twin"}


def test_monthly_projection_at_production_volume():
    p = monthly_projection({"cost_per_task_usd": 0.002}, {"cost_per_task_usd": 0.005}, 30_000)
    assert p["monthly_cost_usd"] == 60.0 and p["monthly_saving_usd"] == 90.0
    assert monthly_projection({"cost_per_task_usd": None}, None, 100) is None


def test_trend():
    history = [{"pass_rate": r} for r in (0.90, 0.91, 0.89, 0.90, 0.70)]
    t = trend(history)
    assert t["runs"] == 5 and round(t["change"], 3) == -0.2


def test_the_canary_snippet_is_a_litellm_router_with_95_5_weights_and_no_secret():
    cand = Candidate(name="glm-5.2", base_url="https://api.z.ai/api/paas/v4", model="glm-5.2",
                     api_key_env="ZAI_API_KEY")
    text = litellm_canary("triage@v4", "openai/gpt-5-mini", cand)
    config = yaml.safe_load(text)
    weights = [m["litellm_params"]["weight"] for m in config["model_list"]]
    assert weights == [95, 5]
    assert {m["model_name"] for m in config["model_list"]} == {"triage-v4"}
    assert config["model_list"][1]["litellm_params"]["api_key"] == "os.environ/ZAI_API_KEY"
    assert config["router_settings"]["routing_strategy"] == "simple-shuffle"
