"""Dedup benchmarks: signature speed, near-duplicate quality against datatrove, scaling.

    python -m bench.dedup [--quick]

Every figure is printed beside a baseline measured in the same run. Needs ../shared/data
(licences with exact-Jaccard ground truth, Gutenberg books); datatrove is a benchmark-only
dependency (``pip install 'datatrove[processing]' spacy orjson``). Writes
bench/results/dedup.json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.proctree import process_tree  # noqa: E402
from pipeline.dedup import minhash as D  # noqa: E402
from pipeline.stage import stagedir  # noqa: E402

DATA = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results" / "dedup.json"
THRESHOLDS = (0.7, 0.8, 0.9)


def row(name, figure, unit, baseline=None, ratio=None, target=None, met=None) -> dict:
    return {"name": name, "figure": figure, "unit": unit, "baseline": baseline, "ratio": ratio,
            "target": target, "met": met}


def load_licences() -> tuple[list[str], list[str], dict]:
    ids, texts = [], []
    with open(DATA / "neardup" / "licenses.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            ids.append(rec["id"])
            texts.append(rec["text"])
    pairs = {}
    with open(DATA / "neardup" / "licenses_pairs_jaccard_ge0.5.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            pairs[frozenset((rec["a"], rec["b"]))] = rec["jaccard_w5"]
    return ids, texts, pairs


# --- 1. signatures ---------------------------------------------------------------------------


def best_cpu(fn, repeats: int) -> float:
    """Least CPU seconds of ``repeats`` runs: CPU time, not wall time, because five other
    processes share these two cores; the least, because noise only ever adds."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def bench_signatures(texts: list[str], quick: bool) -> list[dict]:
    from datasketch import MinHash

    sample = texts[::6 if quick else 3]
    arr = pa.array(sample)
    n = len(sample)
    shingled = [[s.encode("utf-8") for s in D.shingles(t, 5)] for t in sample]

    def ours():
        D.signatures(arr, num_perm=128, ngram=5, seed=1)

    def datasketch_end_to_end():
        for t in sample:
            MinHash(num_perm=128, seed=1).update_batch([s.encode("utf-8")
                                                        for s in D.shingles(t, 5)])

    def datasketch_update_only():
        for s in shingled:
            MinHash(num_perm=128, seed=1).update_batch(s)

    # Same result first: datasketch with our shingle hash gives our signatures.
    sig = D.signatures(sample[:40])
    for d, t in enumerate(sample[:40]):
        m = MinHash(num_perm=128, seed=1, hashfunc=D.shingle_hash32)
        m.update_batch([s.encode("utf-8") for s in D.shingles(t, 5)])
        assert np.array_equal(m.hashvalues, sig[d]), "signatures differ from datasketch"

    t_ours = best_cpu(ours, 3)
    t_base = best_cpu(datasketch_end_to_end, 2)
    t_update = best_cpu(datasketch_update_only, 2)
    ours_rate, base_rate, update_rate = n / t_ours, n / t_base, n / t_update
    print(f"signatures: {n} licences, ours {t_ours:.2f}s, datasketch text->signature "
          f"{t_base:.2f}s, datasketch update_batch alone {t_update:.2f}s (CPU seconds)")
    return [
        row("minhash signatures, text -> signature (licences, 128 perm, 5-gram)",
            round(ours_rate, 1), "docs/s/core", round(base_rate, 1),
            round(ours_rate / base_rate, 2), ">= 10x datasketch", ours_rate / base_rate >= 10),
        row("minhash signatures vs datasketch update_batch alone (its shingles given)",
            round(ours_rate, 1), "docs/s/core", round(update_rate, 1),
            round(ours_rate / update_rate, 2), "reported", None),
    ]


# --- 2. quality on the licences --------------------------------------------------------------


def pair_metrics(ids: list[str], cluster: dict[str, str], removed: dict[str, str],
                 pairs: dict, threshold: float) -> tuple[float, float]:
    """Pair recall: true pairs (J >= t) that end in one cluster. Removal precision: removed
    documents whose ``duplicate_of`` has J >= t - 0.1 with them."""
    true = [tuple(p) for p, j in pairs.items() if j >= threshold]
    same = sum(cluster.get(a, a) == cluster.get(b, b) for a, b in true)
    recall = same / len(true) if true else 1.0
    good = sum(pairs.get(frozenset((doc, kept)), 0.0) >= threshold - 0.1
               for doc, kept in removed.items())
    precision = good / len(removed) if removed else 1.0
    return recall, precision


