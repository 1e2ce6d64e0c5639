"""Documents to token ids: the plain functions the Spark encode job runs in its executors.

A document is cut into paragraph-sized pieces, the pieces go through SentencePiece's batched
C++ encoder, and each document's ids are the concatenation of its pieces' ids after one BOS.
The cut points are the same in training (``tokenizer.train``) and encoding, so the vocabulary is
learned on exactly the strings it later encodes, and the pieces concatenate back to the text,
so ``decode(ids) == text`` byte for byte.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from core.shards import ShardFile

# Pieces of at most this many characters: at most 4 UTF-8 bytes each, so every piece fits
# SentencePiece's max_sentence_length (set to MAX_PIECE_BYTES when training) and none is
# silently skipped. SentencePiece's encoder slows down on long strings; paragraphs are fast.
MAX_PIECE_CHARS = 2048
MAX_PIECE_BYTES = 4 * MAX_PIECE_CHARS

# SentencePiece writes a space as U+2581 inside its pieces, so a literal U+2581 in the text
# would decode as a space. We encode it as its three UTF-8 byte tokens instead, which decode to
# the character itself; it is rare enough (box drawing) that the slow path never matters.
SPACE_MARK = "\u2581"

SPLITS = ("train", "val")


def split_pieces(text: str, max_chars: int = MAX_PIECE_CHARS) -> list[str]:
    """``text`` cut into pieces of at most ``max_chars`` that concatenate back to ``text``.

    A cut goes after a blank line if there is one in the last three quarters of the window,
    else after a newline, else before a space (SentencePiece starts a word with its space),
    else anywhere: paragraphs stay whole where they can, and the newlines stay inside the
    pieces so the vocabulary learns them.
    """
    if len(text) <= max_chars:
        return [text]
    pieces = []
    start, n = 0, len(text)
    while n - start > max_chars:
        end = start + max_chars
        low = start + max(1, max_chars // 4)
        for sep in ("\n\n", "\n"):
            cut = text.rfind(sep, low, end)
            if cut >= 0:
                cut += len(sep)
                # keep a run of newlines together: "\n\n\n" is one token, not "\n\n" + "\n"
                while cut < end and text[cut] == "\n":
                    cut += 1
                break
        else:
            cut = text.rfind(" ", low, end)
            while cut > low and text[cut - 1] == " ":
                cut -= 1
            if cut < 0:
                cut = end
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def doc_unit(doc_id: str, seed: int, purpose: bytes) -> float:
    """A uniform number in [0, 1) fixed by the document id, the seed and the purpose.

    ``purpose`` (``b"sample"``, ``b"split"``) salts the hash so the tokenizer's training
    sample and the validation split are independent draws rather than the same documents.
    """
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8, person=purpose)
    return int.from_bytes(digest.digest(), "little") / 2.0**64


def is_val(doc_id: str, seed: int, val_fraction: float) -> bool:
    """Validation or training, decided by the id alone: the same on every run and partitioning."""
    return doc_unit(doc_id, seed, b"split") < val_fraction


def load_processor(model: str | Path | bytes):
    import sentencepiece as spm

    if isinstance(model, bytes):
        return spm.SentencePieceProcessor(model_proto=model)
    return spm.SentencePieceProcessor(model_file=str(model))


_PROCESSORS: dict[str, object] = {}


def cached_processor(model: bytes, sha256: str):
    """One processor per model per Python process: Spark reuses its Python workers across
    tasks, so a model is parsed once per worker, not once per partition."""
    if sha256 not in _PROCESSORS:
        _PROCESSORS[sha256] = load_processor(model)
    return _PROCESSORS[sha256]


def _mark_ids(sp) -> list[int] | None:
    ids = [sp.piece_to_id(f"<0x{b:02X}>") for b in SPACE_MARK.encode()]
    return None if sp.unk_id() in ids else ids


def _encode_with_marks(sp, piece: str, mark_ids: list[int]) -> list[int]:
    out: list[int] = []
    for i, part in enumerate(piece.split(SPACE_MARK)):
        if i:
            out.extend(mark_ids)
        if part:
            out.extend(sp.encode(part))
    return out


def encode_documents(
    sp, texts: list[str], num_threads: int = 1, dtype: np.dtype = np.dtype("<u4")
) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, counts): every document as BOS + its ids, all in one array; counts per document.

    One batched call for all pieces keeps SentencePiece's threads busy and the Python work to
    a split and a flatten per document.
    """
    pieces: list[str] = []
    per_doc: list[int] = []
    for text in texts:
        parts = split_pieces(text) if len(text) > MAX_PIECE_CHARS else [text]
        pieces.extend(parts)
        per_doc.append(len(parts))
    ids = sp.encode(pieces, num_threads=num_threads)
    if any(SPACE_MARK in t for t in texts):
        mark_ids = _mark_ids(sp)
        if mark_ids is not None:
            for k, piece in enumerate(pieces):
                if SPACE_MARK in piece:
                    ids[k] = _encode_with_marks(sp, piece, mark_ids)

    bos = [sp.bos_id()]
    stream: list[list[int]] = []
    k = 0
    for n in per_doc:
        stream.append(bos)
        stream.extend(ids[k : k + n])
        k += n
    per_doc_arr = np.asarray(per_doc, dtype=np.int64)
    piece_lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    starts = np.cumsum(per_doc_arr) - per_doc_arr
    counts = np.add.reduceat(piece_lengths, starts) + 1 if len(texts) else per_doc_arr
    tokens = np.fromiter(itertools.chain.from_iterable(stream), dtype=dtype, count=int(counts.sum()))
    return tokens, counts


