"""Build prefgate's bundled sample landing folder from the shared public data sets.

The sample is a small (< 3.5 MB), deterministic subset of real, public preference,
judge and safety data, laid out under ``data/sample/landing/`` exactly as
``config/sources.yaml`` expects:

* ``prompts/``: LLMFAO prompts and MT-Bench questions (verbatim copies);
* ``pairs/``: LLMFAO, MT-Bench, PandaLM and HH-RLHF response pairs;
* ``human_labels/<date>/``: LLMFAO crowd votes (three daily batches), MT-Bench expert
  votes, PandaLM annotator labels;
* ``judge_labels/<date>/``: GPT-4 / GPT-3.5 verdicts on LLMFAO, GPT-4 verdicts on
  MT-Bench, GPT-3.5 and PandaLM-7B verdicts on PandaLM;
* ``eval/``: XSTest, AdvBench, TruthfulQA and MultiJail prompt lists (verbatim copies;
  MultiJail without its UTF-8 BOM).

Values and column names are the sources' own; only rows (and for some files fields)
are subset. The two derivations are documented in the generated
``data/sample/PROVENANCE.md``: PandaLM ``model1``/``model2`` are ``cmp_key`` split on
its first ``_``, and HH-RLHF lines get a ``subset`` field holding the source folder.
The ``<date>`` folder names are synthetic: no upstream set carries timestamps.

Every input is checked against the sha256 recorded in the shared ``PROVENANCE.md``
files, so a changed input fails loudly instead of silently changing the sample. The
output is byte-for-byte reproducible: no timestamps, no randomness, no network.
``landing/`` and ``licenses/`` under the output folder are owned by this script and
are deleted and rebuilt on every run; ``PROVENANCE.md`` is rewritten.

Usage::

    .venv/bin/python scripts/build_sample.py [--source DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path("/work/shared/data")
DEFAULT_OUT = REPO_ROOT / "data" / "sample"

# Selection parameters (documented in PROVENANCE.md).
LLMFAO_N_PAIRS = 300
LLMFAO_MIN_VOTES = 3
LLMFAO_CROWD_DATES = ("2026-11-02", "2026-11-03", "2026-11-04")
LLMFAO_JUDGE_DATE = "2026-11-02"
MTBENCH_TURN = 1
MTBENCH_MIN_VOTES = 2
MTBENCH_MAX_ITEMS = 250
MTBENCH_DATE = "2026-11-03"
PANDALM_N_ROWS = 300
PANDALM_DATE = "2026-11-04"
HH_RLHF_LINES = (("helpful-base", 150), ("harmless-base", 100))

UTF8_BOM = b"\xef\xbb\xbf"
PAIR_ARITY = 2

# sha256 of each input as recorded in /work/shared/data/*/PROVENANCE.md (those tables
# give 16-hex prefixes; the full digest where one is given).
EXPECTED_SHA256: dict[str, str] = {
    "llmfao/prompts.jsonl": "917d233b18976244",
    "llmfao/pairs-crowd.jsonl.gz": "f195c7b4e6380888",
    "llmfao/crowd-comparisons.csv": "106564a4bf06f047",
    "llmfao/gpt4-crowd-comparisons.csv": "86553cbbcb15b030",
    "llmfao/gpt3-crowd-comparisons.csv": "3f1f1a259acbee6c",
    "llmfao/LICENSE.CC-BY": "9ba9550ad48438d0",
    "mtbench-human-gpt4/question.jsonl": "119565adbab82227",
    "mtbench-human-gpt4/mtbench_human_gpt4_votes.jsonl.gz": "9e1aa8bca7611282",
    "mtbench-human-gpt4/LICENSE": "46baf3b59b175b7c",
    "pandalm-testset/testset-v1.json": "cc154f9067c7382d",
    "pandalm-testset/gpt-3.5-turbo-testset-v1.json": "4c00aa7b3eeae504",
    "pandalm-testset/pandalm-7b-testset-v1.json": "9a40b62a7bb2aa87",
    "pandalm-testset/LICENSE": "4670bc86a291c1bf",
    "hh-rlhf-test/helpful-base/test.jsonl.gz": ("8be3fc1a13b27901631696f2be6f184c799f1baeaf145f53ac5db24960adc37b"),
    "hh-rlhf-test/harmless-base/test.jsonl.gz": "ebfaaed21162a4de",
    "hh-rlhf-test/LICENSE": "d4fb18db48757e27",
    "xstest/xstest_prompts.csv": "11783fb294ed0174",
    "xstest/LICENSE": "9e5f1b3c610b9c2d",
    "advbench/harmful_behaviors.csv": "6cd1a5c63c07610d",
    "advbench/LICENSE": "1e4bb8e2313ef9ff",
    "truthfulqa/TruthfulQA.csv": "b8d8ef1e12f98b4f",
    "truthfulqa/LICENSE": "c71d239df91726fc",
    "multijail/MultiJail.csv": "2798ed6fe470b80b",
    "multijail/LICENSE": "1b995a4eb759b42d",
}
# sha256 of the *uncompressed* original llmfao pairs-crowd.jsonl (llmfao/PROVENANCE.md).
LLMFAO_PAIRS_RAW_SHA256 = "83c32e02deeb657e2b6a4cad7391c9bbabbd4f108f78392859b09eeb911ff04b"

# License files: sample dataset name -> shared path; copied to licenses/<name>-LICENSE.
LICENSE_FILES: dict[str, str] = {
    "llmfao": "llmfao/LICENSE.CC-BY",
    "mtbench": "mtbench-human-gpt4/LICENSE",
    "pandalm": "pandalm-testset/LICENSE",
    "hh-rlhf": "hh-rlhf-test/LICENSE",
    "xstest": "xstest/LICENSE",
    "advbench": "advbench/LICENSE",
    "truthfulqa": "truthfulqa/LICENSE",
    "multijail": "multijail/LICENSE",
}


@dataclass(frozen=True)
class Dataset:
    """Upstream facts for one data set, taken from the shared PROVENANCE.md files."""

    key: str
    title: str
    shared_folder: str
    source: str
    license: str
    attribution: str


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        key="llmfao",
        title="LLMFAO crowdsourced pairwise LLM comparisons + GPT-3.5/GPT-4 verdicts",
        shared_folder="llmfao",
        source=(
            "github.com/dustalov/llmfao @ `9e224e94a40129fd6e1e1529b962307e84af40da` "
            "(repository root files); also on Hugging Face as `dustalov/llmfao`"
        ),
        license=(
            "CC BY 4.0 for the data (`licenses/llmfao-LICENSE` = upstream "
            "`LICENSE.CC-BY`). The repository's code is GPLv3+; no code is included."
        ),
        attribution=(
            'Cite "LLMFAO" by Dmitry Ustalov (github.com/dustalov/llmfao; Hugging Face '
            '`dustalov/llmfao`), CC BY 4.0, and llmonitor.com, whose "Crowdsourced LLM '
            'Benchmark" supplied the prompts and model responses (CC BY 4.0). Changes: '
            "rows subset, pairs file decompressed, "
            "crowd votes split into three files."
        ),
    ),
    Dataset(
        key="mtbench",
        title="MT-Bench expert/author pairwise votes + GPT-4 pair verdicts; questions",
        shared_folder="mtbench-human-gpt4",
        source=(
            "github.com/Vibhanshu-555/Human-Aligned-LLM-Evaluation-Audit @ "
            "`d85394d71800d4d5081b5a18096f581aeeac4d66`: "
            "`data/processed/human_gpt_comparison.zip` (votes; regrouped per item into "
            "`mtbench_human_gpt4_votes.jsonl.gz` by the shared folder, see its "
            "PROVENANCE) and `data/raw/question.jsonl`. Upstream data: Hugging Face "
            "`lmsys/mt_bench_human_judgments` (splits `human`, `gpt4_pair`); questions: "
            "lm-sys/FastChat `fastchat/llm_judge/data/mt_bench/question.jsonl`"
        ),
        license=(
            "votes, verdicts and conversations CC BY 4.0 (LMSYS; the CC BY 4.0 legal "
            "code is the text in `licenses/llmfao-LICENSE`); intermediate repository "
            "MIT (`licenses/mtbench-LICENSE`, Copyright (c) 2025 Vibhanshu Dubey); "
            "`question.jsonl` Apache-2.0 (FastChat; the Apache-2.0 text is in "
            "`licenses/pandalm-LICENSE`)."
        ),
        attribution=(
            'LMSYS: Zheng et al., "Judging LLM-as-a-Judge with MT-Bench and Chatbot '
            'Arena", NeurIPS 2023 Datasets and Benchmarks; data '
            "`lmsys/mt_bench_human_judgments`, CC BY 4.0. Questions from lm-sys/FastChat "
            "(Apache-2.0). Join prepared by Vibhanshu Dubey (MIT). Changes: items "
            "subset, fields split into three files."
        ),
    ),
    Dataset(
        key="pandalm",
        title="PandaLM human-annotated test set + GPT-3.5-turbo and PandaLM-7B outputs",
        shared_folder="pandalm-testset",
        source=(
            "github.com/WeOpenML/PandaLM @ `3871806e72b4832f815ecafd24d3503c73403f48`: "
            "`data/testset-v1.json`, `data/gpt-3.5-turbo-testset-v1.json`, "
            "`data/pandalm-7b-testset-v1.json`"
        ),
        license=(
            "Apache-2.0 (`licenses/pandalm-LICENSE`). Instructions and inputs come from "
            "the self-instruct human-eval set (yizhongw/self-instruct, Apache-2.0)."
        ),
        attribution=(
            'Wang et al., "PandaLM: An Automatic Evaluation Benchmark for LLM '
            'Instruction Tuning Optimization" (arXiv 2306.05087), '
            "github.com/WeOpenML/PandaLM, Apache-2.0. Changes (Apache-2.0 section 4b): "
            "rows subset, columns split into files, JSON converted to Parquet / JSON "
            "lines / CSV, two derived columns, boolean `true` responses written as the "
            'string "True" (see the notes below).'
        ),
    ),
    Dataset(
        key="hh-rlhf",
        title="Anthropic HH-RLHF test splits (chosen/rejected dialogues)",
        shared_folder="hh-rlhf-test",
        source=(
            "`harmless-base/test.jsonl.gz`: github.com/anthropics/hh-rlhf @ "
            "`354e5c3cb8960630860dd5774a6ac2a58313bf4d` (as is the `LICENSE`); "
            "`helpful-base/test.jsonl.gz`: mirror github.com/DaehanKim/EasyRLHF @ "
            "`45eccb72ddb8c18aa52dc2a184516380e06582fe`, "
            "`data/helpful-base/test.jsonl.gz`, byte-identical to upstream (its sha256 "
            "equals the upstream Git LFS oid `8be3fc1a…`)"
        ),
        license="MIT (`licenses/hh-rlhf-LICENSE`, Copyright (c) 2022 Anthropic).",
        attribution=(
            'Bai et al., "Training a Helpful and Harmless Assistant with Reinforcement '
            'Learning from Human Feedback" (arXiv 2204.05862), '
            "github.com/anthropics/hh-rlhf, MIT, Copyright (c) 2022 Anthropic."
        ),
    ),
    Dataset(
        key="xstest",
        title="XSTest safe/unsafe test prompts",
        shared_folder="xstest",
        source=(
            "github.com/paul-rottger/exaggerated-safety @ "
            "`d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d`: `xstest_prompts.csv`"
        ),
        license="CC BY 4.0 (`licenses/xstest-LICENSE`).",
        attribution=(
            'Röttger et al., "XSTest: A Test Suite for Identifying Exaggerated Safety '
            'Behaviours in LLMs", NAACL 2024; '
            "github.com/paul-rottger/exaggerated-safety, CC BY 4.0. Unchanged copy."
        ),
    ),
    Dataset(
        key="advbench",
        title="AdvBench harmful behaviors",
        shared_folder="advbench",
        source=(
            "github.com/llm-attacks/llm-attacks, upstream commit "
            "`0f505d82e25c15a83b6954db28191b69927a255d`, taken from the fork "
            "github.com/no-touch-fish/LLM-attack-ignore at that upstream commit: "
            "`data/advbench/harmful_behaviors.csv`"
        ),
        license="MIT (`licenses/advbench-LICENSE`, Copyright (c) 2023 Andy Zou).",
        attribution=(
            'Zou et al., "Universal and Transferable Adversarial Attacks on Aligned '
            'Language Models" (arXiv 2307.15043), github.com/llm-attacks/llm-attacks, '
            "MIT, Copyright (c) 2023 Andy Zou."
        ),
    ),
    Dataset(
        key="truthfulqa",
        title="TruthfulQA, current version (790 questions)",
        shared_folder="truthfulqa",
        source=(
            "github.com/sylinrl/TruthfulQA, upstream commit "
            "`d71c110897f5d31c5d7f309e7bc316c152f6f031`, taken from the fork "
            "github.com/koppula/TruthfulQA at that upstream commit: `TruthfulQA.csv`"
        ),
        license="Apache-2.0 (`licenses/truthfulqa-LICENSE`).",
        attribution=(
            'Lin, Hilton, Evans, "TruthfulQA: Measuring How Models Mimic Human '
            'Falsehoods", ACL 2022; github.com/sylinrl/TruthfulQA, Apache-2.0. '
            "Unchanged copy."
        ),
    ),
    Dataset(
        key="multijail",
        title="MultiJail unsafe prompts in English + 9 languages",
        shared_folder="multijail",
        source=(
            "github.com/DAMO-NLP-SG/multilingual-safety-for-LLMs @ "
            "`577ac511437e07a256130945ef312a99158a18ad`: `data/MultiJail.csv`"
        ),
        license=(
            "MIT (`licenses/multijail-LICENSE`, Copyright (c) 2023 Multilingual NLP Team at Alibaba DAMO Academy)."
        ),
        attribution=(
            'Deng et al., "Multilingual Jailbreak Challenges in Large Language Models", '
            "ICLR 2024; github.com/DAMO-NLP-SG/multilingual-safety-for-LLMs, MIT. "
            "English prompts sampled from Anthropic's red-team data and OpenAI's GPT-4 "
            "report, then translated. Change: UTF-8 BOM removed."
        ),
    ),
)


@dataclass
class Produced:
    """One file written into the landing folder and what PROVENANCE.md says about it."""

    rel: str
    dataset: str
    upstream_file: str
    rows: int
    selection: str
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------- helpers


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_source(source: Path, rel: str) -> bytes:
    """Read an input file and check it against the shared PROVENANCE sha256."""
    data = (source / rel).read_bytes()
    expected = EXPECTED_SHA256[rel]
    actual = sha256_bytes(data)
    if not actual.startswith(expected):
        msg = f"{rel}: sha256 {actual} does not match shared PROVENANCE {expected}…"
        raise ValueError(msg)
    return data


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def jsonl_lines(text: str) -> list[str]:
    """Split JSON-lines text into its non-empty lines (without terminators)."""
    return [line for line in text.split("\n") if line]


def dump_json(obj: object) -> str:
    """Serialise one JSON-lines record in the sources' style (defaults, UTF-8 kept)."""
    return json.dumps(obj, ensure_ascii=False)


