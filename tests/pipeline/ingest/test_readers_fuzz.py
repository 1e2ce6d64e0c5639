"""Hostile bytes: every reader either yields records or quarantines with a reason, never raises."""
from __future__ import annotations

import gzip
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest.readers import InputFile, detect_format, read_file

SUFFIXES = [".jsonl", ".jsonl.gz", ".jsonl.zst", ".txt", ".warc", ".warc.gz", ".arc", ".parquet",
            ".html"]

nasty_text = st.text(
    alphabet=st.sampled_from(list("ab \n\t{}[]\":,\\") + ["\x00", "\u200b", "\u202e", "\ufeff",
                                                           "\ud7ff", "é", "字"]),
    max_size=300)


def _check(path):
    fmt, comp = detect_format(str(path))
    recs = list(read_file(InputFile(str(path), path.name, fmt, comp), max_bytes=4096))
    for r in recs:
        assert set(r) == {"id", "text", "source", "url", "metadata", "reason"}
        assert isinstance(r["text"], str)
        r["text"].encode("utf-8")  # always writable as UTF-8
        assert r["reason"] is None or r["reason"].startswith("ingest:")
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids))
    return recs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_never_crash(tmp_path, data, suffix):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    _check(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(nasty_text, min_size=1, max_size=8), cut=st.floats(0, 1),
       depth=st.integers(0, 5000))
def test_jsonl_with_nasty_text_broken_gzip_and_deep_nesting(tmp_path, texts, cut, depth):
    lines = [json.dumps({"text": t}) for t in texts] + ["[" * depth + "]" * depth]
    data = gzip.compress("\n".join(lines).encode("utf-8", "surrogatepass"))
    path = tmp_path / "f.jsonl.gz"
    path.write_bytes(data[: max(1, int(len(data) * cut))])
    recs = _check(path)
    kept = [r["text"] for r in recs if r["reason"] is None]
    assert all(k in texts for k in kept)
