from datetime import date

from replaybench import runs
from replaybench.config import load_settings
from replaybench.ingest import ingest_paths
from replaybench.sample import draw_sample
from replaybench.warehouse import open_warehouse

from .conftest import write_config


def _sample(tmp_path, demo_slice, seed, name):
    folder = tmp_path / name
    folder.mkdir()
    settings = load_settings(write_config(folder, sample={"per_prompt_version": 25, "seed": seed}))
    ingest_paths(settings.warehouse, [demo_slice])
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date(2026, 11, 28), "nightly")
        sizes = draw_sample(wh, settings, run)
        ids = [r[0] for r in wh.execute("SELECT request_id FROM samples ORDER BY 1").fetchall()]
        window = wh.execute("SELECT min(l.ts), max(l.ts) FROM samples JOIN logs l USING "
                            "(request_id)").fetchone()
    return sizes, ids, window, run


def test_same_seed_same_sample_and_size_per_prompt_version(tmp_path, demo_slice):
    sizes, ids_a, window, run = _sample(tmp_path, demo_slice, 7, "a")
    _, ids_b, _, _ = _sample(tmp_path, demo_slice, 7, "b")
    _, ids_c, _, _ = _sample(tmp_path, demo_slice, 8, "c")
    assert ids_a == ids_b
    assert ids_a != ids_c
    assert len(sizes) >= 5 and all(n == 25 for n in sizes.values())
    assert window[0] >= run.window_start and window[1] < run.window_end


def test_sampling_again_adds_nothing(tmp_path, demo_slice):
    settings = load_settings(write_config(tmp_path))
    ingest_paths(settings.warehouse, [demo_slice])
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date(2026, 11, 28), "nightly")
        first = draw_sample(wh, settings, run)
        assert draw_sample(wh, settings, run) == first


def _settings(tmp_path, demo_slice, name, **sample):
    folder = tmp_path / name
    folder.mkdir()
    settings = load_settings(write_config(folder, sample={"seed": 7, **sample}))
    ingest_paths(settings.warehouse, [demo_slice])
    return settings


def test_proportional_allocation_follows_traffic_with_a_minimum(tmp_path, demo_slice):
    settings = _settings(tmp_path, demo_slice, "p", allocation="proportional", size=300,
                         min_per_prompt_version=60)
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date(2026, 11, 28), "nightly")
        sizes = draw_sample(wh, settings, run)
        mix = dict(wh.execute("SELECT prompt_version, requests FROM traffic_mix").fetchall())
    assert set(sizes) == set(mix)
    for pv, n in sizes.items():
        share = mix[pv] / sum(mix.values())
        assert n == min(mix[pv], max(60, round(300 * share)))
    busiest = max(mix, key=mix.get)
    assert sizes[busiest] == max(sizes.values())


def test_filters_narrow_what_can_be_sampled(tmp_path, demo_slice):
    settings = _settings(tmp_path, demo_slice, "f", per_prompt_version=500,
                         filter={"endpoints": ["/support/triage"], "successful_only": True})
    with open_warehouse(settings.warehouse) as wh:
        run = runs.begin(wh, settings, date(2026, 11, 28), "nightly")
        sizes = draw_sample(wh, settings, run)
        bad = wh.execute("SELECT count(*) FROM samples JOIN logs USING (request_id) "
                         "WHERE endpoint <> '/support/triage' OR status <> 'ok'").fetchone()[0]
        eligible = wh.execute("SELECT count(*) FROM logs WHERE endpoint = '/support/triage' AND "
                              "status = 'ok' AND ts >= $s AND ts < $e",
                              {"s": run.window_start, "e": run.window_end}).fetchone()[0]
    assert set(sizes) == {"triage@v3", "triage@v4"} and bad == 0
    assert sum(sizes.values()) == eligible  # the quota exceeds what there is: all of it


def test_the_sample_is_stable_when_new_rows_arrive(tmp_path, demo_slice):
    settings = _settings(tmp_path, demo_slice, "s", per_prompt_version=20)
    with open_warehouse(settings.warehouse) as wh:
        first = runs.begin(wh, settings, date(2026, 11, 28), "nightly")
        draw_sample(wh, settings, first)
        # late-arriving rows for the same day: each displaces at most one old row of its stratum
        wh.execute("INSERT INTO logs SELECT * REPLACE (request_id || '-late' AS request_id) "
                   "FROM logs WHERE ts >= $s AND ts < $e USING SAMPLE 10 ROWS",
                   {"s": first.window_start, "e": first.window_end})
        second = runs.begin(wh, settings, date(2026, 11, 28), "nightly", force=True)
        draw_sample(wh, settings, second)
        a, b = ({r[0] for r in wh.execute("SELECT request_id FROM samples WHERE run_id = $r",
                                          {"r": run.run_id}).fetchall()} for run in (first, second))
    assert len(a) == len(b) and len(a - b) <= 10
