"""Every corpus stage in one Spark application: clean → langfilter → dedup → bias_screen.

Each stage writes its own folder ``OUT/<stage>`` in the stage layout and reads the one before
it, through the same ``Stage.run`` a stage's own job calls. A stage whose folder is already
complete is skipped on a rerun only when its inputs and resolved settings equal the ones
recorded in ``corpus.json`` (and every stage after one that ran is rerun, since its input
changed). ``OUT/final`` points at the last stage's folder and ``OUT/corpus.json`` records the
order, the folders and the settings.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

from core.errors import UsageError
from core.files import atomic_write_text
from pipeline.ingest import readers
from pipeline.stage import stagedir
from pipeline.stage.config import config_dict, parse_overrides, read_yaml
from pipeline.stage.contract import STAGES, load_stage


def stage_order(values: list[str] | None) -> list[str]:
    order = list(values or STAGES)
    unknown = [s for s in order if s not in STAGES]
    if unknown:
        raise UsageError(f"unknown stage {unknown[0]!r} (known: {', '.join(STAGES)})")
    if len(set(order)) != len(order):
        raise UsageError(f"a stage is listed twice in {order}")
    if order[0] != "clean":
        raise UsageError("the first stage must be clean: it is the one that reads raw files")
    return order


def split_overrides(pairs: list[str]) -> dict[str, dict[str, str]]:
    """``dedup.threshold=0.7`` → ``{"dedup": {"threshold": "0.7"}}``."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot or stage not in STAGES:
            raise UsageError(f"expected STAGE.key=value with a stage of {STAGES}, got {pair!r}")
        out.setdefault(stage, {}).update(parse_overrides([f"{name}={value}"]))
    return out


def stage_request(inputs: list[str], settings: Any, files: list | None) -> dict:
    """What decides a stage's output: its inputs, its resolved settings and, for the stage
    that reads raw files, each file's size and modification time. A complete stage is
    skipped on a rerun only when this equals what its last run recorded."""
    request = {"inputs": [os.path.abspath(p) for p in inputs],
               "settings": json.loads(json.dumps(config_dict(settings), default=str))}
    if files is not None:
        listing = hashlib.sha256()
        for f in files:
            st = os.stat(f.path)
            listing.update(f"{os.path.abspath(f.path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        request["input_files"] = len(files)
        request["input_listing_sha256"] = listing.hexdigest()
    return request


def previous_requests(path: str) -> dict:
    """The requests recorded by the last run, or none (every stage then reruns)."""
    try:
        with open(path, encoding="utf-8") as f:
            return dict(json.load(f).get("requests") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def plan(inputs: list[str], out: str, config_file: str | None, stages: list[str] | None,
         languages: str | None, overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The stage order and each stage's settings, resolved and checked before Spark starts."""
    config = read_yaml(config_file) if config_file else {}
    order = stage_order(stages or config.get("stages"))
    by_stage = split_overrides(overrides)
    if languages:
        by_stage.setdefault("langfilter", {})["languages"] = languages
    readers.list_inputs(inputs)  # a missing input fails before Spark starts
    stagedir.check_disjoint(inputs, out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"output exists and is not a folder: {out}")
    settings = {name: load_stage(name).load_settings(config_file, by_stage.get(name, {}))
                for name in order}
    return order, settings


def run(spark, inputs: list[str], out: str, order: list[str], settings: dict[str, Any], *,
        overwrite: bool = False, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``order`` over ``inputs`` into ``out``; returns what corpus.json records."""
    os.makedirs(out, exist_ok=True)
    recorded = previous_requests(os.path.join(out, "corpus.json"))
    files, _ = readers.list_inputs(inputs)
    started = time.time()
    previous = list(inputs)
    rerun = overwrite
    summary: dict[str, Any] = {}
    ran, skipped, requests = [], [], {}
    for name in order:
        stage = load_stage(name)
        folder = os.path.join(out, name)
        requests[name] = stage_request(previous, settings[name],
                                       files if stage.reads_raw else None)
        if stagedir.is_complete(folder) and not rerun and recorded.get(name) == requests[name]:
            print(f"[corpus] {name}: complete with the same inputs and settings, skipped "
                  f"({folder})", flush=True)
            skipped.append(name)
        else:
            if stagedir.is_complete(folder) and not rerun:
                print(f"[corpus] {name}: inputs or settings changed since it ran, rerun",
                      flush=True)
            print(f"[corpus] {name}: {' '.join(previous)} → {folder}", flush=True)
            stage.run(spark, previous, folder, settings[name], overwrite=True)
            ran.append(name)
            rerun = True  # every later stage reads what this one just wrote
        previous = [folder]
        # Written after every stage, so a run that dies later still records what completed.
        summary = {
            "stages": order,
            "folders": {s: s for s in order},  # relative to OUT, so the folder can be moved
            "final": order[-1],
            "inputs": list(inputs),
            **(record or {}),
            "ran": ran,
            "skipped": skipped,
            "requests": requests,
            "seconds": round(time.time() - started, 1),
        }
        atomic_write_text(os.path.join(out, "corpus.json"),
                          json.dumps(summary, indent=2, default=str) + "\n")
    final = os.path.join(out, "final")
    if os.path.islink(final):
        os.unlink(final)
    if not os.path.exists(final):
        os.symlink(order[-1], final)
    print(f"[corpus] done in {summary['seconds']}s: {' → '.join(order)}; final: {final}")
    return summary
