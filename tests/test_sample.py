from datetime import date

from replaybench import runs
from replaybench.config import load_settings
from replaybench.warehouse import open_warehouse
from tasks.ingest import ingest_paths
from tasks.sample import draw_sample

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
