"""prefect.yaml, checked the way `prefect deploy` does not: every parameter a deployment fixes must
be one its flow takes and of a type it accepts; the schedule runs in the configured timezone; every
deployment runs on the one work pool defined; every flow's name says it is replaybench's."""

from __future__ import annotations

import inspect
import re

import pytest
import yaml

from replaybench.config import load_settings

from .conftest import ROOT

PREFECT_YAML = ROOT / "prefect.yaml"


def deployments() -> list[dict]:
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


def load_flow(entrypoint: str):
    from prefect.flows import load_flow_from_entrypoint

    return load_flow_from_entrypoint(str(ROOT / entrypoint))


# What a user passes at run time (`--param`), on top of what the deployment fixes
RUN_TIME = {"backfill": {"start_date": "2026-11-01", "end_date": "2026-11-07"}}


def parameter_problems(flow, params: dict) -> list[str]:
    """What is wrong with `params` for `flow`: unknown names, missing or refused values."""
    from prefect.exceptions import ParameterTypeError, SignatureMismatchError

    known = inspect.signature(flow.fn).parameters
    problems = [f"{name!r} is not a parameter of {flow.name} (it takes {', '.join(known)})"
                for name in params if name not in known]
    try:
        flow.validate_parameters(params)
    except (ParameterTypeError, SignatureMismatchError) as exc:
        problems.append(" ".join(str(exc).split()))
    return problems


def test_prefect_parses_the_file():
    from prefect.cli.deploy._models import PrefectYamlModel  # what `prefect deploy` reads it into

    model = PrefectYamlModel.model_validate(yaml.safe_load(PREFECT_YAML.read_text()))
    assert [d.name for d in model.deployments] == [d["name"] for d in deployments()]
    assert {d["name"] for d in deployments()} == {"nightly", "backfill"}


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["name"])
def test_fixed_parameters_are_ones_the_flow_takes(deployment):
    flow = load_flow(deployment["entrypoint"])
    assert flow.name == f"replaybench-{deployment['name']}"  # 'replaybench-backfill/backfill'
    params = {**deployment.get("parameters", {}), **RUN_TIME.get(deployment["name"], {})}
    assert parameter_problems(flow, params) == []


def test_the_check_catches_a_misspelled_or_mistyped_parameter():
    backfill = load_flow("flows/backfill.py:backfill")
    dates = RUN_TIME["backfill"]
    problems = parameter_problems(backfill, {**dates, "config": "replaybench.yaml", "paralel": 2})
    assert problems and "'paralel' is not a parameter of replaybench-backfill" in problems[0]
    assert parameter_problems(backfill, {**dates, "parallel": "two"})  # not an int
    assert parameter_problems(backfill, {"config": "replaybench.yaml"})  # no dates: cannot run
    # a flow without **kwargs: Prefect refuses unknown names too, the check does not hinge on it
    assert parameter_problems(load_flow("flows/nightly.py:nightly"), {"run_dat": "2026-11-28"})


def test_backfill_fixes_no_dates_and_takes_them_as_the_cli_passes_them():
    deployment = next(d for d in deployments() if d["name"] == "backfill")
    assert set(deployment["parameters"]) == {"config", "parallel"}
    flow = load_flow(deployment["entrypoint"])
    # `prefect deployment run 'replaybench-backfill/backfill' --param start_date=2026-11-01`
    # sends a string
    params = flow.validate_parameters({**deployment["parameters"], "start_date": "2026-11-01",
                                       "end_date": "2026-11-07"})
    assert params["start_date"].isoformat() == "2026-11-01"
    assert parameter_problems(flow, {**deployment["parameters"], "start_date": "01/11/2026",
                                     "end_date": "2026-11-07"})


def test_backfills_queue_rather_than_cancel_one_another():
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    limit = next(d for d in deployments() if d["name"] == "backfill")["concurrency_limit"]
    assert limit["limit"] == 1
    assert ConcurrencyLimitStrategy(limit["collision_strategy"]) == ConcurrencyLimitStrategy.ENQUEUE


def test_the_nightly_schedule_parses_and_runs_in_the_configured_timezone():
    from prefect.client.schemas.schedules import CronSchedule

    nightly = next(d for d in deployments() if d["name"] == "nightly")
    [schedule] = nightly["schedules"]
    assert schedule["timezone"] == load_settings(ROOT / "replaybench.yaml").timezone
    assert CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"]).cron == schedule["cron"]
    with pytest.raises(ValueError):  # the same check refuses a broken one
        CronSchedule(cron="30 25 * * *", timezone=schedule["timezone"])


def test_every_deployment_runs_on_the_one_work_pool_defined():
    raw = yaml.safe_load(PREFECT_YAML.read_text())
    pool = raw["definitions"]["work_pool"]
    assert pool["name"] == "replaybench"
    for deployment in deployments():
        assert deployment["work_pool"] == pool, deployment["name"]
    assert "prefect work-pool create replaybench --type process" in PREFECT_YAML.read_text()


def test_every_flow_is_named_so_that_it_cannot_collide_in_a_shared_workspace():
    """A Prefect workspace is shared by many projects, and a deployment is addressed by its flow's
    name (`prefect deployment run 'replaybench-backfill/backfill'`): every @flow here is named
    replaybench-*, and the prefect.yaml examples use those names."""
    import importlib

    from prefect import Flow

    modules = [p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
               for folder in ("flows", "tasks") for p in sorted((ROOT / folder).glob("*.py"))]
    flows = {name: obj for m in modules for name, obj in vars(importlib.import_module(m)).items()
             if isinstance(obj, Flow)}
    assert {"nightly", "backfill", "replay_on_dask"} <= set(flows)
    assert {f.name for f in flows.values() if not f.name.startswith("replaybench-")} == set()
    text = PREFECT_YAML.read_text() + (ROOT / "docs" / "prefect.md").read_text()
    for run in re.findall(r"prefect deployment run '([^']+)'", text):
        flow_name, deployment = run.split("/")
        assert flow_name == f"replaybench-{deployment}", run
