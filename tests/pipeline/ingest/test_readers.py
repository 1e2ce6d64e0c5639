"""Readers on crafted files: every bad record is quarantined with a reason, nothing is lost."""
from __future__ import annotations

import gzip
import json
from collections import Counter

import pyarrow as pa
import pytest

from core.errors import UsageError
from pipeline.ingest.readers import (
    InputFile,
    detect_format,
    list_inputs,
    read_file,
    read_file_batches,
)


def _file(path, key=None):
    fmt, comp = detect_format(str(path))
    return InputFile(str(path), key or path.name, fmt, comp)


def _reasons(records):
    return Counter(r["reason"] for r in records)


def test_jsonl_bad_records_are_quarantined(tmp_path):
    p = tmp_path / "a.jsonl"
    lines = [
        json.dumps({"text": "good one", "url": "http://x", "lang": "en"}).encode(),
        b"{not json",
        json.dumps({"title": "no text"}).encode(),
        b'{"text": "caf\xff"}',  # invalid UTF-8
        b"",  # blank line: a separator, not a record
        json.dumps([1, 2]).encode(),
        json.dumps({"text": "   "}).encode(),
        b'{"text": "bad \\ud800 surrogate"}',  # a lone surrogate: not encodable as UTF-8
        b"[" * 100000 + b"]" * 100000,  # deep nesting
    ]
    p.write_bytes(b"\n".join(lines) + b"\n")
    recs = list(read_file(_file(p)))
    assert _reasons(recs) == {None: 1, "ingest:bad_json": 2, "ingest:no_text": 1,
                              "ingest:invalid_utf8": 1, "ingest:not_object": 1,
                              "ingest:empty_text": 1, "ingest:invalid_unicode": 1}
    good = recs[0]
    assert good["id"] == "a.jsonl:0" and good["url"] == "http://x"
    assert json.loads(good["metadata"]) == {"lang": "en"}
    assert len({r["id"] for r in recs}) == len(recs)


def test_truncated_gzip_keeps_records_before_the_break(tmp_path):
    p = tmp_path / "t.jsonl.gz"
    body = b"".join(json.dumps({"text": f"doc {i} " * 50}).encode() + b"\n" for i in range(200))
    data = gzip.compress(body)
    p.write_bytes(data[: len(data) // 2])
    recs = list(read_file(_file(p)))
    kept = [r for r in recs if r["reason"] is None]
    assert 0 < len(kept) < 200
    file_level = [r for r in recs if r["reason"] == "ingest:truncated"]
    assert len(file_level) == 1 and json.loads(file_level[0]["metadata"])["records_before"] >= len(kept)


def test_zstd_jsonl(tmp_path):
    import zstandard

    p = tmp_path / "z.jsonl.zst"
    body = b"".join(json.dumps({"text": f"doc {i}"}).encode() + b"\n" for i in range(10))
    p.write_bytes(zstandard.ZstdCompressor().compress(body))
    recs = list(read_file(_file(p)))
    assert [r["text"] for r in recs] == [f"doc {i}" for i in range(10)]


def test_huge_line_is_quarantined_without_loading_it(tmp_path):
    p = tmp_path / "big.jsonl"
    with open(p, "wb") as f:
        f.write(json.dumps({"text": "before"}).encode() + b"\n")
        f.write(b'{"text": "' + b"x" * (100 << 20) + b'"}\n')
        f.write(json.dumps({"text": "after"}).encode() + b"\n")
    recs = list(read_file(_file(p), max_bytes=1 << 20))
    assert [r["reason"] for r in recs] == [None, "ingest:too_large", None]
    assert len(recs[1]["text"]) <= 2000
    assert json.loads(recs[1]["metadata"])["bytes"] > 100 << 20


def test_text_files_empty_and_invalid(tmp_path):
    (tmp_path / "ok.txt").write_text("A whole book as one document.\n\nSecond paragraph.")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 latin-1")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfwith bom")
    (tmp_path / "notes.xyz").write_text("unknown format")
    files, skipped = list_inputs([str(tmp_path)])
    assert [f.key for f in files] == ["bad.txt", "bom.txt", "empty.txt", "ok.txt"]
    assert skipped == [str(tmp_path / "notes.xyz")]
    recs = {f.key: list(read_file(f)) for f in files}
    assert recs["ok.txt"][0]["reason"] is None and recs["ok.txt"][0]["id"] == "ok.txt"
    assert recs["empty.txt"][0]["reason"] == "ingest:empty_file"
    assert recs["bad.txt"][0]["reason"] == "ingest:invalid_utf8"
    assert recs["bom.txt"][0]["text"] == "with bom"


def test_parquet_input(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["one", "two"], "score": [1, 2]}), tmp_path / "p.parquet")
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "q.parquet")
    files, _ = list_inputs([str(tmp_path / "*.parquet")])
    recs = [r for f in files for r in read_file(f)]
    assert [(r["id"], r["reason"]) for r in recs] == [
        ("p.parquet:0", None), ("p.parquet:1", None), ("q.parquet:no_text_column",
                                                       "ingest:no_text_column")]
    assert json.loads(recs[0]["metadata"]) == {"score": 1}


def test_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="input not found"):
        list_inputs([str(tmp_path / "missing.jsonl")])
    (tmp_path / "x.docx").write_text("?")
    with pytest.raises(UsageError, match="unknown input format"):
        list_inputs([str(tmp_path / "x.docx")])


def test_batches_follow_the_ingest_schema(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text("\n".join(json.dumps({"text": f"t{i}"}) for i in range(5)))
    spec = pa.RecordBatch.from_pylist([{"path": str(p), "key": "a.jsonl", "format": "jsonl",
                                        "compression": None}])
    out = list(read_file_batches(iter([spec])))
    assert sum(b.num_rows for b in out) == 5
    assert out[0].schema.names == ["id", "text", "source", "url", "metadata", "reason"]


def test_shared_web_files(shared_data):
    files, skipped = list_inputs([str(shared_data / "web")])
    by_key = {f.key: list(read_file(f)) for f in files}
    arc = [k for k in by_key if k.endswith("truncated.arc")][0]
    assert {r["reason"] for r in by_key[arc]} <= {"ingest:corrupt", "ingest:truncated", None}
    assert any(r["reason"] for r in by_key[arc])
    wet = by_key["whirlwind__whirlwind.warc.wet.gz"]
    assert wet[0]["url"] and wet[0]["reason"] is None and len(wet[0]["text"]) > 1000
    warc = [r for r in by_key["resiliparse__warcfile.warc.gz"] if r["reason"] is None]
    assert warc and all(r["url"] for r in warc)
    ids = [r["id"] for recs in by_key.values() for r in recs]
    assert len(ids) == len(set(ids))
