"""Same output before and after a refactor: one digest of everything the corpus path writes.

Why this exists: issue 12 reorganises the package layout as a *pure move*, and "pure" is proved
by identical outputs, not by reading the diff. This script runs the corpus path of one checkout
through its stable command-line interfaces only (so it works for any package layout) and writes
a JSON digest; ``--compare`` puts two digests side by side.

    python bench/same_output.py --repo REPO --input RAW... --config CFG --languages L \\
        --work DIR --digest FILE.json [--vocab-size 8000]
    python bench/same_output.py --compare A.json B.json     # exit 1 on any difference

What runs, each as a subprocess with cwd=REPO, REPO's own ``.venv`` (``REPO/.venv/bin/python``,
``spark-submit`` from the same bin folder), ``PYTHONPATH=REPO`` and the Makefile's environment
(``SPARK_CONF_DIR=REPO/conf``, ``PYSPARK_PYTHON``/``PYSPARK_DRIVER_PYTHON``, the venv on
``PATH``):

1. ``spark-submit --master local[2] --driver-memory 4g jobs/corpus.py --input RAW...
   --output WORK/corpus --config CFG --languages L``
2. ``python -m tokenizer.train --input WORK/corpus/final --output WORK/corpus/tokenizer
   --vocab-size N --num-threads 2 --overwrite`` (the thread count is recorded inside the model
   file by SentencePiece, so it is fixed here: the model's sha256 must not depend on the
   machine's core count)
3. ``spark-submit --master local[2] --driver-memory 4g jobs/encode.py --input WORK/corpus/final
   --tokenizer WORK/corpus/tokenizer --output WORK/corpus/tokens --overwrite``

The project is installed in the venv in editable mode, pointing at one checkout; before
anything runs, the script checks (in the driver's Python and inside a Spark executor) that
``pipeline`` and ``tokenizer`` are imported from REPO, and stops otherwise.

The digest, per item (``--compare`` prints one line per item):

* every stage folder under ``WORK/corpus`` (clean, langfilter, dedup, bias_screen): the rows of
  ``data/`` and ``rejected/`` (pyarrow, every column, each row as JSON with sorted keys, rows
  sorted by ``id``; sha256 over all of them, and the row count) and their schema (column names
  and types, in file order);
* each ``stats.json``: the counts (docs/bytes in, kept, rejected, by reason) and the stage's own
  extra numbers (``ingest``, ``dedup``, ...); never ``seconds``, ``finished_at``, the paths,
  the Spark master or the package versions;
* ``bias_report.json``, one item per top-level key; the only change made to it is that the
  policy and model ``file`` paths are reduced to their names (a move relocates them, and the
  checkout's root is part of them; their sha256 are kept beside them and compared);
* the tokenizer: sha256 of ``tokenizer.model`` and ``tokenizer.vocab``, and the sample,
  vocabulary and settings recorded in ``tokenizer.json`` (not its ``input`` path);
* the token shards: each ``.bin``'s sha256, and the manifest's counts and settings (not its
  paths, seconds or versions).

Inputs used for issue 12 (built once, the same files for the "before" and "after" runs):

* the demo corpus: ``python -m pipeline.demo_corpus --output /tmp/eq/demo_raw`` (3,286
  documents, 25 MB; the builder as it was before the move, run once; the folder is the input to
  both runs), ``--config configs/demo.yaml``, the demo's 14 languages, vocabulary 8000;
* ``../shared/data/web``, all of it (3.5 MB), ``--config configs/corpus.yaml --languages en``,
  vocabulary 8000 too (the 428 English documents, 1.4 MB, left after the filters are enough).

Inputs are passed to the jobs as absolute paths; give both checkouts the same paths (ids are
relative to the input folder, but ``clean``'s stats list skipped files by their full path).

Checked on the pre-move commit (80da87c), 2 cores: two runs of the same checkout gave identical
digests (web and demo), and so did a copy of it at another path (the checkout's root leaks into
no compared item). Web ~2.5 min, demo ~3.5-4 min a run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("clean", "langfilter", "dedup", "bias_screen")
DEMO_LANGS = "en,de,fr,es,it,pt,nl,sv,pl,ru,ja,zh,uk,cs"
SPARK_FLAGS = ["--master", "local[2]", "--driver-memory", "4g"]

# stats.json keys that describe one run, not its output: wall time, clock, where it ran, with
# what. Everything else in stats.json is compared.
STATS_RUN_KEYS = {"seconds", "finished_at", "inputs", "output", "spark", "versions", "config"}
# stats.json: the counts, compared as one item.
STATS_COUNTS = ("docs_in", "docs_kept", "docs_rejected", "bytes_in", "bytes_kept",
                "bytes_rejected", "rejected_by_reason", "rejected_bytes_by_reason")


def fail(msg: str) -> None:
    print(f"same_output: {msg}", file=sys.stderr)
    sys.exit(2)


# --- running one checkout ---------------------------------------------------------------------


def repo_env(repo: Path) -> dict[str, str]:
    """The Makefile's environment for REPO, plus PYTHONPATH=REPO (the venv's editable install
    points at one checkout; PYTHONPATH comes before it on sys.path)."""
    venv_bin = repo / ".venv" / "bin"
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env.update({
        "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        "SPARK_CONF_DIR": str(repo / "conf"),
        "PYSPARK_PYTHON": str(venv_bin / "python"),
        "PYSPARK_DRIVER_PYTHON": str(venv_bin / "python"),
        "PYTHONPATH": str(repo),
    })
    return env


def run_step(name: str, cmd: list[str], repo: Path, env: dict, logs: Path) -> float:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    print(f"[same_output] {name}: {' '.join(cmd)}", flush=True)
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=repo, env=env, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.time() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        fail(f"{name} exited {proc.returncode} after {seconds:.0f}s; log {log}:\n{tail}")
    print(f"[same_output] {name}: {seconds:.1f}s (log {log})", flush=True)
    return seconds


IMPORT_CHECK = r'''
import json, os, sys
def where(_=None):
    import pipeline, tokenizer
    return json.dumps({m.__name__: [os.path.realpath(p) for p in m.__path__]
                       for m in (pipeline, tokenizer)})
if len(sys.argv) > 1 and sys.argv[1] == "spark":
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.master("local[1]").appName("same_output_check").getOrCreate()
    print("EXECUTOR " + spark.sparkContext.parallelize([0], 1).map(where).collect()[0])
    spark.stop()
else:
    print("DRIVER " + where())
'''


def check_imports(repo: Path, env: dict, work: Path) -> dict:
    """Fail loudly unless ``pipeline`` and ``tokenizer`` resolve under REPO, in the driver's
    Python and inside a Spark executor's Python worker."""
    script = work / "_import_check.py"
    script.write_text(IMPORT_CHECK)
    py, submit = repo / ".venv" / "bin" / "python", repo / ".venv" / "bin" / "spark-submit"
    found = {}
    for label, cmd in (("DRIVER", [str(py), str(script)]),
                       ("EXECUTOR", [str(submit), *SPARK_FLAGS[:2], str(script), "spark"])):
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(label + " ")), None)
        if proc.returncode != 0 or line is None:
            fail(f"import check ({label.lower()}) failed, exit {proc.returncode}:\n"
                 f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        paths = json.loads(line[len(label) + 1:])
        root = os.path.realpath(repo)
        for mod, dirs in paths.items():
            bad = [d for d in dirs if not (d + os.sep).startswith(root + os.sep)]
            if bad or not dirs:
                fail(f"{label.lower()}: {mod} is imported from {dirs}, not from {root}: the "
                     "venv's editable install would be tested instead of --repo")
        found[label.lower()] = paths
    script.unlink()
    print(f"[same_output] imports resolve under {repo} (driver and executor)", flush=True)
    return found


def run_pipeline(args) -> dict:
    repo = Path(args.repo).resolve()
    work = Path(args.work).absolute()
    py, submit = repo / ".venv" / "bin" / "python", repo / ".venv" / "bin" / "spark-submit"
    for exe in (py, submit):
        if not os.access(exe, os.X_OK):
            fail(f"{exe} not found: --repo needs its .venv (a symlink to one is fine)")
    inputs = [os.path.abspath(p) for p in args.input]
    for p in inputs:
        if not os.path.exists(p):
            fail(f"input not found: {p}")
    out = work / "corpus"
    if out.exists():
        # Only ever remove what this script wrote before: a corpus folder it can recognise.
        if (out / "corpus.json").exists() or not any(out.iterdir()):
            shutil.rmtree(out)
        else:
            fail(f"{out} exists and is not a corpus output; choose another --work")
    work.mkdir(parents=True, exist_ok=True)
    env = repo_env(repo)
    imports = check_imports(repo, env, work)
    logs = work / "logs"
    seconds = {}
    corpus_cmd = [str(submit), *SPARK_FLAGS, "jobs/corpus.py", "--input", *inputs,
                  "--output", str(out), "--config", args.config]
    if args.languages:
        corpus_cmd += ["--languages", args.languages]
    seconds["corpus"] = run_step("corpus", corpus_cmd, repo, env, logs)
    tok_cmd = [str(py), "-m", "tokenizer.train", "--input", str(out / "final"),
               "--output", str(out / "tokenizer"), "--vocab-size", str(args.vocab_size),
               "--num-threads", "2", "--overwrite"]
    seconds["tokenizer"] = run_step("tokenizer", tok_cmd, repo, env, logs)
    enc_cmd = [str(submit), *SPARK_FLAGS, "jobs/encode.py", "--input", str(out / "final"),
               "--tokenizer", str(out / "tokenizer"), "--output", str(out / "tokens"),
               "--overwrite"]
    seconds["encode"] = run_step("encode", enc_cmd, repo, env, logs)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"],
                           capture_output=True, text=True).stdout.splitlines()
    return {"repo": str(repo), "git_head": head, "git_status": dirty,
            "inputs": inputs, "config": args.config, "languages": args.languages,
            "vocab_size": args.vocab_size, "work": str(work), "seconds": seconds,
            "imports": imports,
            "commands": [" ".join(c) for c in (corpus_cmd, tok_cmd, enc_cmd)]}


