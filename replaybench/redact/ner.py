"""Names and places through Presidio's spaCy recognizer (the optional `ner` extra): which model to
use, and the recognizer, loaded once per process."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path

# spaCy models tried, in this order, when none is named: each is installed as a package of that name
NER_MODELS: tuple[str, ...] = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_trf")
_NER_KINDS = {"PERSON": "PERSON", "LOCATION": "LOCATION"}   # Presidio entity -> placeholder kind
_NER_EXTRA = ("pip install 'replaybench[ner]' and a spaCy model package (e.g. en_core_web_lg, from "
              "spaCy's own releases: it is not on PyPI)")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def find_ner_model(models: Iterable[str] | None = None) -> str | None:
    """The first installed model of `models` (default `NER_MODELS`), when presidio-analyzer and spaCy
    are installed too; None otherwise. Nothing is imported."""
    if not (_installed("presidio_analyzer") and _installed("spacy")):
        return None
    return next((m for m in (NER_MODELS if models is None else models) if _installed(m)), None)


def choose_ner_model(ner: bool | str | None) -> str | None:
    """The spaCy model a `Redactor(ner=...)` uses (None: none); an error naming what to install
    when `ner` insists on one that is not there."""
    if ner is False:
        return None
    if ner is None:
        return find_ner_model()
    if ner is True:
        model = find_ner_model()
        if model is None:
            raise ValueError(f"redaction of names and places needs Presidio and a spaCy model: "
                             f"{_NER_EXTRA}")
        return model
    # a model named by its package or its folder
    engine = _installed("presidio_analyzer") and _installed("spacy")
    if not (engine and (_installed(ner) or Path(ner).is_dir())):
        raise ValueError(f"spaCy model {ner!r} for redaction is not installed: {_NER_EXTRA}")
    return ner


_PRESIDIO: dict[str, Callable[[str], list[tuple[int, int, str]]]] = {}


def presidio_recognizer(model: str) -> Callable[[str], list[tuple[int, int, str]]]:
    """Presidio's spaCy recognizer for PERSON and LOCATION on `model`, loaded once per process."""
    found = _PRESIDIO.get(model)
    if found is None:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
        # loaded here: Presidio's own `load()` downloads a model it does not find as a package
        # under that distribution name, and nothing is to be downloaded at run time
        engine.nlp = {"en": spacy.load(model)}
        # only the NER recognizer: Presidio's pattern recognizers repeat the built-in detectors
        registry = RecognizerRegistry(
            recognizers=[SpacyRecognizer(supported_language="en", supported_entities=list(_NER_KINDS))],
            supported_languages=["en"])
        analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])

        def recognize(text: str) -> list[tuple[int, int, str]]:
            results = analyzer.analyze(text=text, language="en", entities=list(_NER_KINDS),
                                       score_threshold=0.5)
            return [(r.start, r.end, _NER_KINDS[r.entity_type]) for r in results]

        found = _PRESIDIO[model] = recognize
    return found
