"""How each corpus stage's time, memory and shuffle grow with the input: the measured basis of
docs/scaling.md.

    python -m bench.scaling [--sizes 6,18,54] [--quick]

Builds inputs of 6, 18 and 54 MB (Gutenberg books cut into ~5 KB pieces, 10% web documents
read with the project's own readers, 5% planted near copies), nested so that each contains the
one before. One `spark-submit --master local[2]` application with Spark's event log on runs
jobs/corpus.py on a 1 MB warm-up input and then twice on each size (interleaved), so no size
pays for a cold JVM and a slow spell of the machine is seen as a spread between rounds;
per stage it records wall seconds (stats.json), the CPU seconds of the
job's processes (JVM, Python driver and workers, sampled from /proc), shuffle bytes written,
bytes spilled and peak execution memory (event log; tasks go to the stage whose time window
holds them) and the peak resident memory of the job's processes. CPU seconds are the figure
that counts: this machine's two cores are shared with other jobs, which stretch wall time by
anything up to 3x from one run to the next. At these sizes a stage's fixed cost (Spark jobs
planned and launched, Python workers started, models loaded) is as large as its work, so the
exponent k of a stage is taken from differences, where the fixed cost a cancels: for
cost = a + b * size**k and sizes growing r times, (c3 - c2) / (c2 - c1) = r**k. 1 is linear;
the wide ratio (r = 3) keeps the differences well above the noise.
Writes bench/results/scaling.json. Needs ../shared/data.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.proctree import process_tree
from pipeline.ingest import readers
from pipeline.stage.contract import STAGES

DATA = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results" / "scaling.json"
CORES = 2
PIECE_LINES = 80  # ~5 KB of a book per document
WEB_SHARE, NEAR_SHARE = 0.10, 0.05
# a stage whose exponent, less its measurement error, is at most this is called linear
LINEAR_ENOUGH = 1.1
WARM_UP = 1  # MB: run first and left out, so that no size pays for a cold JVM
REPEATS = 2


def row(name, figure, unit, baseline=None, ratio=None, target=None, met=None) -> dict:
    return {"name": name, "figure": figure, "unit": unit, "baseline": baseline, "ratio": ratio,
            "target": target, "met": met}


# --- inputs ------------------------------------------------------------------------------------

def book_pieces() -> list[str]:
    pieces = []
    for path in sorted((DATA / "books").glob("*.txt")):
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        pieces += ["\n".join(lines[i:i + PIECE_LINES]) for i in range(0, len(lines), PIECE_LINES)]
    return [p for p in pieces if len(p.split()) >= 50]


def web_documents() -> list[str]:
    """Every document the readers get out of the crawl fixtures (WARC, WET, JSONL, HTML)."""
    files, _ = readers.list_inputs([str(DATA / "web")])
    docs = []
    for f in files:
        docs += [r["text"] for r in readers.read_file(f) if r["reason"] is None and r["text"].strip()]
    return docs


def document_stream(seed: int = 0):
    """Books and web interleaved (one web document per nine pieces of books), and now and then
    a near copy of an earlier document: the same sequence for every size, so a larger input
    holds every smaller one."""
    rng = random.Random(seed)
    books, web = book_pieces(), web_documents()
    rng.shuffle(books)
    rng.shuffle(web)
    seen: list[str] = []
    w = 0
    for i, piece in enumerate(books):
        if i % round(1 / WEB_SHARE - 1) == 0 and w < len(web):
            yield "web", web[w]
            w += 1
        yield "books", piece
        seen.append(piece)
        if rng.random() < NEAR_SHARE:
            words = rng.choice(seen).split(" ")
            for _ in range(max(1, len(words) // 100)):
                words[rng.randrange(len(words))] = "edited"
            yield "near", " ".join(words)


def write_input(folder: Path, target_bytes: int) -> dict:
    folder.mkdir(parents=True)
    n = size = 0
    with gzip.open(folder / "docs.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as f:
        for kind, text in document_stream():
            f.write(json.dumps({"text": text, "kind": kind}) + "\n")
            n += 1
            size += len(text.encode("utf-8"))
            if size >= target_bytes:
                break
    if size < target_bytes:
        raise SystemExit(f"bench.scaling: the books and web files give {size / 1e6:.0f} MB, "
                         f"less than {target_bytes / 1e6:.0f} MB; choose smaller --sizes")
    return {"docs": n, "bytes": size}


# --- one run -----------------------------------------------------------------------------------

def tree_usage(root: int) -> tuple[float, int]:
    """(CPU seconds, resident kB) of a process and all its descendants: the JVM, the Python
    driver and the Python workers."""
    procs = process_tree(root)
    return sum(p.cpu_s for p in procs), sum(p.rss_kb for p in procs)


def spark_submit(args: list[str], events: Path, *conf: str, watch=None) -> list[tuple]:
    """`spark-submit --master local[2] ARGS` with the event log in ``events``; samples of
    (time, CPU seconds, RSS kB of the job's processes, watch()) every quarter second."""
    events.mkdir(parents=True)
    submit = Path(sys.executable).parent / "spark-submit"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOG_LEVEL="ERROR", SPARK_PROGRESS="false")
    settings = ["spark.eventLog.enabled=true", f"spark.eventLog.dir=file://{events}",
                "spark.eventLog.rolling.enabled=false", "spark.eventLog.compress=false",
                "spark.sql.shuffle.partitions=8", *conf]
    cmd = [str(submit), "--master", f"local[{CORES}]", "--driver-memory", "4g"]
    cmd += [x for c in settings for x in ("--conf", c)] + args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    samples = []
    while proc.poll() is None:
        samples.append((time.time(), *tree_usage(proc.pid), watch() if watch else None))
        time.sleep(0.25)
    log = proc.communicate()[0].decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{log[-3000:]}")
    return samples


