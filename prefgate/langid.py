"""Language identification of prompts, for language slices and quotas in curation.

py3langid (a numpy port of Lui & Baldwin's langid.py, 97 languages plus a few dialect labels) with normalised
probabilities: its softmax is tempered by sqrt(text bytes), so short or mixed text gets a low confidence instead of
a confident guess. Labels are ISO 639-1 codes; the model's dialect labels are folded into their ISO 639-1
macrolanguage (Wu and Cantonese -> ``zh``, Moroccan and Egyptian Arabic -> ``ar``, Southern Uzbek -> ``uz``), and
languages without an ISO 639-1 code keep the model's ISO 639-3 code (e.g. ``pcm``, ``ace``). ``und`` (undetermined)
marks text that is too short, has no linguistic content (``zxx``), or whose best label is below the confidence floor.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import polars as pl

UNDETERMINED = "und"
_MACROLANGUAGE = {"wuu": "zh", "yue": "zh", "ary": "ar", "arz": "ar", "uzs": "uz", "zxx": UNDETERMINED}


@lru_cache(maxsize=1)
def _identifier() -> Any:
    """py3langid's identifier with normalised probabilities (loaded once per process, ~0.1 s)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str | None, *, min_chars: int = 4, min_confidence: float = 0.5) -> tuple[str, float]:
    """(language, confidence) of one text; ``("und", confidence)`` when it cannot be told reliably.

    ``min_chars`` counts non-whitespace characters; below it the confidence is 0.0 and no guess is made.
    """
    if text is None or sum(not c.isspace() for c in text) < min_chars:
        return UNDETERMINED, 0.0
    label, confidence = _identifier().classify(text)
    label = _MACROLANGUAGE.get(label, label)
    if confidence < min_confidence:
        return UNDETERMINED, float(confidence)
    return label, float(confidence)


def detect_languages(texts: pl.Series, *, min_chars: int = 4, min_confidence: float = 0.5) -> pl.DataFrame:
    """``language, language_confidence`` per text, row-aligned with ``texts`` (null text -> ``und``, 0.0).

    Defaults are measured on MultiJail (10 languages) and TruthfulQA-multi (5): at ``min_confidence=0.5`` about
    95% of prompts get a label and 99.6% of those labels are right; ``und`` takes the rest.
    """
    results = [detect_language(t, min_chars=min_chars, min_confidence=min_confidence) for t in texts.to_list()]
    return pl.DataFrame(
        {
            "language": [r[0] for r in results],
            "language_confidence": [r[1] for r in results],
        },
        schema={"language": pl.String, "language_confidence": pl.Float64},
    )
