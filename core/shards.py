"""Token shards in the llm.c layout, and the manifest that says where they came from.

A shard is a header of 256 little-endian int32 then the tokens:

    header[0] magic     20240520 (uint16 tokens) or 20240801 (uint32 tokens)
    header[1] version   1 or 7, paired with the magic as llm.c and modded-nanogpt expect
    header[2] count     number of tokens that follow

This module needs only NumPy: a trainer reads shards with it and nothing else of the project.
Every file is written under a temporary name and renamed into place, so a shard that exists is
a whole shard.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from core.errors import UsageError
from core.files import file_sha256


def file_in(folder: str | Path, name: object) -> Path:
    """``folder/name`` for a file name read from a manifest or tokenizer.json.

    Those files travel between machines and users: a name with a path in it ("../x") would
    make a reader open whatever it points at, so only plain names inside the folder pass.
    """
    if (not isinstance(name, str) or not name or name in (".", "..")
            or name != os.path.basename(name) or "\\" in name or "\x00" in name):
        raise UsageError(f"a file name in the metadata leaves its folder: {name!r}")
    return Path(folder) / name

HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
# (magic, version) -> token dtype; llm.c's own reader checks both numbers.
FORMATS = {
    (20240520, 1): np.dtype("<u2"),
    (20240801, 7): np.dtype("<u4"),
}
DTYPE_NAMES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
MANIFEST = "manifest.json"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (the llm.c default, half the disk and I/O), else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def format_of(dtype: np.dtype) -> tuple[int, int]:
    """(magic, version) for shards of this token dtype."""
    return next(k for k, v in FORMATS.items() if v == np.dtype(dtype))


def header_for(count: int, dtype: np.dtype) -> np.ndarray:
    magic, version = format_of(dtype)
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = magic, version, count
    return header


def read_header(path: str | os.PathLike) -> tuple[int, np.dtype]:
    """(token count, dtype) of a shard, checking magic, version and file size."""
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
        size = os.path.getsize(path)
    except OSError as e:
        raise UsageError(f"cannot read shard {path}: {e.strerror}") from None
    if len(raw) != HEADER_BYTES:
        raise UsageError(f"not a token shard (shorter than its header, {HEADER_BYTES} bytes): {path}")
    header = np.frombuffer(raw, dtype="<i4")
    fmt = (int(header[0]), int(header[1]))
    if fmt not in FORMATS:
        raise UsageError(f"not a token shard (wrong header: magic {fmt[0]}, version {fmt[1]}; "
                         f"expected 20240520/1 or 20240801/7): {path}")
    count, dtype = int(header[2]), FORMATS[fmt]
    if count < 0 or size != HEADER_BYTES + count * dtype.itemsize:
        raise UsageError(
            f"truncated token shard: header says {count} tokens but the file holds "
            f"{(size - HEADER_BYTES) / dtype.itemsize:g}: {path}"
        )
    return count, dtype


def read_shard(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """The tokens of one shard; memory-mapped by default, so a 200 MB shard costs no RAM."""
    count, dtype = read_header(path)
    if count == 0:
        return np.zeros(0, dtype=dtype)
    if mmap:
        return np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(count,))
    with open(path, "rb") as f:
        f.seek(HEADER_BYTES)
        return np.fromfile(f, dtype=dtype, count=count)


def shard_paths(folder: str | os.PathLike, split: str) -> list[Path]:
    """``split_000000.bin, split_000001.bin …`` in order."""
    return sorted(Path(folder).glob(f"{split}_[0-9][0-9][0-9][0-9][0-9][0-9].bin"))


class ShardFile:
    """One shard written as a stream: the count goes into the header when it is closed.

    Written under a unique temporary name (two attempts of a Spark task may run at once), then
    renamed, so readers never see a partial shard.
    """

    def __init__(self, path: str | os.PathLike, dtype: np.dtype):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        self._f = open(self._tmp, "wb")
        self._f.write(header_for(0, self.dtype).tobytes())

    def write(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens)
        if tokens.dtype != self.dtype:
            if tokens.size and int(tokens.max()) > np.iinfo(self.dtype).max:
                raise ValueError(f"token id {int(tokens.max())} does not fit {self.dtype}")
            tokens = tokens.astype(self.dtype)
        self._f.write(tokens.tobytes())
        self.count += tokens.size

    def close(self) -> Path:
        self._f.seek(0)
        self._f.write(header_for(self.count, self.dtype).tobytes())
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)


def write_shard(path: str | os.PathLike, tokens: np.ndarray, dtype: np.dtype) -> Path:
    shard = ShardFile(path, dtype)
    try:
        shard.write(tokens)
    except BaseException:
        shard.abort()
        raise
    return shard.close()


class ShardWriter:
    """A stream of tokens cut into ``split_000000.bin …`` of exactly ``shard_tokens`` each.

    Documents run across shard boundaries, as in llm.c's own data scripts: the shards are one
    token stream cut into files, and only the last one is shorter.
    """

    def __init__(self, folder: str | os.PathLike, split: str, shard_tokens: int, dtype: np.dtype):
        if shard_tokens < 1:
            raise UsageError(f"shard size must be at least 1 token, got {shard_tokens}")
        self.folder, self.split = Path(folder), split
        self.shard_tokens, self.dtype = shard_tokens, np.dtype(dtype)
        self.paths: list[Path] = []
        self.tokens = 0
        self._current: ShardFile | None = None

    def _open(self) -> ShardFile:
        name = f"{self.split}_{len(self.paths):06d}.bin"
        self.paths.append(self.folder / name)
        return ShardFile(self.paths[-1], self.dtype)

    def write(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens)
        while tokens.size:
            if self._current is None:
                self._current = self._open()
            room = self.shard_tokens - self._current.count
            self._current.write(tokens[:room])
            self.tokens += min(room, tokens.size)
            tokens = tokens[room:]
            if self._current.count == self.shard_tokens:
                self._current.close()
                self._current = None

    def close(self) -> list[Path]:
        """Finish the last shard; a split with no tokens still gets one (empty) shard."""
        if self._current is None and not self.paths:
            self._current = self._open()
        if self._current is not None:
            self._current.close()
            self._current = None
        return self.paths

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None


def iter_tokens(path: str | os.PathLike, chunk: int = 1 << 24) -> Iterator[np.ndarray]:
    """A shard's tokens in chunks, for copying shards of any size in bounded memory."""
    tokens = read_shard(path)
    for start in range(0, tokens.size, chunk):
        yield np.asarray(tokens[start : start + chunk])


