"""The clean job on Spark: stage folder, conservation of documents, errors, determinism."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pipeline.stage import stagedir

REPO = str(__import__("conftest").REPO)

PROSE = (
    "The river had risen during the night, and by morning the lower fields were under water. "
    "Farmers gathered at the bridge to watch the current carry branches and fence posts "
    "toward the sea.\n"
    "Nobody could remember a flood like it since the winter of the great storm, when the old "
    "mill was swept away and the village school was closed for a month.\n\n"
    "By noon the rain had stopped. Children were sent home early, and the baker handed out "
    "bread to the families whose kitchens had flooded. The mayor walked along the bank with "
    "two engineers, pointing at the places where the wall had given way.\n"
    "They agreed that the repairs would take most of the summer and that the village would "
    "need help from the county to pay for new stone and timber.\n"
)


def _write_inputs(root):
    root.mkdir(parents=True, exist_ok=True)
    docs = [
        {"text": PROSE, "url": "https://example.org/flood", "lang": "en"},
        {"text": PROSE.replace("river", "stream"), "lang": "en"},
        {"text": "Lorem ipsum dolor sit amet. " + PROSE},
        {"text": "Too short to be a document."},
        {"no_text": True},
    ]
    lines = [json.dumps(d) for d in docs] + ["{broken json"]
    (root / "a.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(root / "b.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": PROSE.replace("farmers", "workers")}) + "\n")
    (root / "book.txt").write_text(PROSE * 2)
    (root / "empty.txt").write_text("")
    return root



def _clean_main():
    from conftest import load_job

    return load_job("clean")


def _rows(folder):
    table = pq.read_table(folder)
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def test_clean_job_writes_a_complete_stage(spark, tmp_path, capsys):
    raw = _write_inputs(tmp_path / "raw")
    out = tmp_path / "clean"
    main = _clean_main()
    main(["--input", str(raw), "--output", str(out)])
    stats = stagedir.read_stats(out)
    assert stagedir.is_complete(out)
    assert stats["docs_in"] == stats["docs_kept"] + stats["docs_rejected"] == 9
    reasons = stats["rejected_by_reason"]
    assert reasons["ingest:bad_json"] == 1 and reasons["ingest:no_text"] == 1
    assert reasons["ingest:empty_file"] == 1
    assert sum(v for k, v in reasons.items() if k.startswith("quality:")) >= 2
    kept = _rows(stagedir.data_dir(out))
    rejected = _rows(stagedir.rejected_dir(out))
    assert {r["id"] for r in kept}.isdisjoint({r["id"] for r in rejected})
    assert "a.jsonl:0" in {r["id"] for r in kept}
    assert all(r["reason"] for r in rejected)
    assert {"id", "text", "source", "url", "metadata"} <= set(kept[0])
    flood = next(r for r in kept if r["id"] == "a.jsonl:0")
    assert flood["url"] == "https://example.org/flood"
    assert json.loads(flood["metadata"]) == {"lang": "en"}

    # A complete folder is not replaced without --overwrite ...
    from core.errors import UsageError

    with pytest.raises(UsageError, match="already complete"):
        main(["--input", str(raw), "--output", str(out)])
    # ... and a rerun with it gives the same documents, ids and all.
    main(["--input", str(raw), "--output", str(out), "--overwrite"])
    assert _rows(stagedir.data_dir(out)) == kept
    assert _rows(stagedir.rejected_dir(out)) == rejected


def test_incomplete_stage_is_not_read(spark, tmp_path):
    from core.errors import UsageError
    from pipeline.spark.runner import read_stage

    (tmp_path / "half" / "data").mkdir(parents=True)
    with pytest.raises(UsageError, match="incomplete"):
        read_stage(spark, str(tmp_path / "half"))


@pytest.mark.parametrize("args, message", [
    (["--input", "/nonexistent/x.jsonl"], "input not found"),
    (["--input", "{raw}/a.jsonl", "--set", "no_such_rule=1"], "unknown config key"),
    (["--input", "{raw}/a.jsonl", "--config", "/nonexistent.yaml"], "config file not found"),
    (["--input", "{raw}/a.jsonl", "--bogus-flag"], "unrecognized arguments"),
])
def test_bad_usage_is_one_line_and_exit_2(tmp_path, args, message):
    raw = _write_inputs(tmp_path / "raw")
    args = [a.replace("{raw}", str(raw)) for a in args]
    proc = subprocess.run([sys.executable, os.path.join(REPO, "jobs", "clean.py"), *args,
                           "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_local_cluster_matches_local(spark, tmp_path):
    """Separate executor processes (local-cluster) give the same output as local[2]."""
    raw = _write_inputs(tmp_path / "raw")
    main = _clean_main()
    main(["--input", str(raw), "--output", str(tmp_path / "local")])
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    proc = subprocess.run([submit, "--master", "local-cluster[2,1,1024]",
                           os.path.join(REPO, "jobs", "clean.py"), "--input", str(raw),
                           "--output", str(tmp_path / "cluster")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for part in ("data", "rejected"):
        assert _rows(tmp_path / "cluster" / part) == _rows(tmp_path / "local" / part)


@pytest.mark.slow
def test_clean_over_shared_web_and_books(spark, tmp_path, shared_data):
    """Real crawl files (WARC, WET, truncated ARC, JSONL.gz, HTML) and Gutenberg books."""
    main = _clean_main()
    out = tmp_path / "web"
    main(["--input", str(shared_data / "web"), "--output", str(out)])
    stats = stagedir.read_stats(out)
    assert stats["docs_in"] == stats["docs_kept"] + stats["docs_rejected"]
    assert stats["rejected_by_reason"].get("ingest:corrupt", 0) + \
        stats["rejected_by_reason"].get("ingest:truncated", 0) >= 1  # the truncated ARC
    assert stats["docs_kept"] > 500
    kept = _rows(stagedir.data_dir(out))
    assert sum(1 for r in kept if r["url"]) > 30  # WARC and WET records keep their URL
    books = sorted((shared_data / "books").glob("*.txt"))[:12]
    out = tmp_path / "books"
    main(["--input", *map(str, books), "--output", str(out)])
    stats = stagedir.read_stats(out)
    assert stats["docs_in"] == 12 == stats["docs_kept"] + stats["docs_rejected"]