# --- digesting the outputs --------------------------------------------------------------------


def _json_default(v):
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "as_tuple"):  # Decimal
        return str(v)
    raise TypeError(f"not serialisable: {type(v)}")


def _canon(v):
    """Floats written exactly (repr), NaN and infinities as strings (json would write bare
    NaN; same bytes either way, but this keeps the serialisation valid JSON)."""
    if isinstance(v, float):
        return repr(v) if (math.isnan(v) or math.isinf(v)) else v
    if isinstance(v, dict):
        return {k: _canon(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_canon(x) for x in v]
    return v


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parquet_digest(folder: Path) -> tuple[dict, dict]:
    """(rows item, schema item) of a Parquet folder, independent of how rows fell into files."""
    import pyarrow.dataset as ds

    files = sorted(p for p in folder.rglob("*.parquet")
                   if not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts))
    if not files:
        return {"rows": 0, "sha256": hashlib.sha256().hexdigest()}, {"columns": None}
    dataset = ds.dataset([str(p) for p in files], format="parquet")
    table = dataset.to_table()
    columns = [f"{f.name}: {f.type}" for f in table.schema]
    rows = table.to_pylist()
    lines = [json.dumps(_canon(r), sort_keys=True, ensure_ascii=False, default=_json_default)
             for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (str(rows[i].get("id")), lines[i]))
    h = hashlib.sha256()
    for i in order:
        h.update(lines[i].encode("utf-8"))
        h.update(b"\n")
    ids = [r.get("id") for r in rows]
    return ({"rows": len(rows), "distinct_ids": len(set(ids)), "sha256": h.hexdigest()},
            {"columns": columns})