def run_ours(spark, src: str, out: str, threshold: float, **extra) -> tuple[dict, dict, dict]:
    from pipeline.dedup.stage import STAGE as DEDUP

    started = time.time()
    stats = DEDUP.run(spark, [src], out, D.DedupConfig(threshold=threshold, **extra),
                            overwrite=True)
    stats["wall"] = time.time() - started
    cols = ["id", "dup_cluster", "duplicate_of", "reason"]
    kept = pq.read_table(stagedir.data_dir(out), columns=cols[:2]).to_pylist()
    rej = pq.read_table(stagedir.rejected_dir(out), columns=cols).to_pylist()
    cluster = {r["id"]: r["dup_cluster"] or r["id"] for r in kept + rej}
    dups = [r for r in rej if r["reason"] in (D.EXACT, D.NEAR)]
    stats["removed_vs_kept"] = {r["id"]: r["dup_cluster"] for r in dups}
    return cluster, {r["id"]: r["duplicate_of"] for r in dups}, stats


def datatrove_run(args: tuple) -> dict:
    """datatrove's four MinHash stages on the licences, one process, in a temp folder."""
    buckets, rows_per_bucket, ids, texts, workdir = args
    import logging

    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from loguru import logger

    logger.remove()
    logging.disable(logging.WARNING)
    cfg = MinhashConfig(num_buckets=buckets, hashes_per_bucket=rows_per_bucket)
    base = Path(workdir) / f"dt_{buckets}x{rows_per_bucket}"
    docs = [Document(text=t, id=i) for i, t in zip(ids, texts)]
    cpu0, wall0 = time.process_time(), time.time()
    MinhashDedupSignature(str(base / "sigs"), config=cfg).run(iter(docs), 0, 1)
    cpu_sig = time.process_time() - cpu0
    for rank in range(buckets):
        MinhashDedupBuckets(str(base / "sigs"), str(base / "buckets"), config=cfg).run(
            None, rank, buckets)
    MinhashDedupCluster(str(base / "buckets"), str(base / "remove"), config=cfg,
                        save_cluster_id=True).run(None, 0, 1)
    kept_docs = list(MinhashDedupFilter(str(base / "remove")).run(iter(docs), 0, 1))
    cpu, wall = time.process_time() - cpu0, time.time() - wall0

    def ints(path):
        p = base / "remove" / path
        return np.fromfile(p, "<u4").tolist() if p.exists() else []

    removed_idx = set(ints("000000.remove"))
    flat = ints("000000.clusters")
    cluster_of = {ids[d]: f"c{c}" for d, c in zip(flat[0::2], flat[1::2])}
    kept_of = {}
    for d, c in zip(flat[0::2], flat[1::2]):
        if d not in removed_idx:
            kept_of[f"c{c}"] = ids[d]
    removed = {ids[d]: kept_of[cluster_of[ids[d]]] for d in removed_idx}
    return {"cluster": cluster_of, "removed": removed, "cpu": cpu, "cpu_signatures": cpu_sig,
            "wall": wall, "kept": len(kept_docs)}


