"""Discover landing files and map them through their declared sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prefgate.ids import file_sha256
from prefgate.ingest.mapping import Mapped, map_rows
from prefgate.ingest.readers import read_rows
from prefgate.ingest.sources import Kind, SourceSpec, spec_for

# Landing sub-folder of each kind; label kinds have one sub-folder per batch date below it.
FOLDERS: dict[str, str] = {
    "prompts": "prompts",
    "pairs": "pairs",
    "eval_prompts": "eval",
    "human_labels": "human_labels",
    "judge_labels": "judge_labels",
}


@dataclass
class LandedBatch:
    """The mapped files of one kind (and batch), plus files skipped because their bytes were already seen."""

    files: list[Mapped] = field(default_factory=list)
    skipped_duplicate_files: list[tuple[str, str]] = field(default_factory=list)  # (file, same-as file)

    @property
    def rows_read(self) -> int:
        return sum(m.rows_read for m in self.files)


def list_files(landing: Path, kind: Kind, batch: str | None = None) -> list[Path]:
    """Data files of a kind (sorted, hidden files ignored); for label kinds, those of one batch folder."""
    folder = landing / FOLDERS[kind]
    if batch is not None:
        folder = folder / batch
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def batches(landing: Path, kind: Kind) -> list[str]:
    """Batch folder names (batch dates) present for a label kind."""
    folder = landing / FOLDERS[kind]
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def land(
    landing: Path,
    specs: list[SourceSpec],
    kind: Kind,
    batch: str | None = None,
    seen_file_hashes: dict[str, str] | None = None,
) -> LandedBatch:
    """Read and map every file of a kind (and batch).

    ``seen_file_hashes`` (sha256 -> file) lists files already ingested elsewhere (e.g. other batches): a file with
    the same bytes is skipped, so dropping a file twice adds nothing.
    """
    seen = dict(seen_file_hashes or {})
    out = LandedBatch()
    for path in list_files(landing, kind, batch):
        rel = path.relative_to(landing).as_posix()
        spec = spec_for(specs, kind, rel)
        sha = file_sha256(str(path))
        if sha in seen:
            out.skipped_duplicate_files.append((rel, seen[sha]))
            continue
        seen[sha] = rel
        out.files.append(map_rows(spec, path, rel, sha, read_rows(path, spec.file_format(path))))
    return out
