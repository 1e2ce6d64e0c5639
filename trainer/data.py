"""Token shards in, batches of windows out.

Shards are read through ``core.shards`` (SPEC "Token shards": 256 little-endian int32 of header,
then the tokens), the one module that writes them too; it needs only NumPy, so the trainer runs on
a GPU machine that has only torch, numpy, sentencepiece and safetensors. Every header is checked
against the file's size and the manifest before training starts: a wrong shard found at hour ten
costs ten hours.

Batches are windows of seq_len + 1 tokens at random places in the train split. Which windows a
step uses is a pure function of (seed, step): resuming at step k needs nothing but k to see the
same data, and no loader state can drift.
"""

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import UsageError
from core.files import file_sha256
from core.shards import DTYPE_NAMES, file_in, read_shard


@dataclass
class Split:
    name: str
    shards: list  # memory-mapped token arrays
    tokens: int
    bytes_per_token: float | None  # for bits per byte; None when the manifest does not say


class ShardDataset:
    """A shard folder, checked: the manifest, every shard's header, and the tokenizer's sha256."""

    def __init__(self, folder):
        self.folder = Path(folder)
        path = self.folder / "manifest.json"
        if not path.is_file():
            raise UsageError(f"no manifest.json in {self.folder} (make shards with jobs/encode.py)")
        try:
            self.manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {path}: {e}") from None
        if not isinstance(self.manifest, dict):
            raise UsageError(f"{path} must hold one JSON object")
        tok = self.manifest.get("tokenizer") if isinstance(self.manifest.get("tokenizer"), dict) else {}
        vocab = self.manifest.get("vocab_size", tok.get("vocab_size"))
        if not isinstance(vocab, int) or vocab < 1:
            raise UsageError(f"{path} has no valid vocab_size")
        self.vocab_size = vocab
        self.bos_id = self.manifest.get("bos_id", tok.get("bos_id"))
        dtype_name = self.manifest.get("dtype")
        if dtype_name is not None and dtype_name not in DTYPE_NAMES:
            raise UsageError(f"{path}: dtype must be uint16 or uint32, not {dtype_name!r}")
        self.dtype = DTYPE_NAMES.get(dtype_name)
        if self.dtype is not None and vocab > np.iinfo(self.dtype).max + 1:
            raise UsageError(f"{path}: vocab_size {vocab} does not fit dtype {dtype_name}")
        # the sha256 goes into the run's config.json, so trainer.export ships this very file
        self.tokenizer_path, self.tokenizer_sha256 = self._tokenizer(tok)
        self.train = self._split("train")
        if self.train is None or self.train.tokens == 0:
            raise UsageError(f"{path} lists no train tokens")
        self.val = self._split("val")
        if self.val is not None and self.val.tokens == 0:
            self.val = None  # jobs/encode.py writes an empty val shard when no document fell in val

    def _tokenizer(self, tok: dict) -> tuple[Path | None, str | None]:
        """The SentencePiece model the shards were encoded with, when it is on this machine
        (a GPU box may have only the shards), and its sha256 (the manifest's when the file is
        not here). A file that is there but differs is an error:
        samples decoded with another vocabulary read as fluent garbage."""
        names = [tok.get("path"), tok.get("file")] if tok else [self.manifest.get("tokenizer")]
        candidates = []
        for name in filter(None, names):
            candidates += [self.folder / name, Path(name)]
            if tok.get("dir"):
                candidates.append(Path(tok["dir"]) / name)
        found = next((p for p in candidates if p.is_file()), None)
        digest = file_sha256(found) if found is not None else tok.get("sha256")
        if found is not None and tok.get("sha256") and digest != tok["sha256"]:
            raise UsageError(f"tokenizer {found} does not match the manifest's sha256 {tok['sha256'][:12]}...")
        return found, digest

    def _split(self, name: str) -> Split | None:
        splits = self.manifest.get("splits", self.manifest)
        info = splits.get(name) if isinstance(splits, dict) else None
        if not isinstance(info, dict):
            info = {}
        names = info.get("shards") or info.get("files")
        paths = [file_in(self.folder, n) for n in names] if names else sorted(self.folder.glob(f"{name}_*.bin"))
        if not paths:
            return None
        shards = [read_shard(p) for p in paths]
        for p, s in zip(paths, shards):
            if self.dtype is not None and s.dtype != self.dtype:
                raise UsageError(f"shard {p} holds {s.dtype.name} tokens but the manifest says {self.dtype.name}")
        tokens = sum(s.size for s in shards)
        if "tokens" in info and info["tokens"] != tokens:
            raise UsageError(f"manifest.json says {info['tokens']} {name} tokens but the shards hold {tokens}")
        bpt = info.get("bytes_per_token", self.manifest.get("bytes_per_token"))
        if bpt is None and info.get("bytes") and tokens:
            bpt = info["bytes"] / tokens
        return Split(name, shards, tokens, bpt)