def bench_quality(spark, ids, texts, pairs, workdir: Path, quick: bool) -> list[dict]:
    src = workdir / "licences"
    (src / "data").mkdir(parents=True)
    pq.write_table(pa.table({"id": ids, "text": texts}), src / "data" / "part-00000.parquet")
    (src / stagedir.SUCCESS).write_text("")

    # datatrove's two bandings run in two processes while Spark works on ours.
    dt_configs = [(14, 8), (9, 12)]
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(len(dt_configs))
    pending = pool.map_async(datatrove_run, [(b, r, ids, texts, str(workdir))
                                             for b, r in dt_configs])
    rows, ours = [], {}
    counts = {}
    for t in THRESHOLDS:
        cluster, removed, stats = run_ours(spark, str(src), str(workdir / f"ours{t}"), t)
        ours[t] = (cluster, removed, stats)
        counts[t] = stats["rejected_by_reason"]
        print(f"ours @{t}: {stats['dedup']['bands']}x{stats['dedup']['rows']}, removed "
              f"{stats['rejected_by_reason']} in {stats['wall']:.1f}s")
    dt = dict(zip(dt_configs, pending.get()))
    pool.close()
    for cfg, res in dt.items():
        print(f"datatrove {cfg[0]}x{cfg[1]}: removed {len(res['removed'])}, "
              f"{res['cpu']:.1f} CPU s ({res['cpu_signatures']:.1f} s signatures)")

    for t in THRESHOLDS:
        cluster, removed, stats = ours[t]
        r, p = pair_metrics(ids, cluster, removed, pairs, t)
        dr, dp = pair_metrics(ids, dt[(9, 12)]["cluster"], dt[(9, 12)]["removed"], pairs, t)
        band = f"{stats['dedup']['bands']}x{stats['dedup']['rows']}"
        target = ">= 0.95" if t == 0.8 else "reported"
        rows.append(row(f"near-dup pair recall @{t} (licences, ours {band}; baseline datatrove "
                        "9x12)", round(r, 4), "fraction", round(dr, 4),
                        round(r / dr, 3) if dr else None, target,
                        r >= 0.95 if t == 0.8 else None))
        rows.append(row(f"near-dup removal precision @{t} (licences, ours {band}; baseline "
                        "datatrove 9x12)", round(p, 4), "fraction", round(dp, 4),
                        round(p / dp, 3) if dp else None, target,
                        p >= 0.95 if t == 0.8 else None))
        _, pk = pair_metrics(ids, cluster, stats["removed_vs_kept"], pairs, t)
        rows.append(row(f"ours {band}: removal precision against the cluster's kept document "
                        f"(dup_cluster) @{t}; chains lower it", round(pk, 4), "fraction",
                        None, None, "reported", None))
        for cfg, res in dt.items():
            if cfg == (9, 12):
                continue
            r2, p2 = pair_metrics(ids, res["cluster"], res["removed"], pairs, t)
            rows.append(row(f"datatrove {cfg[0]}x{cfg[1]} (its default) pair recall @{t}",
                            round(r2, 4), "fraction", None, None, "reported", None))
            rows.append(row(f"datatrove {cfg[0]}x{cfg[1]} (its default) removal precision @{t}",
                            round(p2, 4), "fraction", None, None, "reported", None))
    for cfg, res in dt.items():
        rows.append(row(f"datatrove {cfg[0]}x{cfg[1]} CPU seconds, 1,299 licences (4 stages; "
                        f"{res['cpu_signatures']:.1f} s signatures)", round(res["cpu"], 1),
                        "s", None, None, "reported", None))
    s08 = ours[0.8][2]
    rows.append(row("ours: whole Spark job on the licences @0.8, local[2] wall seconds (baseline:"
                    " datatrove 14x8 CPU seconds)", round(s08["wall"], 1), "s",
                    round(dt[(14, 8)]["cpu"], 1), round(dt[(14, 8)]["cpu"] / s08["wall"], 2),
                    "reported", None))
    for t, c in counts.items():
        rows.append(row(f"licences removed by reason @{t}: " + ", ".join(
            f"{k}={v}" for k, v in sorted(c.items())), sum(c.values()), "docs", None, None,
            "reported", None))
    return rows


# --- 3. boilerplate K, measured on the books -------------------------------------------------