def run_corpus_app(inputs: list[Path], work: Path, events: Path) -> list[tuple]:
    """One application that runs jobs/corpus.py on each input in turn (this file's --driver
    mode), so every size after the first meets a warm JVM and warm Python workers."""
    return spark_submit([str(Path(__file__).resolve()), "--driver", str(work), *map(str, inputs)], events)


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:  # written and deleted between the listing and the stat
                pass
    return total


def dedup_without_broadcast(stage: Path, out: Path, events: Path) -> dict:
    """The dedup job alone with broadcast joins off: below a few hundred MB Spark broadcasts the
    smaller side of the plan's joins; past that (any real corpus) it shuffles both sides, the
    documents included. Shuffle bytes and the peak size of the checkpoint folder, per input byte."""
    samples = spark_submit([str(REPO / "jobs" / "dedup.py"), "--input", str(stage), "--output", str(out)],
                           events, "spark.sql.autoBroadcastJoinThreshold=-1",
                           watch=lambda: folder_bytes(out / "_checkpoints"))
    bytes_in = json.loads((out / "stats.json").read_text())["bytes_in"]
    shuffled = sum(t["shuffle_write"] for t in task_metrics(events))
    return {"bytes_in": bytes_in, "shuffle_per_input_byte": round(shuffled / bytes_in, 3),
            "checkpoint_peak_per_input_byte": round(max(x[3] for x in samples) / bytes_in, 3)}


def drive(work: Path, inputs: list[str]):
    """--driver mode, inside spark-submit: jobs/corpus.py's main on each input, one session."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("corpus_job", REPO / "jobs" / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for i, src in enumerate(inputs):
        module.main(["--input", src, "--output", str(work / f"out_{i}")])


def stage_windows(out: Path) -> dict[str, dict]:
    """Each stage's stats.json, with its [start, end] in epoch seconds."""
    windows = {}
    for stage in STAGES:
        stats = json.loads((out / stage / "stats.json").read_text())
        end = datetime.fromisoformat(stats["finished_at"]).timestamp() + 1  # finished_at is whole seconds
        windows[stage] = {"stats": stats, "start": end - 1 - stats["seconds"], "end": end}
    return windows