def write_jsonl(path: Path, records: Iterable[object]) -> int:
    """Write records as JSON lines (LF, trailing newline); return the line count."""
    lines = [dump_json(r) for r in records]
    write_bytes(path, "".join(f"{line}\n" for line in lines).encode("utf-8"))
    return len(lines)


def csv_raw_records(text: str) -> tuple[str, list[tuple[dict[str, str], str]]]:
    """Split a one-record-per-line CSV into its header line and (record, line) pairs.

    Keeping the raw line lets a subset reproduce the source bytes exactly.
    """
    lines = text.splitlines(keepends=True)
    header = next(csv.reader([lines[0]]))
    records: list[tuple[dict[str, str], str]] = []
    for line in lines[1:]:
        parsed = list(csv.reader([line]))
        if len(parsed) != 1 or len(parsed[0]) != len(header):
            msg = f"CSV line is not exactly one record: {line!r}"
            raise ValueError(msg)
        records.append((dict(zip(header, parsed[0], strict=True)), line))
    return lines[0], records


def count_csv_records(data: bytes) -> int:
    """Count the data records (header excluded) of a CSV, honouring quoted newlines."""
    text = data.decode("utf-8-sig")
    return sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1


def fmt_counter(counter: Counter[Any]) -> str:
    """Render a counter as ``a` 3, `b` 2`` (most common first, ties by key)."""
    items = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return ", ".join(f"`{k}` {v}" for k, v in items)


