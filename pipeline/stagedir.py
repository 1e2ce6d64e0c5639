"""The stage folder: the contract between one stage and the next.

```
DIR/data/part-*.parquet       kept documents
DIR/rejected/part-*.parquet   removed documents, every column plus ``reason``
DIR/stats.json                counts in / kept / rejected by reason, seconds, config, versions
DIR/_SUCCESS                  written last, atomically
```

``_SUCCESS`` is the only proof a folder is complete: it is written after the counts have been
checked, by an atomic rename, so a job killed at any moment leaves a folder that the next
stage refuses and that a rerun clears.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError

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


def check_output(out: str | os.PathLike, overwrite: bool) -> None:
    """Refuse to replace a complete stage folder unless ``overwrite``: checked before any work."""
    p = local_path(out)
    if p.exists() and not p.is_dir():
        raise UsageError(f"output exists and is not a folder: {out}")
    if is_complete(p) and not overwrite:
        raise UsageError(f"output {out} is already complete; pass --overwrite to replace it")


def prepare_output(out: str | os.PathLike, overwrite: bool) -> None:
    """Make ``out`` ready to be written: refuse a complete folder unless ``overwrite``.

    A folder without ``_SUCCESS`` is the remains of a killed run and is always cleared, so a
    rerun never mixes old part files with new ones.
    """
    check_output(out, overwrite)
    p = local_path(out)
    if p.exists():
        # Remove _SUCCESS first: if the removal is interrupted, what is left is incomplete.
        marker = Path(success_path(p))
        if marker.exists():
            marker.unlink()
        shutil.rmtree(p)
    p.mkdir(parents=True, exist_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write through a temporary file and rename, so readers see the old or the new file."""
    target = local_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; a stage folder is read by others on a shared cluster.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    atomic_write_text(success_path(out), "")