def text_column(batch) -> tuple[object, np.ndarray]:
    """A batch's ``text`` with nulls as empty strings, and its UTF-8 sizes (no copy when no nulls)."""
    import pyarrow.compute as pc

    text = batch.column("text")
    if text.null_count:
        text = pc.fill_null(text, "")
    return text, pc.binary_length(text).to_numpy(zero_copy_only=False).astype(np.int64)


def _rebatch(batches: Iterable, batch_bytes: int) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
    """(ids, texts, utf-8 sizes) in groups of about ``batch_bytes`` of text, in input order."""
    ids: list[str] = []
    texts: list[str] = []
    sizes: list[np.ndarray] = []
    held = 0
    for batch in batches:
        text_col, size = text_column(batch)
        ids.extend(batch.column("id").to_pylist())
        texts.extend(text_col.to_pylist())
        sizes.append(size)
        held += int(size.sum())
        if held >= batch_bytes:
            yield ids, texts, np.concatenate(sizes)
            ids, texts, sizes, held = [], [], [], 0
    if ids:
        yield ids, texts, np.concatenate(sizes)


def part_file(parts_dir: str | Path, split: str, part: int) -> Path:
    """Where partition ``part`` of a Spark job leaves its tokens of ``split``."""
    return Path(parts_dir) / f"{split}-{part:06d}.bin"


def encode_partition(
    batches: Iterable,
    sp,
    out_dir: str | Path,
    part: int,
    *,
    seed: int,
    val_fraction: float,
    dtype: np.dtype,
    num_threads: int = 1,
    batch_bytes: int = 8 << 20,
) -> dict[str, dict[str, int]]:
    """Encode one partition's documents, in the order given, into one token file per split.

    ``batches`` are Arrow record batches with ``id`` and ``text``. The files (``part_file``)
    are in the shard layout, renamed into place when complete;
    concatenated in partition order they give the final shards. Returns docs, tokens and
    bytes per split.
    """
    out_dir = Path(out_dir)
    files = {s: ShardFile(part_file(out_dir, s, part), dtype) for s in SPLITS}
    stats = {s: {"docs": 0, "tokens": 0, "bytes": 0} for s in SPLITS}
    try:
        for ids, texts, sizes in _rebatch(batches, batch_bytes):
            tokens, counts = encode_documents(sp, texts, num_threads, dtype)
            val = np.fromiter((is_val(i, seed, val_fraction) for i in ids), dtype=bool, count=len(ids))
            for split, mask in (("train", ~val), ("val", val)):
                if not mask.any():
                    continue
                chunk = tokens if mask.all() else tokens[np.repeat(mask, counts)]
                files[split].write(chunk)
                stats[split]["docs"] += int(mask.sum())
                stats[split]["tokens"] += int(chunk.size)
                stats[split]["bytes"] += int(sizes[mask].sum())
    except BaseException:
        for f in files.values():
            f.abort()
        raise
    for f in files.values():
        f.close()
    return stats
