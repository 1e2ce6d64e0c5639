"""Token shards: the llm.c layout, atomic writes, and a reader that needs only NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import UsageError
from core.shards import (
    HEADER_BYTES,
    ShardWriter,
    concatenate,
    read_header,
    read_shard,
    shard_paths,
    token_dtype,
    write_shard,
)


def parse_like_llm_c(path):
    """What llm.c's dataloader does, with NumPy alone: 256 int32, magic, version, count."""
    header = np.fromfile(path, dtype="<i4", count=256)
    magic, version, count = int(header[0]), int(header[1]), int(header[2])
    dtype = {(20240520, 1): "<u2", (20240801, 7): "<u4"}[(magic, version)]
    tokens = np.fromfile(path, dtype=dtype, offset=256 * 4)
    assert tokens.size == count
    return magic, version, tokens


@pytest.mark.parametrize(
    "vocab,magic,version", [(50257, 20240520, 1), (65536, 20240520, 1), (100277, 20240801, 7)]
)
def test_shard_parses_with_numpy_alone(tmp_path, vocab, magic, version):
    tokens = np.random.default_rng(0).integers(0, vocab, size=1000)
    tokens[0], tokens[-1] = 0, vocab - 1
    path = write_shard(tmp_path / "train_000000.bin", tokens, token_dtype(vocab))
    got_magic, got_version, got = parse_like_llm_c(path)
    assert (got_magic, got_version) == (magic, version)
    np.testing.assert_array_equal(got, tokens)
    np.testing.assert_array_equal(read_shard(path), tokens)
    assert path.stat().st_size == HEADER_BYTES + tokens.size * token_dtype(vocab).itemsize


def test_uint16_refuses_ids_that_do_not_fit(tmp_path):
    with pytest.raises(ValueError):
        write_shard(tmp_path / "x.bin", np.array([70000]), token_dtype(50000))
    assert list(tmp_path.iterdir()) == []  # the aborted temporary file is gone too


def test_writer_cuts_a_stream_into_exact_shards(tmp_path):
    writer = ShardWriter(tmp_path, "train", shard_tokens=100, dtype=token_dtype(1000))
    stream = np.arange(350) % 1000
    for chunk in np.array_split(stream, 7):  # chunk edges unrelated to shard edges
        writer.write(chunk)
    paths = writer.close()
    assert [p.name for p in paths] == [f"train_{i:06d}.bin" for i in range(4)]
    assert paths == shard_paths(tmp_path, "train")
    assert [read_header(p)[0] for p in paths] == [100, 100, 100, 50]
    np.testing.assert_array_equal(np.concatenate([read_shard(p) for p in paths]), stream)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_empty_split_still_gets_one_shard(tmp_path):
    paths = ShardWriter(tmp_path, "val", 10, token_dtype(1000)).close()
    assert [read_header(p)[0] for p in paths] == [0]


def test_truncated_or_foreign_files_are_refused(tmp_path):
    path = write_shard(tmp_path / "a.bin", np.arange(10), token_dtype(100))
    data = path.read_bytes()
    path.write_bytes(data[:-2])
    with pytest.raises(UsageError, match="truncated"):
        read_shard(path)
    path.write_bytes(b"\0" * 2000)
    with pytest.raises(UsageError, match="not a token shard"):
        read_shard(path)
    path.write_bytes(b"short")
    with pytest.raises(UsageError, match="shorter than its header"):
        read_header(path)


def test_part_files_concatenate_into_shards_in_order(tmp_path):
    dtype = token_dtype(1000)
    parts = [
        write_shard(tmp_path / f"part-{i}.bin", np.arange(i * 100, i * 100 + 70), dtype) for i in range(3)
    ]
    paths, written = concatenate(parts, tmp_path, "train", 50, dtype)
    assert written == 210 and [read_header(p)[0] for p in paths] == [50, 50, 50, 50, 10]
    expected = np.concatenate([np.arange(i * 100, i * 100 + 70) for i in range(3)])
    np.testing.assert_array_equal(np.concatenate([read_shard(p) for p in paths]), expected)
