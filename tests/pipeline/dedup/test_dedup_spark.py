"""The dedup plan on Spark: components, exact and near duplicates, boilerplate, determinism."""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO  # noqa: E402

from pipeline.dedup import minhash as D
from pipeline.stage import stagedir

STAGE_COLS = ["id", "dup_cluster", "dup_cluster_size", "duplicate_of", "boilerplate_lines"]


def write_input(folder: Path, rows: list[tuple[str, str]]) -> str:
    """A complete stage folder holding ``rows`` of (id, text)."""
    (folder / "data").mkdir(parents=True)
    table = pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows],
                      "source": ["test"] * len(rows), "url": pa.nulls(len(rows), pa.string()),
                      "metadata": ["{}"] * len(rows)})
    pq.write_table(table, folder / "data" / "part-00000.parquet")
    (folder / stagedir.SUCCESS).write_text("")
    return str(folder)


def read_output(out: str) -> tuple[dict, dict, dict]:
    kept = pq.read_table(stagedir.data_dir(out)).to_pylist()
    rejected = pq.read_table(stagedir.rejected_dir(out)).to_pylist()
    return ({r["id"]: r for r in kept}, {r["id"]: r for r in rejected},
            stagedir.read_stats(out))


def run_dedup(spark, tmp_path, docs, name="out", **cfg) -> tuple[dict, dict, dict]:
    from pipeline.dedup.stage import STAGE as DEDUP

    src = tmp_path / "in"
    if not src.exists():
        write_input(src, docs)
    out = str(tmp_path / name)
    DEDUP.run(spark, [str(src)], out, D.DedupConfig(**cfg), overwrite=True)
    return read_output(out)


def union_find(n_nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, str]:
    parent = {x: x for x in n_nodes}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        parent[max(ru, rv)] = min(ru, rv)
    return {x: find(x) for x in n_nodes}


# --- connected components ----------------------------------------------------------------------


def _components(spark, edges):
    from pipeline.dedup.spark_plan import connected_components

    df = spark.createDataFrame(edges, "u string, v string")
    comp, n_edges, rounds = connected_components(df)
    assert n_edges == len({(max(u, v), min(u, v)) for u, v in edges if u != v})
    return {r["node"]: r["root"] for r in comp.collect()}, rounds


def n(i: int) -> str:
    return f"n{i:04d}"


@pytest.mark.parametrize("shape", ["chain", "reversed_chain", "star", "cycle", "pairs", "mixed"])
def test_connected_components_shapes(spark, shape):
    rng = random.Random(0)
    if shape == "chain":
        edges = [(n(i), n(i + 1)) for i in range(40)]
    elif shape == "reversed_chain":
        edges = [(n(i + 1), n(i)) for i in reversed(range(40))]
    elif shape == "star":
        edges = [(n(17), n(i)) for i in range(30) if i != 17]
    elif shape == "cycle":
        order = list(range(25))
        rng.shuffle(order)
        edges = [(n(order[i]), n(order[(i + 1) % 25])) for i in range(25)]
    elif shape == "pairs":
        edges = [(n(2 * i + 1), n(2 * i)) for i in range(15)]
    else:
        edges = ([(n(i), n(i + 1)) for i in range(10)] + [(n(50), n(i)) for i in range(51, 60)]
                 + [(n(70), n(71)), (n(71), n(72)), (n(72), n(70))] + [(n(80), n(81))]
                 + [(n(5), n(5)), (n(1), n(2))] + [(n(90 + i), n(90 + (7 * i) % 9))
                                                   for i in range(9)])
    nodes = sorted({x for e in edges for x in e if e[0] != e[1]})
    got, rounds = _components(spark, edges)
    assert got == union_find(nodes, [e for e in edges if e[0] != e[1]])
    assert rounds < 15


def test_connected_components_random_graph(spark):
    rng = random.Random(1)
    edges = [(n(rng.randrange(300)), n(rng.randrange(300))) for _ in range(250)]
    edges = [e for e in edges if e[0] != e[1]]
    nodes = sorted({x for e in edges for x in e})
    got, _ = _components(spark, edges)
    assert got == union_find(nodes, edges)