def _windows(shards, starts: np.ndarray, seq_len: int) -> torch.Tensor:
    """Rows of seq_len + 1 tokens from (shard, offset) pairs, as int64 for the embedding."""
    shard_idx, offsets = starts
    rows = np.stack([np.asarray(shards[s][o:o + seq_len + 1]) for s, o in zip(shard_idx, offsets)])
    return torch.from_numpy(rows.astype(np.int64))


class WindowSampler:
    """Random windows of the train split, the same for a step whatever the number of processes.

    Each step draws one global batch from a generator seeded by (seed, step); process `rank`
    takes its own slice of it for each accumulation micro-step. So ranks see different data,
    the data position is just the step, and one process accumulating 8 micro-batches trains on
    exactly what 8 processes do, which is what lets the DDP test compare losses.
    """

    def __init__(self, split: Split, seq_len: int, seed: int, batch_size: int, grad_accum: int,
                 rank: int = 0, world_size: int = 1):
        self.shards, self.seq_len, self.seed = split.shards, seq_len, seed
        self.batch_size, self.grad_accum, self.rank, self.world_size = batch_size, grad_accum, rank, world_size
        self.global_rows = batch_size * grad_accum * world_size
        starts = np.array([max(s.size - seq_len, 0) for s in self.shards], dtype=np.int64)
        self.cum = np.cumsum(starts)
        if self.cum[-1] == 0:
            raise UsageError(f"the {split.name} split has no shard of more than seq_len={seq_len} tokens")
        self._drawn = (None, None)

    def batch(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._drawn[0] != step:
            rng = np.random.default_rng([self.seed, step])
            self._drawn = (step, rng.integers(0, self.cum[-1], size=self.global_rows))
        first = (self.rank * self.grad_accum + micro) * self.batch_size
        picks = self._drawn[1][first:first + self.batch_size]
        shard = np.searchsorted(self.cum, picks, side="right")
        offsets = picks - np.where(shard > 0, self.cum[shard - 1], 0)
        rows = _windows(self.shards, (shard, offsets), self.seq_len)
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def state_dict(self) -> dict:
        return {"seed": self.seed, "seq_len": self.seq_len, "global_rows": self.global_rows}


def val_batches(split: Split, seq_len: int, batch_size: int, iters: int, rank: int = 0, world_size: int = 1):
    """The first windows of the val split, back to back, cut the same way on every evaluation
    so that val_loss is comparable from step to step. Yields this rank's (x, y) batches."""
    every = ((s, o) for s, shard in enumerate(split.shards) for o in range(0, shard.size - seq_len, seq_len))
    offsets = list(itertools.islice(every, iters * batch_size * world_size))
    per_rank = min(batch_size, len(offsets) // world_size)
    if per_rank == 0:
        return
    n = min(iters, len(offsets) // (per_rank * world_size))
    for i in range(n):
        first = (i * world_size + rank) * per_rank
        chosen = np.array(offsets[first:first + per_rank]).T
        rows = _windows(split.shards, chosen, seq_len)
        yield rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def bits_per_byte(loss: float, bytes_per_token: float | None) -> float | None:
    """Nats per token to bits per byte: comparable across tokenizers, unlike loss."""
    return loss / math.log(2) / bytes_per_token if bytes_per_token else None
