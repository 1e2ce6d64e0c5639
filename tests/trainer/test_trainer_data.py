"""trainer/data.py: manifest checks and the (seed, step) sampler (the shard layout itself is
core/shards.py's, tested with it)."""

import json

import numpy as np
import pytest
import torch

from core.errors import UsageError
from trainer.data import ShardDataset, WindowSampler, bits_per_byte, val_batches
from trainer.fixtures import write_dataset


def dataset(tmp_path, train=5000, val=600, vocab=500, **kw):
    rng = np.random.default_rng(0)
    return write_dataset(tmp_path / "data", {"train": rng.integers(0, vocab, train), "val": rng.integers(0, vocab, val)},
                         vocab_size=vocab, **kw)


def test_manifest_and_shards_are_read(tmp_path):
    data = ShardDataset(dataset(tmp_path, bytes_per_token=4.0, shard_tokens=2000))
    assert data.vocab_size == 500 and data.tokenizer_path is None
    assert data.train.tokens == 5000 and len(data.train.shards) == 3
    assert data.val.tokens == 600 and data.val.bytes_per_token == 4.0


def _edit_manifest(folder, **changes):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "cannot read"),
    (lambda d: _edit_manifest(d, vocab_size=None), "vocab_size"),
    (lambda d: _edit_manifest(d, vocab_size=70000), "does not fit dtype uint16"),
    (lambda d: _edit_manifest(d, dtype="uint32"), "holds uint16 tokens but the manifest says uint32"),
    (lambda d: _edit_manifest(d, splits={"train": {"shards": ["train_000000.bin"], "tokens": 4999}}),
     "says 4999 train tokens but the shards hold 5000"),
    (lambda d: (d / "train_000000.bin").unlink() or _edit_manifest(d, splits={"val": {}}), "no train tokens"),
    (lambda d: _edit_manifest(d, splits={"train": {"shards": ["nope.bin"]}}), "cannot read shard"),
])
def test_bad_manifests_are_refused(tmp_path, breakage, message):
    folder = dataset(tmp_path)
    breakage(folder)
    with pytest.raises(UsageError, match=message):
        ShardDataset(folder)


def test_bad_shard_headers_are_refused(tmp_path):
    folder = dataset(tmp_path)
    shard = folder / "train_000000.bin"
    raw = bytearray(shard.read_bytes())
    raw[:4] = np.int32(12345).tobytes()
    shard.write_bytes(raw)
    with pytest.raises(UsageError, match="wrong header"):
        ShardDataset(folder)
    raw[:4] = np.int32(20240520).tobytes()
    shard.write_bytes(raw[:-10])  # truncated: the header's count no longer fits the size
    with pytest.raises(UsageError, match="header says 5000 tokens"):
        ShardDataset(folder)
    shard.write_bytes(raw[:100])
    with pytest.raises(UsageError, match="shorter than its"):
        ShardDataset(folder)


def test_tokenizer_file_is_checked_against_its_sha256(tmp_path):
    tok = tmp_path / "tokenizer.model"
    tok.write_bytes(b"a model")
    folder = dataset(tmp_path, tokenizer_file=tok)
    assert ShardDataset(folder).tokenizer_path == tok.resolve()
    tok.write_bytes(b"another model")
    with pytest.raises(UsageError, match="does not match the manifest's sha256"):
        ShardDataset(folder)
    tok.unlink()  # a GPU machine with the shards but no tokenizer still trains
    assert ShardDataset(folder).tokenizer_path is None


def test_windows_depend_only_on_seed_and_step(tmp_path):
    data = ShardDataset(dataset(tmp_path, shard_tokens=1500))
    a = WindowSampler(data.train, 32, seed=1, batch_size=4, grad_accum=2)
    b = WindowSampler(data.train, 32, seed=1, batch_size=4, grad_accum=2)
    x, y = a.batch(7, 1)
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    b.batch(3, 0)  # another step in between changes nothing
    assert torch.equal(b.batch(7, 1)[0], x)
    assert not torch.equal(a.batch(8, 1)[0], x)
    assert not torch.equal(WindowSampler(data.train, 32, 2, 4, 2).batch(7, 1)[0], x)
    # every window is a real run of the stream, inside one shard
    stream = np.concatenate([np.asarray(s) for s in data.train.shards])
    for row in a.batch(9, 0)[0].numpy():
        hits = np.flatnonzero(stream[:-32] == row[0])
        assert any(np.array_equal(stream[h:h + 32], row) for h in hits)


def test_ranks_split_one_global_batch_the_same_way_as_accumulation(tmp_path):
    data = ShardDataset(dataset(tmp_path))
    one = WindowSampler(data.train, 16, 3, batch_size=2, grad_accum=4)
    rows_one = torch.cat([one.batch(5, m)[0] for m in range(4)])
    ranks = [WindowSampler(data.train, 16, 3, batch_size=2, grad_accum=2, rank=r, world_size=2) for r in range(2)]
    rows_two = torch.cat([s.batch(5, m)[0] for s in ranks for m in range(2)])
    assert torch.equal(rows_one, rows_two)
    assert not torch.equal(ranks[0].batch(5, 0)[0], ranks[1].batch(5, 0)[0])


def test_val_batches_are_fixed_and_split_over_ranks(tmp_path):
    data = ShardDataset(dataset(tmp_path))
    batches = list(val_batches(data.val, 16, batch_size=4, iters=100))
    assert len(batches) == 9 and all(x.shape == (4, 16) for x, _ in batches)  # 37 windows of 16 in 600
    assert torch.equal(batches[0][0][0], torch.from_numpy(np.asarray(data.val.shards[0][:16]).astype(np.int64)))
    halves = [list(val_batches(data.val, 16, 4, 2, rank=r, world_size=2)) for r in range(2)]
    assert torch.equal(torch.cat([halves[0][0][0], halves[1][0][0]]), torch.cat([b[0] for b in batches[:2]]))
    assert list(val_batches(data.val, 1000, 4, 2)) == []


def test_too_short_train_split_is_an_error(tmp_path):
    data = ShardDataset(dataset(tmp_path, train=20))
    with pytest.raises(UsageError, match="seq_len=32"):
        WindowSampler(data.train, 32, 0, 1, 1)


def test_bits_per_byte():
    assert bits_per_byte(np.log(2) * 4, 2.0) == pytest.approx(2.0)
    assert bits_per_byte(1.0, None) is None
