"""Token shards in, batches of windows out.

The trainer reads shards by itself with NumPy (SPEC "Token shards": 256 little-endian int32 of
header, then the tokens) instead of importing tokenizer/, so it runs on a GPU machine that has
only torch, numpy, sentencepiece and safetensors. Every header is checked against the file's size
and the manifest before training starts: a wrong shard found at hour ten costs ten hours.

Batches are windows of seq_len + 1 tokens at random places in the train split. Which windows a
step uses is a pure function of (seed, step): resuming at step k needs nothing but k to see the
same data, and no loader state can drift.
"""

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.errors import TrainerError

HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
# (magic, version) -> token dtype, as llm.c and modded-nanogpt read them
FORMATS = {(20240520, 1): np.dtype("<u2"), (20240801, 7): np.dtype("<u4")}
DTYPE_NAMES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}


def write_shard(path, tokens, vocab_size: int | None = None) -> Path:
    """One shard in the SPEC layout, written under a temporary name and renamed into place.
    For tests and the GPU bench's synthetic data; real shards come from jobs/encode.py."""
    tokens = np.asarray(tokens)
    big = (vocab_size or int(tokens.max(initial=0)) + 1) > 1 << 16
    dtype, magic, version = (np.dtype("<u4"), 20240801, 7) if big else (np.dtype("<u2"), 20240520, 1)
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = magic, version, tokens.size
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype(dtype).tobytes())
    os.replace(tmp, path)
    return path