def task_metrics(events: Path) -> list[dict]:
    """Per task: launch time and what it shuffled, spilled and held, from the event log."""
    tasks = []
    for path in (p for p in events.rglob("*") if p.is_file()):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                ev = json.loads(line)
                m = ev.get("Task Metrics") or {}
                shuffle = m.get("Shuffle Write Metrics") or {}
                tasks.append({"t": ev["Task Info"]["Launch Time"] / 1000,
                              "shuffle_write": shuffle.get("Shuffle Bytes Written", 0),
                              "spill": m.get("Disk Bytes Spilled", 0),
                              "peak_exec": m.get("Peak Execution Memory", 0)})
    return tasks


def measure(out: Path, samples: list, tasks: list[dict]) -> dict[str, dict]:
    """Each stage of one corpus run: its stats, and the CPU, memory and shuffle of its window."""
    result = {}
    for stage, w in stage_windows(out).items():
        inside = [t for t in tasks if w["start"] <= t["t"] <= w["end"]]
        during = [(cpu, kb) for ts, cpu, kb, _ in samples if w["start"] <= ts <= w["end"]]
        s = w["stats"]
        result[stage] = {
            "cpu_seconds": round(during[-1][0] - during[0][0], 2) if len(during) > 1 else 0.0,
            "seconds": s["seconds"], "docs_in": s["docs_in"], "bytes_in": s["bytes_in"],
            "docs_kept": s["docs_kept"], "rejected_by_reason": s["rejected_by_reason"],
            "shuffle_write_bytes": sum(t["shuffle_write"] for t in inside),
            "spill_bytes": sum(t["spill"] for t in inside),
            "peak_task_exec_bytes": max((t["peak_exec"] for t in inside), default=0),
            "tasks": len(inside),
            "peak_rss_mb": round(max((kb for _, kb in during), default=0) / 1024, 1),
        }
        if "dedup" in s:  # LSH bands, candidate edges, component rounds
            result[stage]["dedup"] = s["dedup"]
    return result


def mean_run(reps: list[dict]) -> dict[str, dict]:
    """The rounds of one size as one: counts from the first, costs averaged, with cpu_spread
    the half-range of the CPU seconds over their mean (how far to trust a difference)."""
    out = {}
    for stage in STAGES:
        first = dict(reps[0][stage])
        cpu = [r[stage]["cpu_seconds"] for r in reps]
        first["cpu_seconds"] = round(sum(cpu) / len(cpu), 2)
        first["cpu_spread"] = round((max(cpu) - min(cpu)) / 2 / max(first["cpu_seconds"], 1e-9), 3)
        first["seconds"] = round(sum(r[stage]["seconds"] for r in reps) / len(reps), 2)
        out[stage] = first
    return out


# --- fit ---------------------------------------------------------------------------------------

def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def marginal_exponent(xs: list[float], ys: list[float], errs: list[float]) -> tuple[float, float] | None:
    """k of y = a + b * x**k from three sizes in geometric progression: the fixed cost a
    cancels in the differences, (y3 - y2) / (y2 - y1) = (x3 / x2) ** k; and its error, carried
    from ``errs`` (each y's round-to-round half-range). None when noise makes a difference
    negative."""
    d1, d2 = ys[1] - ys[0], ys[2] - ys[1]
    if d1 <= 0 or d2 <= 0:
        return None
    log_r = math.log(xs[2] / xs[1])
    rel1 = math.hypot(errs[0], errs[1]) / d1
    rel2 = math.hypot(errs[1], errs[2]) / d2
    return math.log(d2 / d1) / log_r, math.hypot(rel1, rel2) / log_r


