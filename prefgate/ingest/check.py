"""``prefgate sources check``: dry-run a sources file against a landing folder.

Every file in the landing folder is matched to its source (or listed with the reason no ingest reads it), read
and mapped exactly as :func:`prefgate.ingest.landing.land` does, and each row that would be quarantined is
listed with its line, field and reason. Nothing is written: no warehouse, no Dagster instance, no home folders.

Checked: parsing, mapping (``map_rows``) and the required fields of each kind. Not checked: table-level rules
(duplicates, degenerate pairs, label verdicts and the label files' pair-key lookups, which need
``response_pairs`` in the warehouse); those run at ingest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefgate.home import PROJECT_ROOT, Home
from prefgate.ids import file_sha256
from prefgate.ingest.errors import IngestFileError
from prefgate.ingest.landing import KINDS, batches, list_files, unread_files
from prefgate.ingest.mapping import map_rows
from prefgate.ingest.readers import read_rows
from prefgate.ingest.sources import FIELDS, LABEL_KINDS, SourceConfigError, SourceSpec, load_sources, spec_for

SCOPE = (
    "dry run: parsing, mapping and required fields only; label files' pair keys are looked up in "
    "response_pairs at ingest, not here"
)


@dataclass(frozen=True)
class RowProblem:
    """A row that would be quarantined."""

    line: int
    field: str
    reason: str


@dataclass
class FileCheck:
    """One landing file that an ingest reads: its source and what mapping it gives."""

    file: str
    source: str
    kind: str
    format: str
    rows_read: int = 0
    mapped: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the whole file cannot be read (the ingest stops on it)


@dataclass
class CheckReport:
    """The dry run's result: checked files and files no ingest reads."""

    sources: str
    landing: str
    files: list[FileCheck] = field(default_factory=list)
    unread: list[dict[str, str]] = field(default_factory=list)  # {file, reason}

    @property
    def clean(self) -> bool:
        return not self.unread and all(not f.rejected and f.error is None for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "landing": self.landing,
            "scope": SCOPE,
            "clean": self.clean,
            "files": [asdict(f) for f in self.files],
            "unread": self.unread,
        }


def default_sources() -> Path:
    """``$PREFGATE_SOURCES``, else the project's ``config/sources.yaml``."""
    return Path(os.environ.get("PREFGATE_SOURCES") or PROJECT_ROOT / "config" / "sources.yaml")


def _check_file(landing: Path, spec: SourceSpec, kind: str, path: Path, rows: int) -> FileCheck:
    rel = path.relative_to(landing).as_posix()
    fmt = spec.file_format(path)
    out = FileCheck(file=rel, source=spec.name, kind=kind, format=fmt)
    real = path.resolve()
    try:
        mapped = map_rows(spec, real, rel, file_sha256(str(real)), read_rows(real, fmt))
    except (IngestFileError, OSError) as exc:
        out.error = str(exc)
        return out
    out.rows_read = mapped.rows_read
    out.rejected = [RowProblem(r.line, r.field, r.reason) for r in mapped.rejected]
    required = sorted(FIELDS[kind][1])
    for rec in mapped.records:
        missing = [name for name in required if rec.get(name) is None]
        if missing:
            out.rejected.append(RowProblem(rec["_line"], missing[0], f"missing required field '{missing[0]}'"))
            continue
        out.mapped += 1
        if len(out.sample) < rows:
            out.sample.append({"line": rec["_line"], **{k: v for k, v in rec.items() if not k.startswith("_")}})
    out.rejected.sort(key=lambda r: r.line)
    return out


def check_sources(specs: list[SourceSpec], landing: Path, sources: Path, rows: int = 3) -> CheckReport:
    """Match, read and map every landing file without writing anything."""
    report = CheckReport(sources=str(sources), landing=str(landing))
    unread = unread_files(landing, specs)
    skip = {u.path for u in unread}
    for kind in KINDS:
        groups: list[str | None] = [*batches(landing, kind)] if kind in LABEL_KINDS else [None]
        for batch in groups:
            for path in list_files(landing, kind, batch):
                rel = path.relative_to(landing).as_posix()
                if rel in skip:
                    continue
                try:
                    spec = spec_for(specs, kind, rel)
                except IngestFileError:  # pragma: no cover - unread_files lists these
                    continue
                report.files.append(_check_file(landing, spec, kind, path, rows))
    report.unread = [{"file": u.path, "reason": u.reason} for u in unread]
    return report


def _short(value: Any, width: int = 40) -> str:
    text = "null" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def render(report: CheckReport) -> str:
    """The report as text, one block per file."""
    lines = [f"prefgate sources check: {report.sources} against {report.landing} ({SCOPE})"]
    for f in report.files:
        head = f"{f.file}  source {f.source} ({f.kind}, {f.format})"
        if f.error is not None:
            lines.append(f"{head}  CANNOT BE READ: {f.error}")
            continue
        lines.append(f"{head}  read {f.rows_read}  mapped {f.mapped}  rejected {len(f.rejected)}")
        for rec in f.sample:
            fields = ", ".join(f"{k}={_short(v)}" for k, v in rec.items() if k != "line")
            lines.append(f"    line {rec['line']}: {fields}")
        for r in f.rejected:
            lines.append(f"  ! line {r.line}  field {r.field}: {r.reason}")
    if report.unread:
        lines.append(f"not read by any ingest ({len(report.unread)}):")
        lines += [f"  {u['file']}: {u['reason']}" for u in report.unread]
    rejected = sum(len(f.rejected) for f in report.files)
    errors = sum(f.error is not None for f in report.files)
    lines.append(
        f"{len(report.files)} files matched, {sum(f.rows_read for f in report.files)} rows read, "
        f"{sum(f.mapped for f in report.files)} mapped, {rejected} would be quarantined, "
        f"{errors} unreadable, {len(report.unread)} not read: {'clean' if report.clean else 'NOT clean'}"
    )
    return "\n".join(lines)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the options of ``prefgate sources check``."""
    parser.add_argument(
        "--sources", type=Path, metavar="FILE", help="sources file (default: $PREFGATE_SOURCES or config/sources.yaml)"
    )
    parser.add_argument("--landing", type=Path, metavar="DIR", help="landing folder (default: the home's landing/)")
    parser.add_argument("--rows", type=_non_negative, default=3, metavar="N", help="mapped rows shown per file")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def main(args: argparse.Namespace, home: Home) -> int:
    """Run the check: 0 clean, 1 rows would be quarantined or files are not read, 2 bad sources file or landing."""
    sources = args.sources or default_sources()
    landing = args.landing or home.landing
    try:
        specs = load_sources(sources)
    except (SourceConfigError, ValueError) as exc:
        print(f"prefgate sources check: {exc}", file=sys.stderr)
        return 2
    if not landing.is_dir():
        print(f"prefgate sources check: {landing}: no landing folder there", file=sys.stderr)
        return 2
    report = check_sources(specs, landing.resolve(), Path(sources), args.rows)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, default=str))
    else:
        print(render(report))
    return 0 if report.clean else 1
