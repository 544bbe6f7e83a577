from pathlib import Path

import pytest

from replaybench.config import as_settings, load_settings
from replaybench.errors import ConfigError, scrub

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_config_loads_and_resolves_paths():
    s = load_settings(ROOT / "replaybench.yaml")
    assert s.timezone == "Europe/Berlin"
    assert [c.name for c in s.candidates] == ["glm-5.2", "deepseek-v4-pro", "minimax-m3",
                                              "production-replay"]
    assert s.candidates[-1].replays_production
    assert s.warehouse.is_absolute() and s.warehouse.parent == ROOT / "data"
    assert s.sources and all(Path(src.path).is_file() for src in s.sources)


def test_misspelled_key_is_named_with_a_suggestion(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("candidates:\n  - {name: a, base_url: 'http://x/v1', model: m, max_concurency: 3}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert "candidates.0.max_concurency" in str(exc.value)
    assert "max_concurrency" in str(exc.value)


@pytest.mark.parametrize(("text", "message"), [
    ("timezon: Europe/Berlin\n", "unknown key 'timezon'.*did you mean 'timezone'"),
    ("timezone: Mars/Olympus\n", "unknown timezone"),
    ("candidates:\n  - {name: a, base_url: 'http://x/v1', model: m, provider: gemini}\n",
     "unknown provider 'gemini'; known: anthropic, openai"),
], ids=["unknown top-level key", "bad timezone", "unknown provider"])
def test_unknown_key_bad_timezone_or_provider(tmp_path, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_api_key_comes_from_the_environment_and_is_scrubbed(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("candidates:\n  - {name: a, base_url: 'http://x/v1', model: m, "
                   "api_key_env: RB_TEST_KEY}\n")
    s = load_settings(cfg)
    monkeypatch.delenv("RB_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="No RB_TEST_KEY in the environment"):
        s.api_key(s.candidates[0])
    monkeypatch.setenv("RB_TEST_KEY", "sk-test-RECOGNISABLE-0123456789")
    assert s.api_key(s.candidates[0]) == "sk-test-RECOGNISABLE-0123456789"
    assert "RECOGNISABLE" not in scrub("failed with key sk-test-RECOGNISABLE-0123456789")


def test_window_is_local_midnight_to_midnight(tmp_path):
    from datetime import date

    cfg = tmp_path / "c.yaml"
    cfg.write_text("timezone: Europe/Berlin\n")
    start, end = load_settings(cfg).window(date(2026, 11, 28))
    assert start.isoformat() == "2026-11-26T23:00:00+00:00"
    assert end.isoformat() == "2026-11-27T23:00:00+00:00"


def test_fleet_redirect_only_moves_fleet_candidates(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("candidates:\n"
                   "  - {name: a, base_url: 'http://127.0.0.1:8400/v1', model: m}\n"
                   "  - {name: b, base_url: 'https://api.example.com/v1', model: m}\n")
    s = load_settings(cfg).with_fleet("http://127.0.0.1:5555/v1")
    assert [c.base_url for c in s.candidates] == ["http://127.0.0.1:5555/v1",
                                                 "https://api.example.com/v1"]


def test_settings_parsed_once_are_handed_down_as_they_are():
    """A flow takes the settings its caller parsed; a flow run's parameters hold them as JSON
    (durations as seconds), which reads back to the same settings without the file."""
    from flows.nightly import nightly

    s = load_settings(ROOT / "replaybench.yaml")
    assert as_settings(s) is s
    assert as_settings(ROOT / "replaybench.yaml") == s
    stored = nightly.serialize_parameters({"config": s})["config"]
    assert as_settings(stored) == s.model_copy(update={"source": None})
    assert as_settings(stored).config_hash() == s.config_hash()