def fit(runs: dict[float, dict]) -> dict[str, dict]:
    """Per stage: the exponent of CPU seconds (the figure that other jobs on the machine do not
    inflate) against input bytes with the fixed cost cancelled, the exponent with it left in,
    the same for wall seconds, the fixed cost and marginal rate of a straight-line fit, and
    what the largest run shuffled and held."""
    fits = {}
    sizes = sorted(runs)
    for stage in STAGES:
        xs = [runs[s][stage]["bytes_in"] for s in sizes]
        cpu = [runs[s][stage]["cpu_seconds"] for s in sizes]
        wall = [runs[s][stage]["seconds"] for s in sizes]
        fixed, per_byte = linear_fit(xs, cpu)
        errs = [runs[s][stage].get("cpu_spread", 0.0) * runs[s][stage]["cpu_seconds"] for s in sizes]
        k = marginal_exponent(xs, cpu, errs)
        big = runs[sizes[-1]][stage]
        fits[stage] = {
            "exponent_cpu_marginal": None if k is None else round(k[0], 3),
            "exponent_cpu_marginal_error": None if k is None else round(k[1], 3),
            "exponent_cpu": round(slope(xs, cpu), 3),
            "exponent_wall": round(slope(xs, wall), 3),
            "fixed_cpu_seconds": round(fixed, 2),
            # what one more MB costs once the fixed cost is paid: MB per CPU second = MB/s per core
            "mb_per_cpu_second": round(1e-6 / per_byte, 3) if per_byte > 0 else None,
            "mb_per_cpu_second_all_in": round(xs[-1] / 1e6 / max(cpu[-1], 1e-3), 3),
            "shuffle_per_input_byte": round(big["shuffle_write_bytes"] / max(big["bytes_in"], 1), 3),
            "spill_per_input_byte": round(big["spill_bytes"] / max(big["bytes_in"], 1), 3),
            "peak_rss_mb": big["peak_rss_mb"],
            "peak_task_exec_mb": round(big["peak_task_exec_bytes"] / 2**20, 1),
            "tasks": [runs[s][stage]["tasks"] for s in sizes],
        }
    return fits


