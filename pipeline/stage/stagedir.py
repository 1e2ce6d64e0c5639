"""The stage folder: the contract between one stage and the next.

```
DIR/data/part-*.parquet       kept documents
DIR/rejected/part-*.parquet   removed documents, every column plus ``reason``
DIR/stats.json                counts in / kept / rejected by reason, seconds, config, versions
DIR/_SUCCESS                  written last, atomically
```

``_SUCCESS`` is the only proof a folder is complete: it is written after the counts have been
checked, by an atomic rename, so a job killed at any moment leaves a folder that the next
stage refuses and that a rerun clears. Clearing destroys, so ``prepare_output`` first refuses an
output that overlaps the inputs or that this project did not write (``check_output``).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from core.errors import UsageError
from core.files import atomic_write_text

SUCCESS = "_SUCCESS"


def local_path(path: str | os.PathLike) -> Path:
    """A local path from ``path`` or ``file://path``; other schemes are handled by Spark."""
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text[len("file://"):]
    return Path(text)


def is_remote(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def data_dir(out: str | os.PathLike) -> str:
    return os.path.join(os.fspath(out), "data")


def rejected_dir(out: str | os.PathLike) -> str:
    return os.path.join(os.fspath(out), "rejected")


def stats_path(out: str | os.PathLike) -> str:
    return os.path.join(os.fspath(out), "stats.json")


def success_path(out: str | os.PathLike) -> str:
    return os.path.join(os.fspath(out), SUCCESS)


def is_complete(out: str | os.PathLike) -> bool:
    return local_path(success_path(out)).is_file()


def require_complete(path: str | os.PathLike) -> None:
    """Refuse anything but a complete stage folder as a stage's input."""
    p = local_path(path)
    if not p.exists():
        raise UsageError(f"input not found: {path}")
    if not p.is_dir() or not (p / "data").is_dir():
        raise UsageError(f"not a stage folder (no data/ inside): {path}")
    if not is_complete(p):
        raise UsageError(f"input stage folder is incomplete (no {SUCCESS}; rerun its stage): {path}")


# Files that prove a folder was written by this project, so replacing it destroys nothing
# the user gave: a stage's stats.json, the tokenizer's tokenizer.json, the shards' manifest.json,
# and the marker every run writes first (a killed run leaves only that).
STARTED = "_STARTED"
OWN_MARKERS = (STARTED, "stats.json", "tokenizer.json", "manifest.json")


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(local_path(path)))


def glob_root(pattern: str) -> str:
    """The folder part of a glob before its first wildcard."""
    import glob

    fixed = []
    for part in pattern.split(os.sep):
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.sep.join(fixed) or "."


def input_roots(inputs: list[str]) -> list[Path]:
    """The folders and files an input argument can read: a glob's matches, and for a
    recursive glob its fixed root, since a rerun would match files written under it."""
    import glob

    roots: list[Path] = []
    for arg in inputs:
        text = os.fspath(local_path(arg))
        if is_remote(arg):
            continue
        if glob.has_magic(text):
            if "**" in text:
                roots.append(_real(glob_root(text)))
            roots.extend(_real(m) for m in glob.glob(text, recursive=True))
        else:
            roots.append(_real(text))
    return roots


def check_disjoint(inputs: list[str], out: str | os.PathLike) -> None:
    """Refuse an output that is an input, holds one, or lies inside one.

    Replacing the output deletes it, so an output holding an input destroys the user's data;
    an output inside an input is read back as input by the next run.
    """
    if is_remote(out):
        return
    target = _real(out)
    for root in input_roots(inputs):
        if target == root or target in root.parents:
            raise UsageError(f"--output {out} contains the input {root}: replacing it would "
                             "delete the input; choose an output folder outside it")
        if root in target.parents:
            raise UsageError(f"--output {out} lies inside the input {root}: a rerun would read "
                             "its own output; choose an output folder outside it")


def is_own_folder(out: str | os.PathLike) -> bool:
    """Empty, or written by this project (see ``OWN_MARKERS``)."""
    p = local_path(out)
    if not p.is_dir():
        return False
    return not any(p.iterdir()) or any((p / name).is_file() for name in OWN_MARKERS)


def check_output(out: str | os.PathLike, overwrite: bool, *, inputs: list[str]) -> None:
    """Refuse, before any work, an output that would destroy something: one that overlaps
    the inputs, a folder this project did not write, or a complete one without ``overwrite``."""
    check_disjoint(inputs, out)
    p = local_path(out)
    if p.exists() and not p.is_dir():
        raise UsageError(f"output exists and is not a folder: {out}")
    if p.exists() and not is_own_folder(p):
        raise UsageError(f"output {out} is a non-empty folder this project did not write "
                         f"(no {' / '.join(OWN_MARKERS)}); refusing to replace it")
    if is_complete(p) and not overwrite:
        raise UsageError(f"output {out} is already complete; pass --overwrite to replace it")


def prepare_output(out: str | os.PathLike, overwrite: bool, *, inputs: list[str]) -> None:
    """Make ``out`` ready to be written, after every check of ``check_output``.

    A folder of ours without ``_SUCCESS`` is the remains of a killed run and is always
    cleared, so a rerun never mixes old part files with new ones.
    """
    check_output(out, overwrite, inputs=inputs)
    p = local_path(out)
    if p.exists():
        # Remove _SUCCESS first: if the removal is interrupted, what is left is incomplete.
        marker = Path(success_path(p))
        if marker.exists():
            marker.unlink()
        shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)
    (p / STARTED).write_text("")


def write_stats(out: str | os.PathLike, stats: dict[str, Any]) -> None:
    atomic_write_text(stats_path(out), json.dumps(stats, indent=2, sort_keys=True) + "\n")


def read_stats(out: str | os.PathLike) -> dict[str, Any]:
    with open(local_path(stats_path(out)), encoding="utf-8") as f:
        return json.load(f)


def check_counts(stats: dict[str, Any]) -> None:
    """The conservation law every stage obeys: documents in = kept + rejected."""
    docs_in = stats["docs_in"]
    kept = stats["docs_kept"]
    rejected = stats["docs_rejected"]
    by_reason = sum(stats.get("rejected_by_reason", {}).values())
    if docs_in != kept + rejected or by_reason != rejected:
        raise RuntimeError(
            f"stage {stats.get('stage')}: documents lost: in={docs_in} kept={kept} "
            f"rejected={rejected} (by reason {by_reason}); refusing to mark the output complete"
        )


def mark_complete(out: str | os.PathLike, stats: dict[str, Any]) -> None:
    """Check the counts, then write stats.json and, last, ``_SUCCESS``."""
    check_counts(stats)
    write_stats(out, stats)
    write_success(out)


def write_success(out: str | os.PathLike) -> None:
    """``_SUCCESS``, once the folder's own record (stats.json, tokenizer.json, manifest.json)
    is written: that record now proves the folder ours, so the start marker goes."""
    local_path(out).joinpath(STARTED).unlink(missing_ok=True)
    atomic_write_text(success_path(out), "")