START = re.compile(r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG|\*END\*THE SMALL PRINT", re.I)
END = re.compile(r"\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg",
                 re.I)


def bench_boilerplate_k(books: list[str]) -> list[dict]:
    """Share of the header/footer words and of the books' own words that a threshold K cuts,
    counted like the stage counts: over the books left after exact and near dedup."""
    tokens = D.tokenize(books, lines=True)
    exact = D.exact_hashes(tokens)
    distinct = sorted({h: i for i, h in reversed(list(enumerate(exact)))}.values())
    bands, rows_ = D.DedupConfig().banding()
    keys = np.asarray(D.band_keys(D.signatures([books[d] for d in distinct]), bands, rows_)
                      .to_pylist(), object).reshape(len(distinct), bands)
    first_of: dict = {}
    near = set()  # the later member of any shared bucket (clusters here are pairs)
    for k, d in enumerate(distinct):
        for band, key in enumerate(keys[k]):
            if first_of.setdefault((band, key), d) != d:
                near.add(d)
    distinct = [d for d in distinct if d not in near]
    units = D.text_units(tokens)
    pick = np.isin(units.doc, distinct)
    pairs = np.unique(np.stack([units.doc[pick].astype(np.uint64), units.hash[pick]]), axis=1)
    uniq, df = np.unique(pairs[1], return_counts=True)
    unit_df = np.zeros(len(units.hash), np.int64)
    unit_df[pick] = df[np.searchsorted(uniq, units.hash[pick])]
    bounds = np.searchsorted(units.doc, np.arange(len(books) + 1))
    spans = []  # per marked book: header/footer and body line ranges, units
    for d in distinct:
        lines = books[d].split("\n")
        s = next((i for i, ln in enumerate(lines) if START.search(ln)), None)
        e = next((i for i, ln in enumerate(lines) if END.search(ln) and s is not None and i > s),
                 None)
        if s is not None and e is not None:
            spans.append((s, e, np.arange(bounds[d], bounds[d + 1])))
    rows = []
    for k in (2, 3, 5, 10, 20):
        hf_all = hf_cut = body_all = body_cut = 0
        for s, e, sel in spans:
            cut = set()
            for a, b in zip(units.first[sel][unit_df[sel] >= k].tolist(),
                            units.last[sel][unit_df[sel] >= k].tolist()):
                cut.update(range(a, b + 1))
            lines = sel[units.is_line[sel]]
            first, words = units.first[lines], units.words[lines]
            is_cut = np.isin(first, list(cut))
            body = (first > s) & (first < e)
            hf_all += words[~body].sum()
            hf_cut += words[~body & is_cut].sum()
            body_all += words[body].sum()
            body_cut += words[body & is_cut].sum()
        hf_share, body_share = hf_cut / hf_all, body_cut / body_all
        rows.append(row(f"boilerplate K={k}: header/footer words cut (baseline: share of the "
                        "books' own words cut)", round(float(hf_share), 4), "fraction",
                        round(float(body_share), 5), None,
                        "default" if k == D.DedupConfig().boilerplate_min_docs else "reported",
                        None))
        print(f"K={k:2d}: header/footer words cut {hf_share:.3f}, body words cut "
              f"{body_share:.5f}")
    return rows


# --- 4. scaling ------------------------------------------------------------------------------


def build_corpus(books: list[str], target_bytes: int, seed: int, out: Path) -> dict:
    """Books cut into ~5 KB pieces until ``target_bytes``, then known copies: 10% of pieces
    copied with 1% of their words replaced (near, Jaccard about 0.9) and 5% copied verbatim
    (exact). The books hold copies of their own (3 identical files, 2 editions of one)."""
    rng = random.Random(seed)
    rows, size = [], 0
    for b, text in enumerate(books):
        lines = text.split("\n")
        for p in range(0, len(lines), 80):
            piece = "\n".join(lines[p:p + 80])
            if len(piece.split()) < 50:
                continue
            rows.append((f"b{b:03d}-{p // 80:05d}", piece))
            size += len(piece)
            if size >= target_bytes:
                break
        if size >= target_bytes:
            break
    originals = list(rows)
    near = rng.sample(range(len(originals)), len(originals) // 10)
    for i in near:
        doc_id, text = originals[i]
        words = text.split(" ")
        for _ in range(max(1, len(words) // 100)):
            words[rng.randrange(len(words))] = "edited"
        rows.append((doc_id + "-near", " ".join(words)))
    exact = rng.sample(range(len(originals)), len(originals) // 20)
    for i in exact:
        rows.append((originals[i][0] + "-copy", originals[i][1]))
    rng.shuffle(rows)
    (out / "data").mkdir(parents=True)
    for part in range(4):
        chunk = rows[part::4]
        pq.write_table(pa.table({"id": [r[0] for r in chunk], "text": [r[1] for r in chunk]}),
                       out / "data" / f"part-{part:05d}.parquet")
    (out / stagedir.SUCCESS).write_text("")
    planted = [(originals[i][0], originals[i][0] + "-near") for i in near]
    planted += [(originals[i][0], originals[i][0] + "-copy") for i in exact]
    return {"docs": len(rows), "bytes": sum(len(r[1]) for r in rows), "planted": planted}


def _tree_rss(root: int) -> dict[str, int]:
    """Resident memory (kB) of the job's processes by role: the JVM (driver; in local mode
    also the executors), the Python driver, the Python workers."""
    out = defaultdict(int)
    for p in process_tree(root):
        if "java" in p.cmd.split(" ")[0]:
            out["jvm"] += p.rss_kb
        elif "jobs/dedup.py" in p.cmd:
            out["python_driver"] += p.rss_kb
        elif "pyspark" in p.cmd or "worker" in p.cmd:
            out["python_workers"] += p.rss_kb
    return out


def run_job(src: Path, out: Path) -> tuple[dict, dict]:
    submit = Path(sys.executable).parent / "spark-submit"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOG_LEVEL="ERROR")
    proc = subprocess.Popen([str(submit), "--master", "local[2]", "--conf",
                             "spark.ui.showConsoleProgress=false",
                             str(REPO / "jobs" / "dedup.py"), "--input", str(src), "--output",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=REPO)
    peak: dict[str, int] = defaultdict(int)
    while proc.poll() is None:
        for k, v in _tree_rss(proc.pid).items():
            peak[k] = max(peak[k], v)
        time.sleep(0.25)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"dedup job failed: {err.decode()[-2000:]}")
    return stagedir.read_stats(str(out)), dict(peak)


def bench_scaling(books: list[str], workdir: Path, quick: bool) -> list[dict]:
    base = (2 if quick else 6) << 20
    rows, first = [], None
    for scale in (1, 2, 4):
        src = workdir / f"scale{scale}"
        info = build_corpus(books, base * scale, seed=scale, out=src)
        stats, peak = run_job(src, workdir / f"scale{scale}_out")
        seconds = stats["seconds"]
        first = first or (seconds, info)
        by = stats["rejected_by_reason"]
        rejected = pq.read_table(stagedir.rejected_dir(str(workdir / f"scale{scale}_out")),
                                 columns=["id", "reason"]).to_pylist()
        dups = {r["id"] for r in rejected if r["reason"] in (D.EXACT, D.NEAR)}
        planted = len(info["planted"])
        found = sum(a in dups or b in dups for a, b in info["planted"])
        print(f"scale {scale}x: {info['docs']} docs, {info['bytes'] / 1e6:.1f} MB, "
              f"{seconds:.1f}s, removed {by}, planted pairs caught {found}/{planted}, "
              f"peak RSS kB {peak}")
        linear = first[0] * info["docs"] / first[1]["docs"]
        rows.append(row(f"dedup job {scale}x ({info['docs']} docs, {info['bytes'] / 1e6:.1f} MB)"
                        f" seconds on local[2] (baseline: {'1x time scaled linearly'})",
                        round(seconds, 1), "s", round(linear, 1), round(seconds / linear, 3),
                        "<= 1.0 (no faster than linear)", seconds <= linear * 1.0001
                        if scale > 1 else None))
        rows.append(row(f"dedup job {scale}x throughput", round(info["docs"] / seconds, 1),
                        "docs/s", None, None, "reported", None))
        rows.append(row(f"dedup job {scale}x peak RSS: Python driver (baseline: JVM driver, "
                        "which in local mode also runs the executors)",
                        round(peak.get("python_driver", 0) / 1024, 1), "MB",
                        round(peak.get("jvm", 0) / 1024, 1), None, "reported", None))
        rows.append(row(f"dedup job {scale}x planted copies caught (one of the pair removed as "
                        f"exact/near; baseline: planted; all removals: {by})", found, "pairs",
                        planted, round(found / planted, 3), "reported", None))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples (a smoke run)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"bench.dedup: shared data not found at {DATA}; nothing to measure")
        return
    started = time.time()
    ids, texts, pairs = load_licences()
    books = [p.read_text(encoding="utf-8", errors="replace")
             for p in sorted((DATA / "books").glob("*.txt"))]
    rows = bench_signatures(texts, args.quick)
    rows += bench_boilerplate_k(books)
    workdir = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    try:
        from pipeline.spark.session import get_spark

        spark = get_spark("local[2]", "bench-dedup")
        spark.conf.set("spark.sql.shuffle.partitions", "8")
        rows += bench_quality(spark, ids, texts, pairs, workdir, args.quick)
        spark.stop()
        rows += bench_scaling(books, workdir, args.quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "dedup", "seconds": round(time.time() - started),
                                   "rows": rows}, indent=2) + "\n")
    width = max(len(r["name"]) for r in rows)
    print(f"\n{'benchmark':<{width}}  {'figure':>10}  {'unit':<12} {'baseline':>10}  "
          f"{'ratio':>7}  target / met")
    for r in rows:
        met = "" if r["met"] is None else ("met" if r["met"] else "NOT MET")
        print(f"{r['name']:<{width}}  {r['figure']!s:>10}  {r['unit']:<12} "
              f"{r['baseline']!s:>10}  {r['ratio']!s:>7}  {r['target'] or ''} {met}")
    print(f"wrote {RESULTS} in {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