def rows_for(runs: dict[float, dict], fits: dict) -> list[dict]:
    rows = []
    small, large = min(runs), max(runs)
    for stage in STAGES:
        f = fits[stage]
        k, err = f["exponent_cpu_marginal"], f["exponent_cpu_marginal_error"]
        rows.append(row(f"{stage}: scaling exponent, CPU seconds vs input bytes, fixed cost cancelled "
                        f"(baseline: linear; error ±{err})", k, "exponent", 1.0, k,
                        f"<= {LINEAR_ENOUGH} within the error", None if k is None else k - err <= LINEAR_ENOUGH))
        rows.append(row(f"{stage}: scaling exponent, CPU seconds with the fixed cost left in",
                        f["exponent_cpu"], "exponent", 1.0, f["exponent_cpu"], "reported", None))
        rows.append(row(f"{stage}: scaling exponent, wall seconds (noisy: shared machine)",
                        f["exponent_wall"], "exponent", 1.0, f["exponent_wall"], "reported", None))
        rows.append(row(f"{stage}: marginal MB per CPU second, straight-line fit {small}-{large} MB "
                        f"(baseline: all-in at {large} MB)", f["mb_per_cpu_second"], "MB/s/core",
                        f["mb_per_cpu_second_all_in"],
                        round(f["mb_per_cpu_second"] / f["mb_per_cpu_second_all_in"], 2)
                        if f["mb_per_cpu_second"] else None, "reported", None))
        rows.append(row(f"{stage}: fixed cost, intercept of the straight-line fit", f["fixed_cpu_seconds"],
                        "CPU s", None, None, "reported", None))
        for size in sorted(runs):
            r = runs[size][stage]
            rows.append(row(f"{stage}: {size} MB ({r['docs_in']} docs in): CPU seconds (baseline: wall "
                            f"seconds)", r["cpu_seconds"], "CPU s", r["seconds"],
                            round(r["cpu_seconds"] / max(r["seconds"], 1e-9), 2), "reported", None))
        spread = max(runs[size][stage].get("cpu_spread", 0.0) for size in runs)
        rows.append(row(f"{stage}: CPU seconds, largest half-range between rounds over the mean",
                        round(100 * spread, 1), "%", None, None, "reported", None))
        rows.append(row(f"{stage}: shuffle bytes written per input byte at {large} MB",
                        f["shuffle_per_input_byte"], "B/B", None, None, "reported", None))
        rows.append(row(f"{stage}: peak RSS of the job's processes at {large} MB (baseline: at {small} MB)",
                        f["peak_rss_mb"], "MB", runs[small][stage]["peak_rss_mb"],
                        round(f["peak_rss_mb"] / max(runs[small][stage]["peak_rss_mb"], 1), 2), "reported", None))
    return rows


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--driver"]:
        drive(Path(argv[1]), argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6,18,54",
                        help="three input sizes in MB in geometric progression (default 6,18,54)")
    parser.add_argument("--quick", action="store_true", help="1, 2, 4 MB: a smoke run")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"bench.scaling: shared data not found at {DATA}; nothing to measure")
        return
    sizes = [1, 2, 4] if args.quick else [float(s) for s in args.sizes.split(",")]
    sizes = [int(s) if float(s).is_integer() else s for s in sizes]
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    try:
        inputs = {size: write_input(work / f"in_{size}", int(size * 1e6)) for size in [WARM_UP, *sizes]}
        order = [WARM_UP] + sizes * REPEATS  # interleaved, so a slow spell of the machine hits every size
        print(f"[scaling] one local[{CORES}] application: a {WARM_UP} MB warm-up, then {REPEATS} rounds of "
              + ", ".join(f"{s} MB ({inputs[s]['docs']} docs)" for s in sizes), flush=True)
        samples = run_corpus_app([work / f"in_{s}" for s in order], work, work / "events")
        tasks = task_metrics(work / "events")
        measured = [(size, measure(work / f"out_{i}", samples, tasks)) for i, size in enumerate(order)]
        warm_up = measured[0][1]
        repeats = {size: [m for s, m in measured[1:] if s == size] for size in sizes}
        runs = {size: mean_run(reps) for size, reps in repeats.items()}
        for size in sizes:
            print(f"[scaling] {size} MB: " + ", ".join(
                f"{s} {runs[size][s]['seconds']:.1f}s wall {runs[size][s]['cpu_seconds']:.1f}s CPU "
                f"(±{runs[size][s]['cpu_spread']:.0%})" for s in STAGES), flush=True)
        fits = fit(runs)
        middle = sizes[len(sizes) // 2]
        print(f"[scaling] dedup on the {middle} MB langfilter output with broadcast joins off ...", flush=True)
        no_broadcast = dedup_without_broadcast(work / f"out_{order.index(middle)}" / "langfilter",
                                               work / "dedup_no_broadcast", work / "events_no_broadcast")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = rows_for(runs, fits)
    rows.append(row(f"dedup: shuffle bytes written per input byte at {middle} MB with broadcast joins off, "
                    f"as at any real size (baseline: with them)", no_broadcast["shuffle_per_input_byte"], "B/B",
                    round(runs[middle]["dedup"]["shuffle_write_bytes"] / runs[middle]["dedup"]["bytes_in"], 3), None,
                    "reported", None))
    rows.append(row(f"dedup: peak size of the checkpoint folder per input byte at {middle} MB",
                    no_broadcast["checkpoint_peak_per_input_byte"], "B/B", None, None, "reported", None))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "scaling",
        "machine": f"{os.cpu_count()} cores, local[{CORES}], shared with other jobs",
        "seconds": round(time.time() - started), "inputs_mb": sizes, "inputs": inputs, "warm_up": warm_up,
        "runs": runs, "repeats": repeats, "fits": fits, "dedup_without_broadcast": no_broadcast,
        "rows": rows}, indent=2, default=str) + "\n")
    width = max(len(r["name"]) for r in rows)
    print(f"\n{'row':<{width}}  {'figure':>10}  {'unit':<10} {'baseline':>9}  {'ratio':>6}  target / met")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['figure']!s:>10}  {r['unit']:<10} {r['baseline']!s:>9}  "
              f"{r['ratio']!s:>6}  {r['target']} / {r['met']}")


if __name__ == "__main__":
    main()