def test_connected_components_empty_graph(spark):
    got, rounds = _components(spark, [])
    assert got == {} and rounds == 0


# --- documents -------------------------------------------------------------------------------


VOCAB = [f"w{i}" for i in range(3000)]


def text_of(rng: random.Random, n_words: int) -> str:
    lines, line = [], []
    for _ in range(n_words):
        line.append(rng.choice(VOCAB))
        if len(line) == 12:
            lines.append(" ".join(line))
            line = []
    return "\n".join(lines + [" ".join(line)])


def edited(rng: random.Random, text: str, n_edits: int) -> str:
    ws = text.split(" ")
    for _ in range(n_edits):
        ws[rng.randrange(len(ws))] = rng.choice(VOCAB)
    return " ".join(ws)


def crafted_corpus() -> tuple[list[tuple[str, str]], dict]:
    """Originals, exact copies (case/punctuation changed), light edits, a chain of edits."""
    rng = random.Random(42)
    rows, truth = [], {}
    a, b, c = text_of(rng, 400), text_of(rng, 400), text_of(rng, 400)
    rows += [("a0", a), ("a1", a.upper().replace("\n", " ,\n")), ("a2", edited(rng, a, 1)),
             ("b0", b), ("b1", edited(rng, b, 1)), ("b2", edited(rng, b, 1)),
             ("c0", c), ("z_empty1", ""), ("z_empty2", " \n ")]
    truth["exact"] = {"a1": "a0", "z_empty2": "z_empty1"}
    truth["near"] = {"a2": "a0", "b1": "b0", "b2": "b0"}
    # A chain: each link one more edit away from the first; all one cluster.
    link = text_of(rng, 600)
    for i in range(6):
        rows.append((f"chain{i}", link))
        link = edited(rng, link, 1)
    truth["near"].update({f"chain{i}": "chain0" for i in range(1, 6)})
    for i in range(10):
        rows.append((f"u{i:02d}", text_of(rng, 300)))
    return rows, truth


def test_exact_and_near_duplicates(spark, tmp_path):
    rows, truth = crafted_corpus()
    kept, rejected, stats = run_dedup(spark, tmp_path, rows)
    assert stats["docs_in"] == len(rows) == stats["docs_kept"] + stats["docs_rejected"]
    assert {i: r["duplicate_of"] for i, r in rejected.items() if r["reason"] == D.EXACT} \
        == truth["exact"]
    near = {i: r for i, r in rejected.items() if r["reason"] == D.NEAR}
    assert {i: r["dup_cluster"] for i, r in near.items()} == truth["near"]
    # duplicate_of names the closest candidate: a member of the same cluster.
    for i, r in near.items():
        assert r["duplicate_of"] != i
        assert r["duplicate_of"] == truth["near"][i] or \
            truth["near"].get(r["duplicate_of"]) == truth["near"][i]
    assert kept["a0"]["dup_cluster"] == "a0" and kept["a0"]["dup_cluster_size"] == 3
    assert kept["b0"]["dup_cluster_size"] == 3
    assert kept["chain0"]["dup_cluster_size"] == 6
    assert kept["c0"]["dup_cluster"] is None and kept["c0"]["dup_cluster_size"] == 1
    assert rejected["a2"]["dup_cluster"] == "a0"
    # Kept documents carry no duplicate_of; the rejected keep their text.
    assert all(r["duplicate_of"] is None for r in kept.values())
    assert rejected["a1"]["text"] == dict(rows)["a1"]
    assert stats["rejected_by_reason"] == {D.EXACT: 2, D.NEAR: 8}
    assert stats["dedup"]["bands"] == 9 and stats["dedup"]["rows"] == 13