# ------------------------------------------------------------------------ builders


def build_prompts(source: Path, landing: Path) -> list[Produced]:
    """Copy the LLMFAO prompts and the MT-Bench questions verbatim."""
    out: list[Produced] = []
    for rel, dest, dataset in (
        ("llmfao/prompts.jsonl", "prompts/llmfao-prompts.jsonl", "llmfao"),
        (
            "mtbench-human-gpt4/question.jsonl",
            "prompts/mtbench-questions.jsonl",
            "mtbench",
        ),
    ):
        data = read_source(source, rel)
        write_bytes(landing / dest, data)
        rows = len(jsonl_lines(data.decode("utf-8")))
        out.append(Produced(dest, dataset, rel.split("/", 1)[1], rows, "Verbatim copy (all rows)."))
    return out


def build_llmfao(source: Path, landing: Path) -> list[Produced]:
    """LLMFAO: 300 pairs, their crowd votes in three batches, both judges' verdicts."""
    raw_pairs = gzip.decompress(read_source(source, "llmfao/pairs-crowd.jsonl.gz"))
    if sha256_bytes(raw_pairs) != LLMFAO_PAIRS_RAW_SHA256:
        msg = "llmfao/pairs-crowd.jsonl.gz does not decompress to the recorded original"
        raise ValueError(msg)
    pair_lines = jsonl_lines(raw_pairs.decode("utf-8"))
    pairs = {int(json.loads(line)["id"]): line for line in pair_lines}

    crowd_text = read_source(source, "llmfao/crowd-comparisons.csv").decode("utf-8")
    crowd_header, crowd = csv_raw_records(crowd_text)
    votes = Counter(int(rec["id"]) for rec, _ in crowd)
    eligible = sorted(pid for pid in pairs if votes[pid] >= LLMFAO_MIN_VOTES)
    selected = eligible[:LLMFAO_N_PAIRS]
    if len(selected) != LLMFAO_N_PAIRS:
        msg = f"only {len(selected)} LLMFAO pairs have >= {LLMFAO_MIN_VOTES} votes"
        raise ValueError(msg)
    chosen = set(selected)
    out: list[Produced] = []

    dest = "pairs/llmfao-pairs.jsonl"
    body = "".join(f"{pairs[pid]}\n" for pid in selected)
    write_bytes(landing / dest, body.encode("utf-8"))
    prompts = Counter(json.loads(pairs[pid])["prompt"] for pid in selected)
    prompt_note = (
        f"Only {len(prompts)} prompts are covered (prompt id: pairs): "
        f"{fmt_counter(prompts)}; pair ids are grouped by prompt upstream."
    )
    votes_note = f"Crowd votes per selected pair: {fmt_counter(Counter(votes[pid] for pid in selected))}."
    out.append(
        Produced(
            dest,
            "llmfao",
            "pairs-crowd.jsonl (shipped gzip-compressed as pairs-crowd.jsonl.gz)",
            len(selected),
            (
                f"Decompressed. The {LLMFAO_N_PAIRS} lowest `id`s among pairs with "
                f">= {LLMFAO_MIN_VOTES} rows (votes) in `crowd-comparisons.csv` "
                f"({len(eligible)} of {len(pairs)} pairs qualify); selected ids "
                f"{selected[0]}..{selected[-1]}. Original line bytes, in `id` order."
            ),
            [prompt_note, votes_note],
        )
    )

    crowd_rows = [(rec, line) for rec, line in crowd if int(rec["id"]) in chosen]
    n = len(crowd_rows)
    n_batches = len(LLMFAO_CROWD_DATES)
    bounds = [n * k // n_batches for k in range(n_batches + 1)]
    sizes = ", ".join(str(bounds[j + 1] - bounds[j]) for j in range(n_batches))
    dates_of_pair: dict[int, set[str]] = {}
    for i, date in enumerate(LLMFAO_CROWD_DATES):
        batch = crowd_rows[bounds[i] : bounds[i + 1]]
        dest = f"human_labels/{date}/llmfao-crowd.csv"
        body = crowd_header + "".join(line for _, line in batch)
        write_bytes(landing / dest, body.encode("utf-8"))
        for rec, _ in batch:
            dates_of_pair.setdefault(int(rec["id"]), set()).add(date)
        winners = Counter(rec["winner"] for rec, _ in batch)
        out.append(
            Produced(
                dest,
                "llmfao",
                "crowd-comparisons.csv",
                len(batch),
                (
                    f"All {n} rows of `crowd-comparisons.csv` whose `id` is a sampled "
                    "pair, in original row order, cut into three consecutive batches "
                    f"at row floor(n*k/3), k = 1, 2 (sizes {sizes}); this is batch "
                    f"{i + 1}, rows {bounds[i] + 1}..{bounds[i + 1]}. Same header, "
                    "original line bytes. The date is synthetic."
                ),
                [f"`winner`: {fmt_counter(winners)}."],
            )
        )
    straddling = sorted(pid for pid, dates in dates_of_pair.items() if len(dates) > 1)
    workers = len({rec["worker"] for rec, _ in crowd_rows})
    out[-1].notes.append(
        f"Pair(s) whose votes fall into two batches (cut by row order): {straddling}. "
        f"{workers} distinct workers over the three batches."
    )

    for rel, dest, judge in (
        (
            "llmfao/gpt4-crowd-comparisons.csv",
            f"judge_labels/{LLMFAO_JUDGE_DATE}/llmfao-gpt4.csv",
            "GPT-4",
        ),
        (
            "llmfao/gpt3-crowd-comparisons.csv",
            f"judge_labels/{LLMFAO_JUDGE_DATE}/llmfao-gpt35.csv",
            "GPT-3.5-turbo-instruct",
        ),
    ):
        header, records = csv_raw_records(read_source(source, rel).decode("utf-8"))
        rows = [(rec, line) for rec, line in records if int(rec["id"]) in chosen]
        if sorted(int(rec["id"]) for rec, _ in rows) != selected:
            msg = f"{rel}: expected exactly one verdict per sampled pair"
            raise ValueError(msg)
        body = header + "".join(line for _, line in rows)
        write_bytes(landing / dest, body.encode("utf-8"))
        winners = Counter(rec["winner"] for rec, _ in rows)
        out.append(
            Produced(
                dest,
                "llmfao",
                rel.split("/", 1)[1],
                len(rows),
                (
                    f"The rows ({judge} verdicts, one per pair) for the "
                    f"{LLMFAO_N_PAIRS} sampled pair ids; original order, header and "
                    "line bytes. The date is synthetic."
                ),
                [f"`winner`: {fmt_counter(winners)}."],
            )
        )
    return out


def _project(item: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Return ``item`` restricted to ``keys``, in that order."""
    return {k: item[k] for k in keys}


def build_mtbench(source: Path, landing: Path) -> list[Produced]:
    """MT-Bench: turn-1 items with >= 2 human votes -> pairs, votes, GPT-4 verdicts."""
    rel = "mtbench-human-gpt4/mtbench_human_gpt4_votes.jsonl.gz"
    upstream = rel.split("/", 1)[1]
    text = gzip.decompress(read_source(source, rel)).decode("utf-8")
    items: list[dict[str, Any]] = []
    for line in jsonl_lines(text):
        item = json.loads(line)
        if dump_json(item) != line:
            msg = f"{rel}: a line does not round-trip through json.dumps"
            raise ValueError(msg)
        votes_ok = len(item["human_votes"]) >= MTBENCH_MIN_VOTES
        if item["turn"] == MTBENCH_TURN and votes_ok:
            items.append(item)
    n_eligible = len(items)
    items = items[:MTBENCH_MAX_ITEMS]
    keys = Counter((it["question_id"], it["model_a"], it["model_b"]) for it in items)
    if max(keys.values()) != 1:
        msg = "MT-Bench key (question_id, model_a, model_b) is not unique in the sample"
        raise ValueError(msg)
    select = (
        "Items of `mtbench_human_gpt4_votes.jsonl.gz` (one per question_id, turn, "
        f"model_a, model_b) with `turn == {MTBENCH_TURN}` and >= {MTBENCH_MIN_VOTES} "
        f"entries in `human_votes`, in file order, at most {MTBENCH_MAX_ITEMS}: "
        f"{n_eligible} qualify, all {len(items)} taken."
    )
    label_fields = ("human_votes", "gpt4_pair_winner")
    empty = [
        f"question {it['question_id']} answer of {it['model_' + side]}"
        f" (model_{side}; other model {it['model_b' if side == 'a' else 'model_a']})"
        for it in items
        for side in ("a", "b")
        if not it[f"conversation_{side}"][1]["content"].strip()
    ]
    categories = Counter(it["category"] for it in items)
    votes = [v for it in items for v in it["human_votes"]]
    vote_note = (
        f"{len(votes)} votes from {len({v['judge'] for v in votes})} judges; votes "
        f"per item: {fmt_counter(Counter(len(it['human_votes']) for it in items))}; "
        f"`winner`: {fmt_counter(Counter(v['winner'] for v in votes))}."
    )
    gpt4 = Counter(it["gpt4_pair_winner"] for it in items)
    gpt4_note = (
        f"`gpt4_pair_winner`: {fmt_counter(gpt4)} (`tie (inconsistent)` = GPT-4's "
        "verdict flipped when the answer order was swapped)."
    )

    dest_pairs = "pairs/mtbench-pairs.jsonl"
    n_pairs = write_jsonl(
        landing / dest_pairs,
        ({k: v for k, v in it.items() if k not in label_fields} for it in items),
    )
    dest_votes = f"human_labels/{MTBENCH_DATE}/mtbench-votes.jsonl"
    vote_keys = ("question_id", "turn", "category", "model_a", "model_b")
    n_votes = write_jsonl(
        landing / dest_votes,
        (_project(it, (*vote_keys, "human_votes")) for it in items),
    )
    dest_judge = f"judge_labels/{MTBENCH_DATE}/mtbench-gpt4.jsonl"
    judge_keys = ("question_id", "turn", "model_a", "model_b", "gpt4_pair_winner")
    n_judge = write_jsonl(landing / dest_judge, (_project(it, judge_keys) for it in items))
    return [
        Produced(
            dest_pairs,
            "mtbench",
            upstream,
            n_pairs,
            (
                f"{select} Original line format (field order, `json.dumps` separators, "
                "non-ASCII kept) with the label fields `human_votes` and "
                "`gpt4_pair_winner` dropped; `conversation_a`/`conversation_b` keep "
                "both turns (4 messages each)."
            ),
            [
                f"Categories: {fmt_counter(categories)}.",
                (f"{len(empty)} empty turn-1 answer(s) (content `''`): {'; '.join(empty) or 'none'}."),
            ],
        ),
        Produced(
            dest_votes,
            "mtbench",
            upstream,
            n_votes,
            (
                f"{select} Fields `question_id`, `turn`, `category`, `model_a`, "
                "`model_b`, `human_votes` only. The date is synthetic."
            ),
            [vote_note],
        ),
        Produced(
            dest_judge,
            "mtbench",
            upstream,
            n_judge,
            (
                f"{select} Fields `question_id`, `turn`, `model_a`, `model_b`, "
                "`gpt4_pair_winner` only. The date is synthetic."
            ),
            [gpt4_note],
        ),
    ]


def _as_text(value: object) -> str:
    """Return a PandaLM response as text (upstream has a few JSON ``true`` values)."""
    if isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        msg = f"unexpected PandaLM response value {value!r}"
        raise TypeError(msg)
    return value


def _load_pandalm(source: Path, name: str) -> list[dict[str, Any]]:
    """Load the first PANDALM_N_ROWS rows of a PandaLM file and check idx 0..N-1."""
    rows: list[dict[str, Any]] = json.loads(read_source(source, f"pandalm-testset/{name}"))[:PANDALM_N_ROWS]
    if [r["idx"] for r in rows] != list(range(PANDALM_N_ROWS)):
        msg = f"PandaLM {name}: first rows are not idx 0..{PANDALM_N_ROWS - 1}"
        raise ValueError(msg)
    return rows


def build_pandalm(source: Path, landing: Path) -> list[Produced]:
    """PandaLM: first 300 rows -> pairs, annotator labels, GPT-3.5 and 7B verdicts."""
    test = _load_pandalm(source, "testset-v1.json")
    gpt = _load_pandalm(source, "gpt-3.5-turbo-testset-v1.json")
    p7b = _load_pandalm(source, "pandalm-7b-testset-v1.json")
    select = f"The first {PANDALM_N_ROWS} rows (`idx` 0..{PANDALM_N_ROWS - 1})"
    response_cols = ("response1", "response2")
    out: list[Produced] = []

    bool_responses = [f"{r['idx']}/{c}" for r in test for c in response_cols if isinstance(r[c], bool)]
    empty_responses = [f"{r['idx']}/{c}" for r in test for c in response_cols if r[c] == ""]
    models = [r["cmp_key"].split("_", 1) for r in test]
    if any(len(m) != PAIR_ARITY or not all(m) for m in models):
        msg = "PandaLM cmp_key is not <model1>_<model2>"
        raise ValueError(msg)
    text_cols = ("motivation_app", "cmp_key", "instruction", "input")
    pairs = pl.DataFrame(
        {
            "idx": [r["idx"] for r in test],
            **{c: [r[c] for r in test] for c in text_cols},
            **{c: [_as_text(r[c]) for r in test] for c in response_cols},
            "model1": [m[0] for m in models],
            "model2": [m[1] for m in models],
        },
        schema={
            "idx": pl.Int64,
            **dict.fromkeys(text_cols, pl.String),
            **dict.fromkeys(response_cols, pl.String),
            "model1": pl.String,
            "model2": pl.String,
        },
    )
    dest = "pairs/pandalm-pairs.parquet"
    (landing / dest).parent.mkdir(parents=True, exist_ok=True)
    pairs.write_parquet(landing / dest)
    bool_note = (
        f"{len(bool_responses)} responses are the JSON boolean `true` upstream "
        '(instruction: verify a statement; other answers read "True."): '
        f'{", ".join(bool_responses)}; written as the string `"True"` because '
        "the column is text."
    )
    empty_note = (
        f"{len(empty_responses)} empty-string responses: "
        f"{', '.join(empty_responses) or 'none'}; "
        f"{sum(1 for r in test if r['input'] == '')} rows have an empty `input`."
    )
    cmp_note = f"`cmp_key`: {fmt_counter(Counter(r['cmp_key'] for r in test))}."
    out.append(
        Produced(
            dest,
            "pandalm",
            "testset-v1.json",
            pairs.height,
            (
                f"{select} of `testset-v1.json`; columns `idx` (int64), "
                "`motivation_app`, `cmp_key`, `instruction`, `input`, `response1`, "
                "`response2` (strings, values as in source) plus derived `model1`, "
                '`model2` = `cmp_key` split on its first `"_"` (e.g. '
                "`bloom-7b_llama-7b` -> `bloom-7b`, `llama-7b`; every upstream "
                "`cmp_key` has exactly one `_`). `model1` wrote `response1`."
            ),
            [bool_note, empty_note, cmp_note],
        )
    )

    ann_cols = ("annotator1", "annotator2", "annotator3")
    for r in test:
        for c in ann_cols:
            if isinstance(r[c], bool) or not isinstance(r[c], int):
                msg = f"PandaLM idx {r['idx']} {c}: non-int label {r[c]!r}"
                raise TypeError(msg)
    ann = pl.DataFrame(
        {"idx": [r["idx"] for r in test], **{c: [r[c] for r in test] for c in ann_cols}},
        schema={"idx": pl.Int64, **dict.fromkeys(ann_cols, pl.Int64)},
    )
    dest = f"human_labels/{PANDALM_DATE}/pandalm-annotators.parquet"
    (landing / dest).parent.mkdir(parents=True, exist_ok=True)
    ann.write_parquet(landing / dest)
    labels = Counter(r[c] for r in test for c in ann_cols)
    unanimous = sum(1 for r in test if len({r[c] for c in ann_cols}) == 1)
    split3 = sum(1 for r in test if len({r[c] for c in ann_cols}) == len(ann_cols))
    out.append(
        Produced(
            dest,
            "pandalm",
            "testset-v1.json",
            ann.height,
            (
                f"{select} of `testset-v1.json`; columns `idx`, `annotator1`, "
                "`annotator2`, `annotator3` (int64, values as in source: 1 = response1 "
                "better, 2 = response2 better, 0 = tie). The date is synthetic."
            ),
            [
                (
                    f"Labels over the 3 columns: {fmt_counter(labels)}; {unanimous} "
                    f"unanimous rows, {split3} rows without a 2-of-3 majority."
                )
            ],
        )
    )

    dest = f"judge_labels/{PANDALM_DATE}/pandalm-gpt35.jsonl"
    gpt_keys = ("idx", "gpt_result", "gpt_reason")
    n_gpt = write_jsonl(landing / dest, (_project(r, gpt_keys) for r in gpt))
    garbage = [r["idx"] for r in gpt if r["gpt_result"] == "garbage"]
    empty_reason = [(r["idx"], r["gpt_result"]) for r in gpt if r["gpt_reason"] == "" and r["gpt_result"] != "garbage"]
    garbage_empty = sum(1 for r in gpt if r["gpt_result"] == "garbage" and not r["gpt_reason"])
    out.append(
        Produced(
            dest,
            "pandalm",
            "gpt-3.5-turbo-testset-v1.json",
            n_gpt,
            (
                f"{select} of `gpt-3.5-turbo-testset-v1.json` as JSON lines with "
                "`idx`, `gpt_result`, `gpt_reason` (values as in source; "
                "`gpt_reference` dropped). `garbage` rows are kept on purpose: they "
                "are real unparsable judge output. The date is synthetic."
            ),
            [
                f"`gpt_result` (strings): {fmt_counter(Counter(r['gpt_result'] for r in gpt))}.",
                (
                    f"`garbage` at idx {garbage} ({garbage_empty} of them with an empty "
                    "`gpt_reason`); other rows with an empty `gpt_reason` (idx, "
                    f"result): {empty_reason or 'none'}."
                ),
            ],
        )
    )

    dest = f"judge_labels/{PANDALM_DATE}/pandalm-7b.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["idx", "pandalm_result", "pandalm_reason"])
    for r in p7b:
        writer.writerow([r["idx"], r["pandalm_result"], r["pandalm_reason"]])
    write_bytes(landing / dest, buf.getvalue().encode("utf-8"))
    p7b_counts = Counter(r["pandalm_result"] for r in p7b)
    out.append(
        Produced(
            dest,
            "pandalm",
            "pandalm-7b-testset-v1.json",
            len(p7b),
            (
                f"{select} of `pandalm-7b-testset-v1.json` as CSV (LF, minimal "
                "quoting) with `idx`, `pandalm_result` (int: 1, 2, 0 = tie), "
                "`pandalm_reason` (`pandalm_reference` dropped). The date is synthetic."
            ),
            [f"`pandalm_result`: {fmt_counter(p7b_counts)}."],
        )
    )
    return out


def build_hh_rlhf(source: Path, landing: Path) -> list[Produced]:
    """HH-RLHF: first lines of helpful-base / harmless-base, tagged with the folder."""
    out: list[Produced] = []
    for subset, n_lines in HH_RLHF_LINES:
        rel = f"hh-rlhf-test/{subset}/test.jsonl.gz"
        text = gzip.decompress(read_source(source, rel)).decode("utf-8")
        records: list[dict[str, Any]] = []
        for line in jsonl_lines(text)[:n_lines]:
            rec = json.loads(line)
            if list(rec) != ["chosen", "rejected"] or dump_json(rec) != line:
                msg = f"{rel}: unexpected line format"
                raise ValueError(msg)
            records.append({**rec, "subset": subset})
        empty_final = [
            f"line {i} `{side}`"
            for i, r in enumerate(records, start=1)
            for side in ("chosen", "rejected")
            if not r[side].rsplit("\n\nAssistant:", 1)[-1].strip()
        ]
        dest = f"pairs/hh-rlhf-{subset}.jsonl"
        out.append(
            Produced(
                dest,
                "hh-rlhf",
                f"{subset}/test.jsonl.gz",
                write_jsonl(landing / dest, records),
                (
                    f"Decompressed; the first {n_lines} lines of "
                    f"`{subset}/test.jsonl.gz`, each the original `chosen`/`rejected` "
                    "object (same serialisation) plus a derived field "
                    f'`"subset": "{subset}"` (the upstream folder name), appended last.'
                ),
                [(f"Empty final Assistant turn: {'; '.join(empty_final) or 'none'}.")],
            )
        )
    return out


def build_eval(source: Path, landing: Path) -> list[Produced]:
    """Copy the eval prompt lists; MultiJail loses its UTF-8 BOM."""
    out: list[Produced] = []
    for rel, dest, dataset in (
        ("xstest/xstest_prompts.csv", "eval/xstest_prompts.csv", "xstest"),
        (
            "advbench/harmful_behaviors.csv",
            "eval/advbench_harmful_behaviors.csv",
            "advbench",
        ),
        ("truthfulqa/TruthfulQA.csv", "eval/truthfulqa.csv", "truthfulqa"),
        ("multijail/MultiJail.csv", "eval/multijail.csv", "multijail"),
    ):
        data = read_source(source, rel)
        selection = "Verbatim byte copy (all rows)."
        notes: list[str] = []
        if data.startswith(UTF8_BOM):
            data = data[len(UTF8_BOM) :]
            selection = (
                "Byte copy (all rows) with the leading UTF-8 BOM (3 bytes) removed so "
                "the first header is `id`; everything else unchanged (CRLF line "
                "endings, quoted multi-line cells)."
            )
        if not data.endswith(b"\n"):
            notes.append("No trailing newline after the last row (as upstream).")
        write_bytes(landing / dest, data)
        rows = count_csv_records(data)
        out.append(Produced(dest, dataset, rel.split("/", 1)[1], rows, selection, notes))
    return out


# ---------------------------------------------------------------------- PROVENANCE

PROVENANCE_HEADER = """\
# prefgate bundled sample data: provenance

Generated by `scripts/build_sample.py` from the shared public data in
`/work/shared/data` (see the `PROVENANCE.md` in each folder there). Do not edit by
hand: rerun the script. Every input is checked against the sha256 recorded there.
Nothing is synthetic except the `<date>` folder names under `human_labels/` and
`judge_labels/` (no upstream set has timestamps) and the two documented derived
fields (PandaLM `model1`/`model2`, HH-RLHF `subset`). File names, columns and formats
follow `config/sources.yaml`.

> **Content warning.** `landing/pairs/hh-rlhf-harmless-base.jsonl`,
> `landing/eval/advbench_harmful_behaviors.csv`, `landing/eval/multijail.csv` and the
> unsafe half of `landing/eval/xstest_prompts.csv` contain harmful, offensive or
> dangerous text (violence, crime, self-harm, hate, sexual content) **by design**:
> they exist to test refusals and safety filters. The helpful-base HH-RLHF dialogues,
> LLMFAO, MT-Bench and PandaLM responses are unfiltered model or crowd text too.

## Files

Rows: JSON lines, or CSV/Parquet data rows (header excluded; CSV records honour
quoted newlines). Dataset sections below give the selection and derivation.

| file (under `landing/`) | dataset | rows | bytes | sha256 |
|---|---|---:|---:|---|
"""


def render_provenance(produced: list[Produced], landing: Path, licenses: dict[str, Path]) -> str:
    """Render data/sample/PROVENANCE.md from the produced files."""
    lines = [PROVENANCE_HEADER.rstrip("\n")]
    for p in produced:
        data = (landing / p.rel).read_bytes()
        digest = sha256_bytes(data)
        lines.append(f"| `{p.rel}` | {p.dataset} | {p.rows} | {len(data)} | `{digest}` |")
    lines += [
        "",
        "## Licenses",
        "",
        "Upstream license files, copied byte for byte.",
        "",
        "| file | copied from (`/work/shared/data/`) | sha256 |",
        "|---|---|---|",
    ]
    for name, path in licenses.items():
        digest = sha256_bytes(path.read_bytes())
        lines.append(f"| `licenses/{path.name}` | `{LICENSE_FILES[name]}` | `{digest}` |")
    lines.append("")
    for ds in DATASETS:
        lines += [
            f"## {ds.key}: {ds.title}",
            "",
            f"- **Source:** {ds.source}.",
            f"- **License:** {ds.license}",
            f"- **Required attribution:** {ds.attribution}",
            f"- **Shared copy:** `/work/shared/data/{ds.shared_folder}/`.",
            "",
        ]
        for p in produced:
            if p.dataset != ds.key:
                continue
            lines += [
                f"### `landing/{p.rel}` ({p.rows} rows)",
                "",
                f"- Upstream file: `{p.upstream_file}`.",
                f"- Selection and derivation: {p.selection}",
                *(f"- Note: {n}" for n in p.notes),
                "",
            ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main

BUILDERS: tuple[Callable[[Path, Path], list[Produced]], ...] = (
    build_prompts,
    build_llmfao,
    build_mtbench,
    build_pandalm,
    build_hh_rlhf,
    build_eval,
)


def build(source: Path, out: Path) -> list[Produced]:
    """Rebuild ``out/landing``, ``out/licenses`` and ``out/PROVENANCE.md``."""
    landing = out / "landing"
    license_dir = out / "licenses"
    for owned in (landing, license_dir):
        if owned.exists():
            shutil.rmtree(owned)
    produced = [p for builder in BUILDERS for p in builder(source, landing)]
    licenses: dict[str, Path] = {}
    for name, rel in LICENSE_FILES.items():
        dest = license_dir / f"{name}-LICENSE"
        write_bytes(dest, read_source(source, rel))
        licenses[name] = dest
    provenance = render_provenance(produced, landing, licenses)
    (out / "PROVENANCE.md").write_text(provenance, encoding="utf-8")
    return produced


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: build the sample and print a size summary."""
    parser = argparse.ArgumentParser(description="Build data/sample from shared data.")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="shared data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="sample folder to rebuild")
    args = parser.parse_args(argv)
    produced = build(args.source, args.out)
    landing_total = 0
    for p in produced:
        size = (args.out / "landing" / p.rel).stat().st_size
        landing_total += size
        print(f"{p.rows:6d} rows {size:9d} B  landing/{p.rel}")
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"landing/: {landing_total} B; {args.out}: {total} B in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
