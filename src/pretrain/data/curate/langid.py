"""Language identification with py3langid (Lui & Baldwin 2012, langid.py; 97 languages, model shipped
inside the package). Scores are normalized probabilities in [0, 1]."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _identifier():
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("language ID needs py3langid: pip install py3langid") from exc
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str, max_chars: int = 2000) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the text's first ``max_chars`` characters."""
    lang, score = _identifier().classify(text[:max_chars])
    return str(lang), float(score)