def test_keep_longest_and_verify(spark, tmp_path):
    rng = random.Random(5)
    base = text_of(rng, 500)
    rows = [("x0", base), ("x1", base + " " + " ".join(rng.choice(VOCAB) for _ in range(8))),
            ("x2", edited(rng, base, 1)), ("y0", text_of(rng, 500))]
    kept, rejected, _ = run_dedup(spark, tmp_path, rows, keep="longest", verify=True)
    assert set(kept) == {"x1", "y0"}
    assert {i: r["dup_cluster"] for i, r in rejected.items()} == {"x0": "x1", "x2": "x1"}
    assert rejected["x0"]["duplicate_of"] in {"x1", "x2"}
    assert rejected["x2"]["duplicate_of"] in {"x0", "x1"}
    assert kept["x1"]["dup_cluster_size"] == 3


def test_verify_drops_false_positive_candidates(spark, tmp_path):
    """16 bands of one row make every pair sharing half its text a candidate; verify keeps only
    the pair above the threshold."""
    rng = random.Random(6)
    base = text_of(rng, 300)
    half = " ".join(base.split(" ")[:150])
    rows = [(f"d{i}", half + " " + text_of(rng, 150)) for i in range(5)]
    rows += [("e0", base), ("e1", base + " w1")]
    kept, rejected, stats = run_dedup(spark, tmp_path, rows, name="loose", bands=16, rows=1,
                                      num_perm=16, verify=True)
    assert {i: r["duplicate_of"] for i, r in rejected.items()} == {"e1": "e0"}
    assert stats["dedup"]["candidate_edges"] == 1
    _, unverified, _ = run_dedup(spark, tmp_path, rows, name="unverified", bands=16, rows=1,
                                 num_perm=16)
    assert len(unverified) > 1


def test_same_output_for_2_and_16_partitions_and_reruns(spark, tmp_path):
    rows, _ = crafted_corpus()
    rows = rows + [(f"h{i:02d}", "Shared header line here\n" + text_of(random.Random(i), 40))
                   for i in range(8)]
    results = []
    old = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        for i, parts in enumerate([2, 16, 16]):
            spark.conf.set("spark.sql.shuffle.partitions", str(parts))
            src = tmp_path / f"in{parts}"
            if not src.exists():
                # The input itself split in as many files.
                (src / "data").mkdir(parents=True)
                for p in range(parts):
                    chunk = rows[p::parts]
                    pq.write_table(pa.table({"id": [r[0] for r in chunk],
                                             "text": [r[1] for r in chunk]}),
                                   src / "data" / f"part-{p:05d}.parquet")
                (src / stagedir.SUCCESS).write_text("")
            from pipeline.dedup.stage import STAGE as DEDUP

            out = str(tmp_path / f"out{i}")
            DEDUP.run(spark, [str(src)], out, D.DedupConfig(boilerplate_min_docs=4))
            kept, rejected, _ = read_output(out)
            results.append((sorted(kept.items()), sorted(rejected.items())))
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", old)
    assert results[0] == results[1] == results[2]
    kept = dict(results[0][0])
    assert kept["h00"]["boilerplate_lines"] == 1
    assert not kept["h00"]["text"].startswith("Shared header")


def test_boilerplate_lines_cut_and_short_documents_rejected(spark, tmp_path):
    rng = random.Random(8)
    nav = "Home | About us | Contact | Privacy policy"
    footer = "Copyright 2024 Example Corp. All rights reserved."
    rows = [(f"p{i}", f"{nav}\n{text_of(rng, 80)}\n{footer}") for i in range(6)]
    rows.append(("q0", f"{nav}\nCopyright 2024 Example Corp. All rights reserved."))
    rows.append(("q1", "A page with only its own words\nand nothing shared at all"))
    kept, rejected, stats = run_dedup(spark, tmp_path, rows, boilerplate_min_docs=5)
    assert set(rejected) == {"q0"} and rejected["q0"]["reason"] == D.BOILERPLATE
    assert rejected["q0"]["text"] == dict(rows)["q0"]
    for i in range(6):
        text = kept[f"p{i}"]["text"]
        assert "Privacy policy" not in text and "Copyright" not in text
        assert D.words(text) == D.words(dict(rows)[f"p{i}"])[6:-7]
        assert kept[f"p{i}"]["boilerplate_lines"] == 2
    assert kept["q1"]["text"] == dict(rows)["q1"] and kept["q1"]["boilerplate_lines"] == 0
    assert stats["dedup"]["boilerplate_line_hashes"] == 2


