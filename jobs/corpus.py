"""Every corpus stage in one Spark application: clean → langfilter → dedup → bias_screen.

    spark-submit jobs/corpus.py --input RAW... --output DIR [--config configs/corpus.yaml]
                                [--languages en,de] [--set dedup.threshold=0.7]

Each stage writes its own folder ``DIR/<stage>`` in the stage layout and reads the one before
it; a stage whose folder is already complete is skipped on a rerun when its inputs and settings
are the ones recorded in ``corpus.json`` (and every stage after one that ran is rerun, since its
input changed). ``DIR/final`` points at the last stage's folder and
``DIR/corpus.json`` records the order, the folders and the settings.
"""
import argparse
import hashlib
import importlib.util
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from pipeline import cli, readers, stagedir  # noqa: E402
from pipeline.config import read_yaml  # noqa: E402
from pipeline.errors import UsageError  # noqa: E402

STAGES = ("clean", "langfilter", "dedup", "bias_screen")
DEFAULT_ORDER = list(STAGES)


def load_stage_main(stage: str):
    """``main`` of ``jobs/<stage>.py``: the same code path as running the job by itself."""
    path = os.path.join(REPO, "jobs", f"{stage}.py")
    spec = importlib.util.spec_from_file_location(f"corpus_job_{stage}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def stage_order(values: list[str] | None) -> list[str]:
    order = values or DEFAULT_ORDER
    unknown = [s for s in order if s not in STAGES]
    if unknown:
        raise UsageError(f"unknown stage {unknown[0]!r} (known: {', '.join(STAGES)})")
    if len(set(order)) != len(order):
        raise UsageError(f"a stage is listed twice in {order}")
    if order[0] != "clean":
        raise UsageError("the first stage must be clean: it is the one that reads raw files")
    return order


def split_overrides(pairs: list[str]) -> dict[str, list[str]]:
    """``dedup.threshold=0.7`` → ``{"dedup": ["threshold=0.7"]}``."""
    out: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot or stage not in STAGES:
            raise UsageError(f"expected STAGE.key=value with a stage of {STAGES}, got {pair!r}")
        out.setdefault(stage, []).append(f"{name}={value}")
    return out


def stage_request(inputs: list[str], settings: list[str], config_file: str | None,
                  files: list | None) -> dict:
    """What decides a stage's output: its inputs, its own flags, the config file's bytes and,
    for the stage that reads raw files, each file's size and modification time. A complete
    stage is skipped on a rerun only when this equals what its last run recorded."""
    request = {"inputs": [os.path.abspath(p) for p in inputs], "settings": settings,
               "config_sha256": None}
    if config_file:
        with open(config_file, "rb") as f:
            request["config_sha256"] = hashlib.sha256(f.read()).hexdigest()
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="raw files, folders or globs")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--config", metavar="FILE",
                   help="YAML: `stages:` (order) and one section per stage")
    p.add_argument("--stages", help="comma-separated stage order (overrides the config)")
    p.add_argument("--languages", help="languages the langfilter stage keeps (e.g. en,de or all)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="STAGE.KEY=VALUE", help="override one stage setting (repeatable)")
    p.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    p.add_argument("--overwrite", action="store_true", help="rerun every stage")
    args = p.parse_args(argv)

    config = read_yaml(args.config) if args.config else {}
    order = stage_order(args.stages.split(",") if args.stages else config.get("stages"))
    overrides = split_overrides(args.overrides)
    files, _ = readers.list_inputs(args.input)  # a missing input fails before Spark starts
    out = args.output
    stagedir.check_disjoint(args.input, out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"output exists and is not a folder: {out}")
    os.makedirs(out, exist_ok=True)
    recorded = previous_requests(os.path.join(out, "corpus.json"))

    from pipeline import spark_stage

    spark_stage.get_spark(args.master, "corpus")
    started = time.time()
    previous = list(args.input)
    rerun = args.overwrite
    ran, skipped = [], []
    folders, requests = {}, {}
    summary = {}
    for stage in order:
        folder = os.path.join(out, stage)
        folders[stage] = stage  # relative to OUT, so the folder can be moved
        flags = [arg for pair in overrides.get(stage, []) for arg in ("--set", pair)]
        if stage == "langfilter" and args.languages:
            flags += ["--languages", args.languages]
        stage_argv = ["--input", *previous, "--output", folder, "--overwrite", *flags]
        if args.config:
            stage_argv += ["--config", args.config]
        requests[stage] = stage_request(previous, flags, args.config,
                                        files if stage == order[0] else None)
        if (stagedir.is_complete(folder) and not rerun
                and recorded.get(stage) == requests[stage]):
            print(f"[corpus] {stage}: complete with the same inputs and settings, skipped "
                  f"({folder})", flush=True)
            skipped.append(stage)
        else:
            if stagedir.is_complete(folder) and not rerun:
                print(f"[corpus] {stage}: inputs or settings changed since it ran, rerun",
                      flush=True)
            print(f"[corpus] {stage}: {' '.join(previous)} → {folder}", flush=True)
            load_stage_main(stage)(stage_argv)
            ran.append(stage)
            rerun = True  # every later stage reads what this one just wrote
        previous = [folder]
        # Written after every stage, so a run that dies later still records what completed.
        summary = {
            "stages": order,
            "folders": folders,
            "final": order[-1],
            "inputs": list(args.input),
            "config_file": args.config,
            "config": config,
            "overrides": args.overrides,
            "languages": args.languages,
            "ran": ran,
            "skipped": skipped,
            "requests": requests,
            "seconds": round(time.time() - started, 1),
        }
        stagedir.atomic_write_text(os.path.join(out, "corpus.json"),
                                   json.dumps(summary, indent=2, default=str) + "\n")

    final = os.path.join(out, "final")
    if os.path.islink(final):
        os.unlink(final)
    if not os.path.exists(final):
        os.symlink(order[-1], final)
    print(f"[corpus] done in {summary['seconds']}s: {' → '.join(order)}; final: {final}")


if __name__ == "__main__":
    cli.run(main)
