"""The corpus jobs on a real Spark standalone cluster (loopback, two 1-core workers), and what
happens when its processes die:

(a) jobs/corpus.py submitted to the cluster writes the same rows as on local[2];
(b) executors killed by process id in the middle of the dedup job's shuffles (worker 1's, then
    worker 2's): Spark retries, the job completes, the output equals an undisturbed run's and
    in = kept + rejected;
(c) a whole worker (its Worker daemon, by process id) killed during the dedup shuffles: its
    executor goes with it, and the shuffle files it served are lost for good, so Spark must
    recompute them on the worker that is left;
(d) the driver killed while it writes DIR/data (the langfilter job, the shortest): the folder
    is not complete, the next stage refuses it, and a rerun completes it with the undisturbed
    rows.

The input is a few hundred crafted documents (English, German, exact and near copies, a
boilerplate line, junk), so each job is short. The cluster is started once for the module
and always stopped (tests/spark_cluster.py).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.stage import stagedir

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
JOBS = REPO / "jobs"
from pipeline.stage.contract import STAGES  # noqa: E402

EN = [
    "the", "a", "of", "and", "to", "in", "is", "was", "that", "it", "for", "on", "with", "as", "by",
    "at", "from", "his", "her", "they", "this", "had", "not", "are", "but", "which", "one", "all",
    "were", "when", "we", "there", "can", "an", "been", "has", "more", "if", "will", "would", "who",
    "so", "no", "out", "up", "into", "time", "people", "year", "way", "day", "man", "thing", "woman",
    "life", "child", "world", "school", "state", "family", "student", "group", "country", "problem",
    "hand", "part", "place", "case", "week", "company", "system", "program", "question", "work",
    "government", "number", "night", "point", "home", "water", "room", "mother", "area", "money",
    "story", "fact", "month", "lot", "right", "study", "book", "eye", "job", "word", "business",
    "issue", "side", "kind", "head", "house", "service", "friend", "father", "power", "hour", "game",
    "line", "end", "member", "law", "car", "city", "community", "name", "president", "team", "minute",
    "idea", "kid", "body", "information", "back", "parent", "face", "others", "level", "office", "door",
    "health", "person", "art", "war", "history", "party", "result", "change", "morning", "reason",
    "research"
]
DE = [
    "der", "die", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "von", "mit", "sich", "des",
    "auf", "für", "im", "dem", "als", "auch", "es", "an", "werden", "aus", "er", "hat", "dass", "sie",
    "nach", "wird", "bei", "einer", "um", "am", "sind", "noch", "wie", "einem", "über", "einen", "so",
    "zum", "war", "haben", "nur", "oder", "aber", "vor", "zur", "bis", "mehr", "durch", "man", "sein",
    "wurde", "sei", "Jahr", "Zeit", "Menschen", "Stadt", "Arbeit", "Haus", "Welt", "Leben", "Kinder",
    "Schule", "Land", "Frage", "Geschichte", "Freund", "Wasser", "Nacht", "Morgen"
]
BOILERPLATE = "Subscribe to our newsletter to read more stories like this one every week."


def _prose(rng: random.Random, words: list[str], sentences: int) -> str:
    lines = []
    for _ in range(sentences // 3):
        lines.append(" ".join(" ".join(rng.choice(words) for _ in range(rng.randint(9, 15))).capitalize() + "."
                              for _ in range(3)))
    return "\n".join(lines)


def crafted_corpus(n: int = 200, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    docs: list[dict] = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.08 and docs:
            text = rng.choice(docs)["text"]  # an exact copy
        elif kind < 0.18 and docs:
            words = rng.choice(docs)["text"].split(" ")
            words[rng.randrange(len(words))] = "zebra"
            text = " ".join(words)  # a near copy
        elif kind < 0.25:
            text = _prose(rng, DE, 12)
        elif kind < 0.30:
            text = "Buy now! Click here."
        else:
            text = _prose(rng, EN, rng.randint(9, 18))
            if rng.random() < 0.3:
                text += "\n" + BOILERPLATE
        docs.append({"text": text, "url": f"https://example.com/{i}", "n": i})
    return docs


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    docs = crafted_corpus()
    for name, part in (("a.jsonl", docs[:100]), ("b.jsonl", docs[100:])):
        (folder / name).write_text("".join(json.dumps(d) + "\n" for d in part))
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from spark_cluster import LocalCluster

    c = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def reference(spark, raw, tmp_path_factory) -> Path:
    """Every corpus stage on local[2] (the test session's Spark), undisturbed."""
    from conftest import load_job

    out = tmp_path_factory.mktemp("local") / "corpus"
    load_job("corpus")(["--input", str(raw), "--output", str(out)])
    return out


def rows(folder) -> list[dict]:
    files = sorted(Path(folder).glob("*.parquet"))
    return sorted((r for f in files for r in pq.read_table(f).to_pylist()), key=lambda r: r["id"])


def assert_same_stage(got: Path, want: Path):
    assert stagedir.is_complete(got), f"{got} is not complete"
    for part in ("data", "rejected"):
        assert rows(got / part) == rows(want / part), f"{got.name}/{part} differs"
    a, b = stagedir.read_stats(got), stagedir.read_stats(want)
    for key in ("docs_in", "docs_kept", "docs_rejected", "rejected_by_reason", "bytes_kept"):
        assert a[key] == b[key], key
    assert a["docs_in"] == a["docs_kept"] + a["docs_rejected"]


def submit(cluster, job: str, *args: str) -> subprocess.Popen:
    env = dict(cluster.env(), SPARK_PROGRESS="false")
    return subprocess.Popen(cluster.submit_cmd(JOBS / f"{job}.py", *args), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-5000:]
    return out


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the job ended (status {proc.returncode}) before {what}:\n{proc.stdout.read()[-5000:]}")
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


def test_corpus_on_the_cluster_equals_local(cluster, raw, reference, tmp_path):
    out = tmp_path / "corpus"
    log = finish(submit(cluster, "corpus", "--input", str(raw), "--output", str(out)))
    assert "[corpus] done" in log
    stats = stagedir.read_stats(out / "clean")
    assert stats["spark"]["master"] == cluster.url  # it did run on the cluster
    for stage in STAGES:
        assert_same_stage(out / stage, reference / stage)
    # the crafted input exercises every kind of verdict
    assert {"lang:de", "dup:exact", "dup:near"} <= {
        k for s in STAGES for k in stagedir.read_stats(reference / s)["rejected_by_reason"]}


def shuffle_files(folder: Path) -> dict[str, int]:
    """Shuffle data files under ``folder`` and their shuffle ids (numbered per application)."""
    return {os.path.join(d, f): int(f.split("_")[1]) for d, _, files in os.walk(folder)
            for f in files if f.startswith("shuffle_") and f.endswith(".data")}


def shuffle_ids(folder: Path, before: dict[str, int] | None = None) -> set[int]:
    """Ids of the shuffles written since ``before``: an executor killed by SIGKILL never cleans
    up, so files of an earlier application may still be there."""
    return {i for path, i in shuffle_files(folder).items() if path not in (before or {})}


# The dedup plan's shuffles are numbered in order: by shuffle 6 the features and exact groups
# are materialised; by 14 connected components are running. The executor of worker 1 dies at
# the first, the first executor of worker 2 at the second, so that every block written before
# then is gone with them: a plan that cannot recompute what it needs fails here.
KILLS = ((1, 6), (2, 14))


def test_executors_killed_mid_dedup_are_survived(cluster, reference, tmp_path):
    out = tmp_path / "dedup"
    before = shuffle_files(cluster.root)
    proc = submit(cluster, "dedup", "--input", str(reference / "langfilter"), "--output", str(out))
    try:
        for worker, shuffle in KILLS:
            wait_until(lambda n=shuffle: max(shuffle_ids(cluster.root, before), default=-1) >= n, proc,
                       f"shuffle {shuffle}")
            victims = cluster.executor_pids(worker)
            assert len(victims) == 1, victims
            os.kill(victims[0], signal.SIGKILL)
        log = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert log.count("Lost executor") == len(KILLS)  # the driver saw both losses mid-job
    assert_same_stage(out, reference / "dedup")


def test_a_worker_killed_mid_dedup_is_survived(cluster, reference, tmp_path):
    out = tmp_path / "dedup"
    before = shuffle_files(cluster.root)
    proc = submit(cluster, "dedup", "--input", str(reference / "langfilter"), "--output", str(out))
    try:
        wait_until(lambda: max(shuffle_ids(cluster.root, before), default=-1) >= 10, proc, "shuffle 10")
        worker = cluster.worker_pid(2)
        assert worker is not None and cluster.executor_pids(2)
        os.kill(worker, signal.SIGKILL)
        log = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        cluster.restart_worker(2)
    assert "Lost executor" in log  # the driver saw the loss mid-job
    assert_same_stage(out, reference / "dedup")


def test_a_driver_killed_mid_write_leaves_an_incomplete_folder_that_a_rerun_completes(cluster, reference,
                                                                                      tmp_path, capsys):
    from conftest import load_job

    from core.errors import run_command

    out = tmp_path / "langfilter"
    args = ["--input", str(reference / "clean"), "--output", str(out)]
    proc = submit(cluster, "langfilter", *args)
    try:
        wait_until(lambda: (out / "data").is_dir(), proc, "the write of data/")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # spark-submit's JVM and the Python driver
        proc.communicate(timeout=60)
    assert (out / "data").is_dir() and not stagedir.is_complete(out)

    # the next stage refuses it: one line, exit 2, before Spark starts
    with pytest.raises(SystemExit) as refused:
        run_command(load_job("dedup"), ["--input", str(out), "--output", str(tmp_path / "dedup")])
    assert refused.value.code == 2 and "incomplete" in capsys.readouterr().err

    # a plain rerun (no --overwrite) clears what the killed one left and completes
    finish(submit(cluster, "langfilter", *args))
    assert_same_stage(out, reference / "langfilter")