def test_rejects_duplicate_ids(spark, tmp_path):
    from core.errors import UsageError

    with pytest.raises(UsageError, match="not unique"):
        run_dedup(spark, tmp_path, [("a", "one text"), ("a", "another text")])


# --- the job ---------------------------------------------------------------------------------


def _job(*args, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPARK_LOG_LEVEL="ERROR")
    return subprocess.run([sys.executable, str(REPO / "jobs" / "dedup.py"), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
                          **kwargs)


def test_job_usage_errors(tmp_path):
    missing = _job("--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o"))
    assert missing.returncode == 2 and "error:" in missing.stderr
    assert "Traceback" not in missing.stderr
    src = write_input(tmp_path / "in", [("a", "text")])
    for bad in (["--threshold", "2"], ["--bands", "3"], ["--keep", "newest"],
                ["--set", "nonsense=1"]):
        r = _job("--input", src, "--output", str(tmp_path / "o"), *bad)
        assert r.returncode == 2, (bad, r.stderr)
        assert "error:" in r.stderr and "Traceback" not in r.stderr
    assert _job("--help").returncode == 0


@pytest.mark.slow
def test_job_on_local_cluster(tmp_path):
    """The whole job under spark-submit on a two-executor local cluster: executors are
    separate JVMs and Python workers, so everything shipped to them must pickle and import."""
    rows, truth = crafted_corpus()
    src = write_input(tmp_path / "in", rows)
    out = str(tmp_path / "out")
    submit = Path(sys.executable).parent / "spark-submit"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOG_LEVEL="ERROR")
    r = subprocess.run([str(submit), "--master", "local-cluster[2,1,1024]",
                        "--conf", "spark.sql.shuffle.partitions=4",
                        str(REPO / "jobs" / "dedup.py"), "--input", src, "--output", out],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    kept, rejected, stats = read_output(out)
    assert stats["spark"]["master"].startswith("local-cluster")
    assert {i: x["dup_cluster"] for i, x in rejected.items()} == {**truth["exact"],
                                                                  **truth["near"]}
    assert "dup:near" in r.stdout


# --- real books ------------------------------------------------------------------------------

START = re.compile(r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG", re.I)
END = re.compile(r"\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG", re.I)
LICENCE = "This eBook is for the use of anyone anywhere at no cost and with almost no " \
          "restrictions whatsoever"


@pytest.mark.slow
def test_gutenberg_header_and_footer_go_while_the_books_stay(spark, tmp_path, shared_data):
    books = sorted((shared_data / "books").glob("*.txt"))
    rows = [(p.stem, p.read_text(encoding="utf-8", errors="replace")) for p in books]
    kept, rejected, stats = run_dedup(spark, tmp_path, rows)
    # The three byte-identical copies go as exact duplicates, and one of the two editions of
    # A Christmas Carol (Jaccard 0.91) as a near duplicate; nothing else is removed.
    assert stats["rejected_by_reason"] == {D.EXACT: 3, D.NEAR: 1}
    assert rejected["3d2ff9250fb3"]["dup_cluster"] == "2377a2af1a99"
    original = dict(rows)
    body_all = body_kept = frame_all = frame_kept = 0
    for doc_id, doc in kept.items():
        text = D.normalize(doc["text"])
        assert D.normalize(LICENCE) not in text, doc_id
        lines = original[doc_id].split("\n")
        s = next((i for i, ln in enumerate(lines) if START.search(ln)), None)
        e = next((i for i, ln in enumerate(lines) if END.search(ln)), None)
        if s is None or e is None:
            continue
        body = len(D.words("\n".join(lines[s + 1:e])))
        frame = len(D.words("\n".join(lines[:s + 1] + lines[e:])))
        now = len(text.split())
        # What is left beyond the body's size is header/footer (an upper bound on it, as some
        # body lines are cut too).
        body_all += body
        body_kept += min(now, body)
        frame_all += frame
        frame_kept += max(now - body, 0)
        assert now >= 0.97 * body, doc_id
    assert body_kept >= 0.995 * body_all
    assert frame_kept <= 0.05 * frame_all
