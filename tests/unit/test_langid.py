"""Language identification on real parallel prompts: MultiJail (10 languages) and TruthfulQA-multi (5).

Measured with the defaults (min_chars=4, min_confidence=0.5); "accuracy" counts ``und`` as a miss:

| set | language | accuracy | und | right among labelled |
|---|---|---|---|---|
| MultiJail | en zh it vi ar ko th bn sw | 0.965-1.000 | 0-3.2% | 0.997-1.000 |
| MultiJail | jv (Javanese) | 0.844 | 14.6% | 0.989 |
| TruthfulQA-multi | en es ca eu | 0.947-0.991 | 0.9-5.1% | 0.995-1.000 |
| TruthfulQA-multi | gl (Galician) | 0.830 | 16.0% | 0.988 (misses go to pt, es) |

Weak: Javanese and Galician, which the model confuses with Malay / Portuguese and Spanish; the confidence floor
turns most of those confusions into ``und`` rather than wrong labels. Floors below sit a little under the measures.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from prefgate.langid import _identifier, detect_language, detect_languages

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")

MULTIJAIL_FLOORS = {
    "en": 0.95,
    "zh": 0.97,
    "it": 0.97,
    "vi": 0.99,
    "ar": 0.98,
    "ko": 0.99,
    "th": 0.99,
    "bn": 0.99,
    "sw": 0.97,
    "jv": 0.80,  # weak
}
TRUTHFULQA_FLOORS = {"en": 0.93, "es": 0.93, "ca": 0.93, "eu": 0.98, "gl": 0.80}  # gl weak


@pytest.fixture(scope="module")
def multijail() -> pl.DataFrame:
    path = DATA / "multijail" / "MultiJail.csv"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    return pl.read_csv(path, encoding="utf8-lossy")


def truthfulqa(lang: str) -> pl.Series:
    path = DATA / "truthfulqa-multi" / lang / "validation.json.gz"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    with gzip.open(path) as fh:
        return pl.Series([row["question"] for row in json.load(fh)])


def check(texts: pl.Series, lang: str, floor: float) -> None:
    out = detect_languages(texts)
    assert out.height == texts.len()
    accuracy = (out["language"] == lang).mean()
    labelled = out.filter(pl.col("language") != "und")
    assert accuracy is not None and accuracy >= floor, (lang, accuracy)
    assert (labelled["language"] == lang).mean() >= 0.98, lang  # a label, when given, is nearly always right
    assert labelled["language_confidence"].min() >= 0.5  # type: ignore[operator]


@pytest.mark.parametrize("lang", list(MULTIJAIL_FLOORS))
def test_multijail_accuracy(multijail: pl.DataFrame, lang: str) -> None:
    check(multijail[lang], lang, MULTIJAIL_FLOORS[lang])


@pytest.mark.parametrize("lang", list(TRUTHFULQA_FLOORS))
def test_truthfulqa_multi_accuracy(lang: str) -> None:
    check(truthfulqa(lang), lang, TRUTHFULQA_FLOORS[lang])


def test_short_null_and_low_confidence_text_is_undetermined() -> None:
    out = detect_languages(pl.Series(["ok", None, "   a b  ", "The quick brown fox jumps over the lazy dog."]))
    assert out.columns == ["language", "language_confidence"]
    assert out["language"].to_list() == ["und", "und", "und", "en"]
    assert out["language_confidence"].to_list()[:3] == [0.0, 0.0, 0.0]
    assert detect_language("Hola", min_confidence=0.9999)[0] == "und"
    assert detect_languages(pl.Series([], dtype=pl.String)).height == 0


def test_dialect_labels_fold_into_the_iso_639_1_macrolanguage(multijail: pl.DataFrame) -> None:
    raw = [_identifier().classify(t)[0] for t in multijail["zh"].to_list() + multijail["ar"].to_list()]
    dialect = [
        t
        for t, r in zip(multijail["zh"].to_list() + multijail["ar"].to_list(), raw, strict=True)
        if r in {"wuu", "yue", "ary", "arz"}
    ]
    assert dialect, "the raw model labels some MultiJail zh/ar prompts with a dialect code"
    folded = {detect_language(t, min_confidence=0.0)[0] for t in dialect}
    assert folded <= {"zh", "ar"}