def concatenate(
    files: Iterable[str | os.PathLike],
    folder: str | os.PathLike,
    split: str,
    shard_tokens: int,
    dtype: np.dtype,
) -> tuple[list[Path], int]:
    """Token files, in order, streamed into one split's shards: (shard paths, tokens written).

    Only one chunk is in memory at a time, so the driver of a Spark job can assemble a corpus
    of any size from its executors' part files.
    """
    writer = ShardWriter(folder, split, shard_tokens, dtype)
    try:
        for path in files:
            for chunk in iter_tokens(path):
                writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.close(), writer.tokens


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise UsageError(f"no {MANIFEST} in {folder} (not a complete shard folder)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_tokenizer(manifest: dict, tokenizer_dir: str | os.PathLike) -> Path:
    """The tokenizer model the shards were encoded with, or an error if the folder differs.

    Decoding shards with another vocabulary gives fluent-looking garbage, so the sha256 in the
    manifest is checked before any token is read.
    """
    model = file_in(tokenizer_dir, manifest["tokenizer"]["file"])
    if not model.is_file():
        raise UsageError(f"tokenizer model not found: {model}")
    sha = file_sha256(model)
    if sha != manifest["tokenizer"]["sha256"]:
        raise UsageError(
            f"tokenizer {model} (sha256 {sha[:12]}…) does not match the shards' manifest "
            f"(sha256 {manifest['tokenizer']['sha256'][:12]}…)"
        )
    return model