def normalise_report(report: dict) -> dict:
    """bias_report.json as compared: paths of the policy and model files reduced to their names
    (they hold the checkout's root, and a move relocates them; the sha256 beside each is kept)."""
    report = json.loads(json.dumps(report))
    prov = report.get("provenance") or {}
    for key in ("policy", "model", "url_blocklist"):
        entry = prov.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            entry["file"] = os.path.basename(entry["file"])
    return report


def digest_outputs(out: Path) -> dict:
    items: dict[str, object] = {}
    for stage in STAGES:
        folder = out / stage
        if not folder.is_dir():
            items[f"{stage}"] = "missing"
            continue
        items[f"{stage}/_SUCCESS"] = (folder / "_SUCCESS").exists()
        for part in ("data", "rejected"):
            rows, schema = parquet_digest(folder / part)
            items[f"{stage}/{part} rows"] = rows
            items[f"{stage}/{part} schema"] = schema
        stats = json.loads((folder / "stats.json").read_text())
        items[f"{stage}/stats counts"] = {k: stats.get(k) for k in STATS_COUNTS}
        for key in sorted(set(stats) - set(STATS_COUNTS) - STATS_RUN_KEYS):
            value = stats[key]
            if isinstance(value, dict):  # a stage's own figures may time its steps too
                value = {k: v for k, v in value.items() if k != "seconds_by_step"}
            items[f"{stage}/stats {key}"] = value
        report = folder / "bias_report.json"
        if report.exists():
            for key, value in sorted(normalise_report(json.loads(report.read_text())).items()):
                items[f"{stage}/bias_report {key}"] = value

    tok = out / "tokenizer"
    for name in ("tokenizer.model", "tokenizer.vocab"):
        path = tok / name
        items[f"tokenizer/{name} sha256"] = sha256_file(path) if path.exists() else "missing"
    info = json.loads((tok / "tokenizer.json").read_text())
    for key in sorted(set(info) - {"input", "versions"}):
        items[f"tokenizer/tokenizer.json {key}"] = info[key]

    tokens = out / "tokens"
    manifest = json.loads((tokens / "manifest.json").read_text())
    for name in sorted(p.name for p in tokens.glob("*.bin")):
        items[f"tokens/{name} sha256"] = sha256_file(tokens / name)
    m = dict(manifest)
    tokenizer = {k: v for k, v in (m.pop("tokenizer", None) or {}).items() if k not in ("path", "dir")}
    for key in ("corpus", "seconds", "versions"):  # a path, wall time, package versions
        m.pop(key, None)
    # "partitions": Spark's partition count for the encode job, decided from the input size
    # and the core count; the shards are documented to be the same bytes for any count, and
    # their sha256 are compared above, so it stays in as a settings item, not hidden.
    items["tokens/manifest splits"] = m.pop("splits", None)
    items["tokens/manifest docs_in"] = m.pop("docs_in", None)
    items["tokens/manifest tokenizer"] = tokenizer
    items["tokens/manifest format and settings"] = m
    return items


