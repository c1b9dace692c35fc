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


def relabel(doc, max_chars: int = 2000) -> bool:
    """Recompute the label of a document that language ID labelled (``meta.lang_score`` set) after a
    step rewrote its text; the old label goes to ``meta.lang_relabelled_from`` when it changes.
    Returns whether it changed. Steps that drop lines after language ID call this."""
    if "lang_score" not in doc.meta or not doc.text.strip():
        return False
    lang, score = detect_language(doc.text, max_chars)
    doc.meta["lang_score"] = round(score, 4)
    if lang == doc.lang:
        return False
    doc.meta.setdefault("lang_relabelled_from", doc.lang)
    doc.lang = lang
    return True
