"""Discover landing files and map them through their declared sources.

Only regular files whose real location is inside the landing folder are read: a symlink that leads out of it, or
a FIFO, socket or device, is refused and reported (never opened). Files the ingest would never read (a misspelt
folder, a nested folder, a batch folder that is not a date, an undeclared file) are listed by
:func:`unread_files`, so nothing dropped in the landing folder is ignored without a word.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from prefgate.ids import file_sha256
from prefgate.ingest.errors import IngestFileError
from prefgate.ingest.mapping import Mapped, map_rows
from prefgate.ingest.readers import read_rows
from prefgate.ingest.sources import LABEL_KINDS, Kind, SourceConfigError, SourceSpec, spec_for

# Landing sub-folder of each kind; label kinds have one sub-folder per batch date below it.
FOLDERS: dict[str, str] = {
    "prompts": "prompts",
    "pairs": "pairs",
    "eval_prompts": "eval",
    "human_labels": "human_labels",
    "judge_labels": "judge_labels",
}
KINDS: tuple[Kind, ...] = ("prompts", "pairs", "eval_prompts", "human_labels", "judge_labels")
_EXPECTED = ", ".join(f"{FOLDERS[k]}/<YYYY-MM-DD>" if k in LABEL_KINDS else FOLDERS[k] for k in FOLDERS)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass
class LandedBatch:
    """The mapped files of one kind (and batch), plus files skipped, refused or read under a new name."""

    files: list[Mapped] = field(default_factory=list)
    skipped_duplicate_files: list[tuple[str, str]] = field(default_factory=list)  # (file, same-as file)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (landing-relative path, reason); never opened
    # (file, known file with the same bytes that is no longer in the landing folder): read under its new name
    renamed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(m.rows_read for m in self.files)


@dataclass(frozen=True)
class UnreadFile:
    """A file in the landing folder that no ingest reads, and why."""

    path: str  # landing-relative, posix
    reason: str


def is_batch_name(name: str) -> bool:
    """A batch folder name: an ISO date written exactly ``YYYY-MM-DD`` (``20261110`` is not one)."""
    if not _DATE.fullmatch(name):
        return False
    try:
        dt.date.fromisoformat(name)
    except ValueError:
        return False
    return True


def _rel(landing: Path, path: Path) -> str:
    return path.relative_to(landing).as_posix()


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _special(mode: int) -> str | None:
    """What a non-regular, non-directory file is, in words; None for regular files and folders."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _inside(path: Path, root: Path) -> bool:
    """Whether a path's real location (all links followed) is inside ``root``; a link loop is not."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11/3.12)
        return False


def _refusal(path: Path, root: Path) -> str | None:
    """Why a landing entry must not be opened (a link out of the landing folder, a special file); None if safe.

    Only ``lstat``/``stat`` are used, so a FIFO is never opened (opening one would block).
    """
    try:
        st = path.lstat()
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror}); not read"
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):
            return f"symlink to {target} cannot be followed (a symlink loop); not read"
        shown = target if target == str(resolved) else f"{target} ({resolved})"
        if not resolved.is_relative_to(root):
            return f"symlink to {shown} points outside the landing folder; not read"
        try:
            st = path.stat()
        except OSError as exc:
            return f"symlink to {shown} cannot be followed ({exc.strerror}); not read"
    elif not _inside(path, root):  # a folder above it leads out of the landing folder
        return "resolves to a place outside the landing folder; not read"
    what = _special(st.st_mode)
    return None if what is None else f"{what}, not a regular file; not read"


def _folder_refusal(landing: Path, folder: Path) -> tuple[str, str] | None:
    """A kind or batch folder that leads out of the landing folder, as (landing-relative path, reason)."""
    root = landing.resolve()
    for part in (folder, *folder.parents):
        if part == landing or not part.is_relative_to(landing):
            break
        if part.is_symlink() and not _inside(part, root):
            return _rel(landing, part), _refusal(part, root) or "points outside the landing folder; not read"
    if not _inside(folder, root):  # e.g. a batch name with '..' in it
        return _rel(landing, folder), "resolves to a place outside the landing folder; not read"
    return None


def _scan(landing: Path, kind: Kind, batch: str | None) -> tuple[list[Path], list[tuple[str, str]]]:
    """Readable files of a kind (and batch), sorted by name, and the entries refused there with reasons."""
    folder = landing / FOLDERS[kind]
    if batch is not None:
        folder = folder / batch
    refused_folder = _folder_refusal(landing, folder)
    if refused_folder is not None:
        return [], [refused_folder]
    if not folder.is_dir():
        return [], []
    root = landing.resolve()
    files: list[Path] = []
    refused: list[tuple[str, str]] = []
    for path in sorted(folder.iterdir()):
        if _hidden(path.name):
            continue
        reason = _refusal(path, root)
        if reason is not None:
            refused.append((_rel(landing, path), reason))
        elif path.is_file():
            files.append(path)
    return files, refused


def list_files(landing: Path, kind: Kind, batch: str | None = None) -> list[Path]:
    """Data files of a kind (sorted, hidden files ignored); for label kinds, those of one batch folder.

    Only regular files inside the landing folder: see :func:`refused_files` for what is left out and why.
    """
    return _scan(landing, kind, batch)[0]


def refused_files(landing: Path, kind: Kind, batch: str | None = None) -> list[tuple[str, str]]:
    """Entries of a kind (and batch) folder that are not read for safety: (landing-relative path, reason)."""
    return _scan(landing, kind, batch)[1]


def _batch_folders(landing: Path, kind: Kind) -> list[Path]:
    folder = landing / FOLDERS[kind]
    if _folder_refusal(landing, folder) is not None or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not _hidden(p.name) and p.is_dir())


def batches(landing: Path, kind: Kind) -> list[str]:
    """Batch dates present for a label kind: folders named ``YYYY-MM-DD`` that stay inside the landing folder.

    Other folders are left out (a partition key that is not a date would abort a run); see
    :func:`invalid_batches`.
    """
    return [
        p.name for p in _batch_folders(landing, kind) if is_batch_name(p.name) and _folder_refusal(landing, p) is None
    ]


def _files_below(folder: Path) -> list[Path]:
    """Non-hidden non-folder entries below a folder (links not followed), sorted."""
    out: list[Path] = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        base = Path(top)
        out += [base / n for n in names if not _hidden(n)]
        out += [base / d for d in dirs if (base / d).is_symlink()]  # walk does not enter linked folders
    return sorted(out)


def _not_a_date(name: str, count: int) -> str:
    files = "its 1 file is" if count == 1 else f"its {count} files are"
    return f"batch folder '{name}' is not a date YYYY-MM-DD; {files} not read until it is renamed"


def invalid_batches(landing: Path, kind: Kind) -> list[tuple[str, str]]:
    """Folders under a label kind that are not read as batches: (landing-relative path, reason).

    A folder whose name is not exactly ``YYYY-MM-DD``, or one that is a link out of the landing folder.
    """
    if kind not in LABEL_KINDS:
        return []
    out: list[tuple[str, str]] = []
    for path in _batch_folders(landing, kind):
        refused = _folder_refusal(landing, path)
        if refused is not None:
            out.append((_rel(landing, path), f"batch folder '{path.name}': {refused[1]}"))
        elif not is_batch_name(path.name):
            out.append((_rel(landing, path), _not_a_date(path.name, len(_files_below(path)))))
    return out


def _location_problem(rel: str) -> str | None:
    """Why a file at this landing-relative path is never read because of where it is; None if it is read."""
    parts = rel.split("/")
    folder_kinds = {FOLDERS[k]: k for k in FOLDERS}
    if len(parts) == 1:
        return f"directly in the landing folder; files are read only from its sub-folders ({_EXPECTED})"
    top = parts[0]
    if top not in folder_kinds:
        return f"in landing/{top}/, which is not a landing folder (expected one of: {_EXPECTED})"
    if folder_kinds[top] not in LABEL_KINDS:
        return None if len(parts) == 2 else f"nested folder: only files directly in landing/{top}/ are read"
    if len(parts) == 2:
        return f"label file not inside a batch folder named YYYY-MM-DD (landing/{top}/<YYYY-MM-DD>/)"
    if not is_batch_name(parts[1]):
        return None  # reported with the folder's own reason
    if len(parts) > 3:
        return f"nested folder: only files directly in landing/{top}/{parts[1]}/ are read"
    return None


def _source_problem(landing: Path, specs: list[SourceSpec], kind: Kind, path: Path) -> str | None:
    """Why ingesting a file in the right place fails (no source or several declare it, unknown format)."""
    rel = _rel(landing, path)
    try:
        spec_for(specs, kind, rel).file_format(path)
    except IngestFileError as exc:
        what = str(exc).removeprefix(f"{rel}: ")
        return f"{what}: ingesting {kind} stops with an error until the sources file or the file's name is fixed"
    except SourceConfigError as exc:
        return f"{exc}: ingesting {kind} stops with an error until it is fixed"
    return None


def unread_files(landing: Path, specs: list[SourceSpec]) -> list[UnreadFile]:
    """Every non-hidden file in the landing folder that no ingest reads, with the reason in words.

    Covers misspelt or unknown folders, files directly in the landing folder, nested folders, label files outside
    a batch folder, batch folders that are not dates, files no source declares (ingesting their kind fails),
    and refused symlinks and special files. A file reached through a symlink that is read counts as read.
    Hidden files and folders (``.name``) are ignored, as the ingest ignores them.
    """
    if not landing.is_dir():
        return []
    root = landing.resolve()
    out: dict[str, str] = {}
    read_real: set[Path] = set()
    for kind in KINDS:
        groups: list[str | None] = [*batches(landing, kind)] if kind in LABEL_KINDS else [None]
        for batch in groups:
            files, refused = _scan(landing, kind, batch)
            for rel, reason in refused:
                out[rel] = reason
            for path in files:
                problem = _source_problem(landing, specs, kind, path)
                if problem is not None:
                    out[_rel(landing, path)] = problem
                else:
                    read_real.add(path.resolve())
    for kind in KINDS:
        for folder, reason in invalid_batches(landing, kind):
            target = landing / folder
            if target.is_symlink():
                out.setdefault(folder, reason)
                continue
            for path in _files_below(target):
                out.setdefault(_rel(landing, path), _refusal(path, root) or reason)
    for path in _files_below(landing):
        rel = _rel(landing, path)
        if rel in out or (_inside(path, root) and path.resolve() in read_real):
            continue
        if path.is_symlink() and path.is_dir() and _inside(path, root):
            continue  # a link to a folder inside: its files are judged where they really are
        problem = _refusal(path, root) or _location_problem(rel)
        if problem is not None:
            out[rel] = problem
    return [UnreadFile(rel, reason) for rel, reason in sorted(out.items())]


def _order(landing: Path, files: list[Path], shas: dict[Path, str], known: dict[str, str]) -> list[Path]:
    """Files already ingested (same path, same bytes) first, then new ones oldest first, then by name.

    Modification times count in whole seconds, so files written together (a checkout, a copy) fall back to name
    order and a first ingest does not depend on the order a copy happened to write them.
    """
    old = [p for p in files if known.get(_rel(landing, p)) == shas[p]]
    new = [p for p in files if known.get(_rel(landing, p)) != shas[p]]
    new.sort(key=lambda p: (int(p.stat().st_mtime), _rel(landing, p)))
    return old + new


def _still_there(landing: Path, rel: str, sha: str) -> bool:
    """Whether a known file is still in the landing folder with the same bytes (checked without risk)."""
    path = landing / rel
    if not path.exists() and not path.is_symlink():
        return False
    if _folder_refusal(landing, path) is not None or _refusal(path, landing.resolve()) is not None:
        return False
    return path.is_file() and file_sha256(str(path.resolve())) == sha


def land(
    landing: Path,
    specs: list[SourceSpec],
    kind: Kind,
    batch: str | None = None,
    seen_file_hashes: dict[str, str] | None = None,
    known_files: dict[str, str] | None = None,
) -> LandedBatch:
    """Read and map every file of a kind (and batch).

    ``seen_file_hashes`` (sha256 -> file) lists files already ingested elsewhere (e.g. other batches): a file with
    the same bytes is skipped, so dropping a file twice adds nothing.

    ``known_files`` (landing-relative path -> sha256) lists files already ingested, as the warehouse recorded
    them. They are read first, then new files oldest first (then by name), so a duplicate row in a new file is
    the one quarantined, never the original. A file with the bytes of a known file under another name is skipped
    as a duplicate of it while the known file is still in the landing folder; if the known file is gone, it was
    renamed and is read under its new name (listed in ``renamed``).

    Symlinks leading out of the landing folder and special files are refused unread (listed in ``refused``).
    """
    files, refused = _scan(landing, kind, batch)
    out = LandedBatch(refused=list(refused))
    known = dict(known_files or {})
    shas = {p: file_sha256(str(p.resolve())) for p in files}
    known_by_sha: dict[str, list[str]] = {}
    for rel, sha in sorted(known.items()):
        known_by_sha.setdefault(sha, []).append(rel)
    seen = dict(seen_file_hashes or {})
    for path in _order(landing, files, shas, known):
        rel = _rel(landing, path)
        spec = spec_for(specs, kind, rel)
        sha = shas[path]
        if sha in seen:
            out.skipped_duplicate_files.append((rel, seen[sha]))
            continue
        others = [k for k in known_by_sha.get(sha, []) if k != rel]
        present = [k for k in others if _still_there(landing, k, sha)]
        if present:
            out.skipped_duplicate_files.append((rel, present[0]))
            seen[sha] = present[0]
            continue
        if others:
            out.renamed.append((rel, others[0]))
        seen[sha] = rel
        real = path.resolve()
        out.files.append(map_rows(spec, real, rel, sha, read_rows(real, spec.file_format(path))))
    return out