def cmd_run(args) -> int:
    if not args.input or not args.config or not args.work or not args.digest:
        fail("a run needs --repo, --input, --config, --work and --digest (or --compare A B)")
    t0 = time.time()
    meta = run_pipeline(args)
    t1 = time.time()
    items = digest_outputs(Path(args.work).absolute() / "corpus")
    meta["seconds"]["digest"] = round(time.time() - t1, 1)
    meta["seconds"]["total"] = round(time.time() - t0, 1)
    meta["seconds"] = {k: round(v, 1) for k, v in meta["seconds"].items()}
    digest = {"_about": "bench/same_output.py digest; keys starting with _ are not compared",
              "_run": meta, "items": items}
    Path(args.digest).parent.mkdir(parents=True, exist_ok=True)
    Path(args.digest).write_text(json.dumps(digest, indent=1, sort_keys=True,
                                            ensure_ascii=False, default=_json_default) + "\n")
    print(f"[same_output] {len(items)} items -> {args.digest} "
          f"({meta['seconds']['total']:.0f}s: {meta['seconds']})")
    return 0


# --- comparing two digests --------------------------------------------------------------------


def _short(v, width=60) -> str:
    s = json.dumps(v, sort_keys=True, ensure_ascii=False)
    if isinstance(v, dict) and "rows" in v and "sha256" in v:
        s = f"rows={v.get('rows')} sha256={str(v['sha256'])[:12]}"
    elif isinstance(v, str) and len(v) == 64:
        s = v[:12]
    return s if len(s) <= width else s[:width - 1] + "…"


def cmd_compare(a_path: str, b_path: str) -> int:
    a = json.loads(Path(a_path).read_text())["items"]
    b = json.loads(Path(b_path).read_text())["items"]
    keys = list(a) + [k for k in b if k not in a]
    width = max(len(k) for k in keys)
    different = 0
    print(f"{'item':<{width}}  result")
    for k in keys:
        if k not in a or k not in b:
            different += 1
            print(f"{k:<{width}}  DIFFERENT  (only in {'B' if k not in a else 'A'})")
        elif a[k] == b[k]:
            print(f"{k:<{width}}  same       {_short(a[k])}")
        else:
            different += 1
            print(f"{k:<{width}}  DIFFERENT  A: {_short(a[k])}")
            print(f"{'':<{width}}             B: {_short(b[k])}")
    print(f"\n{len(keys) - different} of {len(keys)} items the same; {different} different"
          f" ({a_path} vs {b_path})")
    return 1 if different else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two digests")
    p.add_argument("--repo", default=".", help="the checkout to run (default: .)")
    p.add_argument("--input", nargs="+", metavar="RAW", help="raw files or folders")
    p.add_argument("--config", help="corpus config, relative to --repo (configs/demo.yaml)")
    p.add_argument("--languages", help=f"langfilter languages (the demo's: {DEMO_LANGS})")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--work", help="scratch folder; WORK/corpus is replaced")
    p.add_argument("--digest", help="digest JSON to write")
    args = p.parse_args(argv)
    if args.compare:
        return cmd_compare(*args.compare)
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