def write_dataset(folder, splits: dict, vocab_size: int, tokenizer_file=None, bytes_per_token=None,
                  shard_tokens: int | None = None) -> Path:
    """Shards and a manifest.json for each split's token array, shaped like jobs/encode.py's."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"vocab_size": vocab_size, "dtype": "uint32" if vocab_size > 1 << 16 else "uint16", "splits": {}}
    if tokenizer_file is not None:
        manifest["tokenizer"] = {"file": Path(tokenizer_file).name, "path": str(Path(tokenizer_file).resolve()),
                                 "sha256": file_sha256(tokenizer_file)}
    for split, tokens in splits.items():
        tokens = np.asarray(tokens)
        step = shard_tokens or max(tokens.size, 1)
        names = []
        for i, start in enumerate(range(0, max(tokens.size, 1), step)):
            names.append(write_shard(folder / f"{split}_{i:06d}.bin", tokens[start:start + step], vocab_size).name)
        manifest["splits"][split] = {"shards": names, "tokens": int(tokens.size)}
        if bytes_per_token:
            manifest["splits"][split]["bytes_per_token"] = bytes_per_token
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_shard(path: Path) -> np.ndarray:
    """The tokens of one shard, memory-mapped, after checking magic, version and size."""
    try:
        with open(path, "rb") as f:
            header = np.frombuffer(f.read(HEADER_BYTES), dtype="<i4")
        size = path.stat().st_size
    except OSError as e:
        raise TrainerError(f"cannot read shard {path}: {e.strerror}") from None
    if header.size != HEADER_INTS:
        raise TrainerError(f"shard {path} is shorter than its {HEADER_BYTES}-byte header")
    fmt = (int(header[0]), int(header[1]))
    if fmt not in FORMATS:
        raise TrainerError(f"shard {path} has a wrong header (magic {fmt[0]}, version {fmt[1]}; "
                           f"expected 20240520/1 or 20240801/7)")
    count, dtype = int(header[2]), FORMATS[fmt]
    if count < 0 or size != HEADER_BYTES + count * dtype.itemsize:
        raise TrainerError(f"shard {path}: header says {count} tokens but the file holds "
                           f"{(size - HEADER_BYTES) / dtype.itemsize:g}")
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(count,))


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
            raise TrainerError(f"no manifest.json in {self.folder} (make shards with jobs/encode.py)")
        try:
            self.manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise TrainerError(f"cannot read {path}: {e}") from None
        if not isinstance(self.manifest, dict):
            raise TrainerError(f"{path} must hold one JSON object")
        tok = self.manifest.get("tokenizer") if isinstance(self.manifest.get("tokenizer"), dict) else {}
        vocab = self.manifest.get("vocab_size", tok.get("vocab_size"))
        if not isinstance(vocab, int) or vocab < 1:
            raise TrainerError(f"{path} has no valid vocab_size")
        self.vocab_size = vocab
        self.bos_id = self.manifest.get("bos_id", tok.get("bos_id"))
        dtype_name = self.manifest.get("dtype")
        if dtype_name is not None and dtype_name not in DTYPE_NAMES:
            raise TrainerError(f"{path}: dtype must be uint16 or uint32, not {dtype_name!r}")
        self.dtype = DTYPE_NAMES.get(dtype_name)
        if self.dtype is not None and vocab > np.iinfo(self.dtype).max + 1:
            raise TrainerError(f"{path}: vocab_size {vocab} does not fit dtype {dtype_name}")
        # the sha256 goes into the run's config.json, so trainer.export ships this very file
        self.tokenizer_path, self.tokenizer_sha256 = self._tokenizer(tok)
        self.train = self._split("train")
        if self.train is None or self.train.tokens == 0:
            raise TrainerError(f"{path} lists no train tokens")
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
            raise TrainerError(f"tokenizer {found} does not match the manifest's sha256 {tok['sha256'][:12]}...")
        return found, digest

    def _inside(self, name: object) -> Path:
        """A shard named by the manifest, which must be a plain file name in this folder: a
        manifest is data from elsewhere, and "../x" must not make the trainer read it."""
        if (not isinstance(name, str) or not name or name in (".", "..")
                or name != os.path.basename(name) or "\\" in name or "\x00" in name):
            raise TrainerError(f"manifest.json names a shard outside {self.folder}: {name!r}")
        return self.folder / name

    def _split(self, name: str) -> Split | None:
        splits = self.manifest.get("splits", self.manifest)
        info = splits.get(name) if isinstance(splits, dict) else None
        if not isinstance(info, dict):
            info = {}
        names = info.get("shards") or info.get("files")
        paths = [self._inside(n) for n in names] if names else sorted(self.folder.glob(f"{name}_*.bin"))
        if not paths:
            return None
        shards = [open_shard(p) for p in paths]
        for p, s in zip(paths, shards):
            if self.dtype is not None and s.dtype != self.dtype:
                raise TrainerError(f"shard {p} holds {s.dtype.name} tokens but the manifest says {self.dtype.name}")
        tokens = sum(s.size for s in shards)
        if "tokens" in info and info["tokens"] != tokens:
            raise TrainerError(f"manifest.json says {info['tokens']} {name} tokens but the shards hold {tokens}")
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
            raise TrainerError(f"the {split.name} split has no shard of more than seq_len={seq_len} tokens")
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


def encode_texts(folder, splits: dict, tokenizer_file, shard_tokens: int | None = None) -> Path:
    """Encode each split's documents with a SentencePiece model (BOS before each, as
    jobs/encode.py does) into shards and a manifest with bytes per token. For tests and benches
    that start from a little text; a real corpus goes through jobs/encode.py."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_file))
    streams, sizes = {}, {}
    for split, docs in splits.items():
        ids = sp.encode(list(docs))
        streams[split] = np.fromiter((t for doc in ids for t in (sp.bos_id(), *doc)), dtype=np.int64)
        sizes[split] = sum(len(d.encode("utf-8")) for d in docs)
    folder = write_dataset(folder, streams, sp.vocab_size(), tokenizer_file=tokenizer_file, shard_tokens=shard_tokens)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["bos_id"] = sp.bos_id()
    for split, info in manifest["splits"].items():
        info["bytes"] = sizes[split]
        info["bytes_per_token"] = sizes[split] / max(info["tokens"], 1)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder
