"""Issue 20, cases 1–4: an operator's mistake never destroys the input or silently mixes runs.

Each test builds the mistake from small files; the checks run before Spark starts, so only
the rerun test needs a session.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from conftest import load_job

from core.errors import UsageError
from pipeline.stage import stagedir


def _raw(folder: Path, n: int = 12) -> Path:
    from test_end_to_end import _doc

    rng = random.Random(7)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"text": _doc(rng), "id": f"d{i}"}) + "\n")
    return folder


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _complete_stage(folder: Path) -> Path:
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "part-0.parquet").write_bytes(b"kept documents")
    stagedir.mark_complete(folder, {"stage": "x", "docs_in": 1, "docs_kept": 1,
                                    "docs_rejected": 0, "rejected_by_reason": {}})
    return folder


@pytest.mark.parametrize("where", ["same", "parent"])
def test_clean_refuses_output_over_its_input(tmp_path, where):
    raw = _raw(tmp_path / "P" / "raw")
    out = raw if where == "same" else raw.parent
    before = _tree_digest(tmp_path)
    with pytest.raises(UsageError, match="contains the input"):
        load_job("clean")(["--input", str(raw), "--output", str(out), "--overwrite"])
    assert _tree_digest(tmp_path) == before


def test_stage_job_refuses_output_equal_to_input_even_with_overwrite(tmp_path):
    stage = _complete_stage(tmp_path / "S")
    before = _tree_digest(stage)
    with pytest.raises(UsageError, match="contains the input"):
        load_job("langfilter")(["--input", str(stage), "--output", str(stage), "--overwrite"])
    assert _tree_digest(stage) == before


def test_tokenizer_refuses_output_equal_to_input(tmp_path):
    from tokenizer.train import main as train_tokenizer

    stage = _complete_stage(tmp_path / "S")
    before = _tree_digest(stage)
    assert train_tokenizer(["--input", str(stage), "--output", str(stage), "--vocab-size", "300",
                            "--overwrite"]) == 2
    assert _tree_digest(stage) == before


def test_a_folder_we_did_not_write_is_never_replaced(tmp_path):
    raw = _raw(tmp_path / "raw")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("years of work")
    with pytest.raises(UsageError, match="did not write"):
        load_job("clean")(["--input", str(raw), "--output", str(theirs), "--overwrite"])
    assert (theirs / "thesis.tex").read_text() == "years of work"
    # The library call that deletes is guarded too, not only the job's early check.
    with pytest.raises(UsageError, match="did not write"):
        stagedir.prepare_output(theirs, overwrite=True, inputs=[str(raw)])
    assert (theirs / "thesis.tex").is_file()


def test_killed_run_is_still_cleared(tmp_path):
    out = tmp_path / "stage"
    stagedir.prepare_output(out, overwrite=False, inputs=[])
    (out / "data").mkdir()
    (out / "data" / "part-0.parquet").write_text("partial")
    stagedir.prepare_output(out, overwrite=False, inputs=[])  # our start marker: cleared
    assert not (out / "data").exists()


def test_output_inside_input_is_refused(tmp_path):
    raw = _raw(tmp_path / "R")
    with pytest.raises(UsageError, match="lies inside the input"):
        load_job("corpus")(["--input", str(raw), "--output", str(raw / "corp"), "--overwrite"])
    assert not (raw / "corp").exists()
    with pytest.raises(UsageError, match="lies inside the input"):
        load_job("clean")(["--input", str(raw), "--output", str(raw / "clean")])
    # A recursive glob would match what the output holds on the next run.
    with pytest.raises(UsageError, match="lies inside the input"):
        load_job("clean")(["--input", str(raw / "**" / "*.jsonl"), "--output", str(raw / "c")])


def test_output_beside_a_globbed_input_is_allowed(tmp_path):
    raw = _raw(tmp_path / "R")
    stagedir.check_disjoint([str(raw / "*.jsonl")], raw / "clean")  # no error


@pytest.mark.parametrize("value", ["-1", "0"])
def test_max_record_bytes_must_be_positive(tmp_path, value):
    raw = _raw(tmp_path / "raw")
    with pytest.raises(UsageError, match="positive"):
        load_job("clean")(["--input", str(raw), "--output", str(tmp_path / "out"),
                           "--max-record-bytes", value])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_corpus_rerun_skips_only_what_is_unchanged(spark, tmp_path):
    raw = _raw(tmp_path / "raw")
    other = _raw(tmp_path / "other", n=8)
    out = tmp_path / "corpus"
    corpus = load_job("corpus")
    base = ["--output", str(out), "--stages", "clean,langfilter"]

    def run(*extra):
        corpus(base + list(extra))
        return json.loads((out / "corpus.json").read_text())

    first = run("--input", str(raw), "--languages", "en")
    assert first["ran"] == ["clean", "langfilter"]
    assert run("--input", str(raw), "--languages", "en")["skipped"] == ["clean", "langfilter"]

    # A different language list: clean is unchanged, langfilter runs again.
    changed = run("--input", str(raw), "--languages", "de")
    assert changed["skipped"] == ["clean"] and changed["ran"] == ["langfilter"]
    assert stagedir.read_stats(out / "langfilter")["docs_kept"] == 0

    # A different setting of the first stage reruns it and everything after it.
    changed = run("--input", str(raw), "--languages", "de", "--set", "clean.min_words=5")
    assert changed["ran"] == ["clean", "langfilter"]

    # A different input: the clean stage reads the new files, corpus.json says so truly.
    changed = run("--input", str(other), "--languages", "de", "--set", "clean.min_words=5")
    assert changed["ran"] == ["clean", "langfilter"]
    assert changed["inputs"] == [str(other)]
    assert stagedir.read_stats(out / "clean")["docs_in"] == 8
