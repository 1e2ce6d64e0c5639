"""Deduplication rules: exact, near-duplicate (MinHash LSH) and boilerplate lines. No Spark here.

Every rule is a plain function over strings or Arrow batches; ``pipeline/dedup/spark_plan.py`` only
wires them into a distributed plan. What a document is reduced to, and why:

* **Words.** Lower-cased (Unicode simple case mapping, as Arrow's ``utf8_lower``), punctuation
  and symbols removed (``don't`` → ``dont``), split on whitespace. The character classes are
  byte rules over UTF-8 (ASCII punctuation, Latin-1 symbols, the General and CJK punctuation
  blocks), so a batch is split without a Python loop over characters; :func:`words` is the
  same rule written per string, and the tests hold the two equal.
* **Exact duplicates** share a 128-bit hash of their word sequence: a copy that differs only in
  case, punctuation or spacing is still a copy.
* **Near duplicates** share enough MinHash band keys. A shingle is ``ngram`` consecutive words;
  a document shorter than that is one shingle. A shingle's 32-bit hash combines the 64-bit
  xxh3 of its words, so each distinct word of a batch is hashed once and shingles are combined
  with array arithmetic. Signatures follow ``datasketch.MinHash`` to the bit: its default
  ``affine32`` scheme since datasketch 2.0 (fmix32 of the input hash, then ``a * h + b`` mod
  2^32; the same seed gives the same permutations). :func:`shingle_hash32` is the hash
  function to hand datasketch for the identical result, and any other ``hashfunc`` (such as
  datasketch's default ``sha1_hash32``) runs through ``reference.signatures_with`` on the
  same kernel. The kernel is NumPy, or the same loop compiled by numba when it is installed.
* **Boilerplate** (CCNet): normalised lines and paragraphs are hashed; those that occur in at
  least ``boilerplate_min_docs`` documents are cut from every document.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from core.errors import UsageError
from pipeline.stage.schema import ID, REASON, TEXT, stage_batch

# Columns this stage adds to every document it writes.
DUP_CLUSTER = "dup_cluster"            # id of the document kept for the cluster
DUP_CLUSTER_SIZE = "dup_cluster_size"  # input documents the kept one stands for (1: unique)
# On rejected duplicates, the document this one duplicates: for an exact copy the copy kept
# by the exact step, for a near duplicate its most similar candidate (MinHash estimate), so
# the evidence for each removal can be checked pair by pair; the cluster's survivor is in
# dup_cluster.
DUPLICATE_OF = "duplicate_of"
BOILERPLATE_LINES = "boilerplate_lines"  # lines cut as boilerplate (alone or in a paragraph)
ADDED_FIELDS = [
    pa.field(DUP_CLUSTER, pa.string()),
    pa.field(DUP_CLUSTER_SIZE, pa.int64()),
    pa.field(DUPLICATE_OF, pa.string()),
    pa.field(BOILERPLATE_LINES, pa.int32()),
]

EXACT, NEAR, BOILERPLATE = "dup:exact", "dup:near", "dup:boilerplate"
KEEP_RULES = ("smallest", "longest")


@dataclass
class DedupConfig:
    # Jaccard similarity of word n-gram sets above which two documents are duplicates (the
    # SPEC's default; datatrove/FineWeb's 5-grams in 14x8 bands put the S-curve near 0.72).
    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5
    # LSH banding; None chooses the pair minimising the weighted false positive and false
    # negative probabilities at `threshold` (datasketch's rule, weights fp_weight/fn_weight).
    bands: Optional[int] = None
    rows: Optional[int] = None
    fp_weight: float = 0.5
    fn_weight: float = 0.5
    # Seed of the permutations; 1 is datasketch.MinHash's default.
    seed: int = 1
    # Compute the true Jaccard of each candidate pair (shingle sets) and drop false positives.
    verify: bool = False
    # With verify, buckets up to this size are checked pair by pair (k² / 2 pairs); larger
    # ones only against their smallest id, which bounds the work a huge bucket can cause.
    verify_max_bucket: int = 64
    # Which document of a cluster stays: the smallest id, or the longest text (ties: smallest id).
    keep: str = "smallest"
    # A normalised line or paragraph in at least this many kept documents is boilerplate.
    # Measured on the Gutenberg books (bench/dedup.py, "boilerplate K" rows), counted as the
    # stage counts (after exact and near dedup): K=3 cuts 97% of the header/footer words and
    # 0.29% of the books' own words (chapter headings, speaker names, passages that three
    # books quote); K=2 cuts 4.2% of the books (texts printed in two collections); K=5 keeps
    # the licence versions that only 3-4 books carry (95.7% cut) for 0.13% of the books.
    # Counting after dedup is what makes a low K safe: copies of a page are one document here.
    boilerplate_min_docs: int = 3
    # A document cut below this many words by boilerplate removal is rejected: less than one
    # shingle of its own text is left.
    boilerplate_min_words: int = 5
    # Bound on large-star/small-star rounds; each halves the distance to the root in practice,
    # so 40 rounds is far beyond what any real graph needs.
    max_cc_iterations: int = 40

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise UsageError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.num_perm < 2:
            raise UsageError(f"num_perm must be at least 2, got {self.num_perm}")
        if self.ngram < 1:
            raise UsageError(f"ngram must be at least 1, got {self.ngram}")
        if (self.bands is None) != (self.rows is None):
            raise UsageError("give both bands and rows, or neither")
        if self.bands is not None and (self.bands < 1 or self.rows < 1
                                       or self.bands * self.rows > self.num_perm):
            raise UsageError(f"bands x rows ({self.bands} x {self.rows}) must be positive and "
                             f"at most num_perm ({self.num_perm})")
        if self.keep not in KEEP_RULES:
            raise UsageError(f"keep must be one of {', '.join(KEEP_RULES)}, got {self.keep!r}")
        if self.boilerplate_min_docs < 2:
            raise UsageError("boilerplate_min_docs must be at least 2")

    def banding(self) -> tuple[int, int]:
        if self.bands is not None:
            return self.bands, self.rows
        return optimal_bands(self.threshold, self.num_perm, self.fp_weight, self.fn_weight)


# ---------------------------------------------------------------------------------------------
# Words: one normalisation, written twice (per string for reference, per batch for speed)

_SPACE, _DROP = 1, 2

# Inclusive code point ranges; everything else is part of a word.
_SPACE_RANGES = [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x2000, 0x200A), (0x2028, 0x2029),
                 (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]
_DROP_RANGES = [
    # ASCII controls and punctuation ("_" stays, as in regex \w).
    (0x00, 0x08), (0x0E, 0x1F), (0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x5E), (0x60, 0x60),
    (0x7B, 0x7F),
    # C1 controls, Latin-1 punctuation and symbols (¡ « » § © ° ·), × and ÷.
    (0x80, 0x9F), (0xA1, 0xBF), (0xD7, 0xD7), (0xF7, 0xF7),
    # Zero-width and direction marks, dashes, quotes, bullets, ellipsis (General Punctuation).
    (0x200B, 0x2027), (0x202A, 0x202E), (0x2030, 0x205E), (0x2060, 0x206F),
    # CJK punctuation (、。「」) and the byte order mark.
    (0x3001, 0x303F), (0xFEFF, 0xFEFF),
]


_TRANSLATE = {cp: (" " if cls == _SPACE else None)
              for ranges, cls in ((_SPACE_RANGES, _SPACE), (_DROP_RANGES, _DROP))
              for lo, hi in ranges for cp in range(lo, hi + 1)}


def _lower(text: str) -> str:
    # Arrow's simple case mapping, not str.lower(): the batch path must agree character for
    # character (they differ on a few dozen code points, e.g. "İ").
    return pc.utf8_lower(pa.array([text], pa.string()))[0].as_py()


def words(text: str) -> list[str]:
    """The normalised words of one text: the reference the batch path is tested against."""
    return [w for w in _lower(text).translate(_TRANSLATE).split(" ") if w]


def normalize(text: str) -> str:
    return " ".join(words(text))


def shingles(text: str, ngram: int) -> list[str]:
    """Word n-grams joined by a space; a document shorter than ``ngram`` words is one shingle."""
    ws = words(text)
    if len(ws) < ngram:
        return [" ".join(ws)]
    return [" ".join(ws[i:i + ngram]) for i in range(len(ws) - ngram + 1)]


# ---------------------------------------------------------------------------------------------
# Hashes

_MASK64 = (1 << 64) - 1
# MurmurHash3's finalizers (shift, multiply, shift, multiply, shift) for 64 and 32 bits.
_FMIX = {64: (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33),
         32: (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)}


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


# Multiplier of the word at each position of a shingle (odd, so no position is lost).
_POSITION_MULT = [_splitmix64(j) | 1 for j in range(64)]
# Multiplier of a line's word count in its hash, and the base of in-line word positions.
_LINE_LEN_MULT = _splitmix64(1000) | 1
_LINE_BASE = _splitmix64(1001) | 1


def _fmix(x: np.ndarray, width: int) -> np.ndarray:
    """Finalizer over an array (width 32 is datasketch's pre-mix of every input hash)."""
    s1, m1, s2, m2, s3 = (x.dtype.type(v) for v in _FMIX[width])
    x = x ^ (x >> s1)
    x *= m1
    x ^= x >> s2
    x *= m2
    return x ^ (x >> s3)


def _fmix64_int(x: int) -> int:
    return int(_fmix(np.array([x], np.uint64), 64)[0])


def _word_hash(word: bytes) -> int:
    return xxhash.xxh3_64_intdigest(word)


def _combine(word_hashes: Sequence[int]) -> int:
    acc = 0
    for j, h in enumerate(word_hashes):
        acc = (acc + h * _POSITION_MULT[j]) & _MASK64
    return _fmix64_int(acc)


def shingle_hash64(shingle: bytes | str) -> int:
    """Hash of one shingle (words joined by single spaces), as the batch path computes it."""
    if isinstance(shingle, str):
        shingle = shingle.encode("utf-8")
    return _combine([_word_hash(w) for w in shingle.split(b" ")] if shingle else [])


def shingle_hash32(shingle: bytes | str) -> int:
    """The ``hashfunc`` that makes ``datasketch.MinHash`` agree with :func:`signatures`."""
    return shingle_hash64(shingle) & 0xFFFFFFFF


def line_hash(line: str) -> int:
    """Hash of the normalised words of a line (or of a paragraph's lines); 0 for text without
    words, which is never boilerplate."""
    ws = [_word_hash(w.encode("utf-8")) for w in words(line)]
    if not ws:
        return 0
    acc = (len(ws) * _LINE_LEN_MULT) & _MASK64
    p = 1
    for h in ws:
        acc = (acc + h * p) & _MASK64
        p = (p * _LINE_BASE) & _MASK64
    return _fmix64_int(acc) or 1


# ---------------------------------------------------------------------------------------------
# The batch path: texts → words → shingle hashes, with array operations only


@dataclass
class Tokens:
    """The words of a batch of documents, as hashes.

    ``word_hash[doc_word[d]:doc_word[d + 1]]`` are document d's words in order; ``word_line``
    is each word's line number in its document (lines as ``text.split("\\n")`` counts them).
    """
    word_hash: np.ndarray  # uint64
    word_line: np.ndarray  # int64; empty unless tokenize(..., lines=True)
    doc_word: np.ndarray   # int64, len = docs + 1


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of a string array, offsets rebased to start at 0."""
    bufs = arr.buffers()
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(bufs[1], off_type)[arr.offset:arr.offset + len(arr) + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    data = data[offsets[0]:offsets[-1]]
    return offsets - offsets[0], data


def _mark_multibyte(data: np.ndarray) -> np.ndarray:
    """``data`` with the bytes of non-ASCII spaces set to b" " and of non-ASCII punctuation to
    b"!", so that from here on one byte table decides every class."""
    lead = np.flatnonzero(data >= 0xC2)
    lead = lead[data[lead] <= 0xEF]
    if len(lead) == 0:
        return data
    padded = np.concatenate([data, np.zeros(2, np.uint8)])
    b0 = data[lead].astype(np.int64)
    b1 = padded[lead + 1].astype(np.int64) & 0x3F
    b2 = padded[lead + 2].astype(np.int64) & 0x3F
    two = b0 < 0xE0
    cp = np.where(two, ((b0 & 0x1F) << 6) | b1, ((b0 & 0x0F) << 12) | (b1 << 6) | b2)
    mark = np.zeros(len(cp), np.uint8)
    for ranges, byte in ((_SPACE_RANGES, 0x20), (_DROP_RANGES, 0x21)):
        for lo, hi in ranges:
            if hi >= 0x80:
                mark[(cp >= lo) & (cp <= hi)] = byte
    hit = mark != 0
    if not hit.any():
        return data
    lead, mark, two = lead[hit], mark[hit], two[hit]
    data = data.copy()
    data[lead] = mark
    data[lead + 1] = mark
    data[lead[~two] + 2] = mark[~two]
    return data


def _ascii_table(keep_newlines: bool) -> tuple[bytes, bytes]:
    """``bytes.translate`` arguments: whitespace to b" " (b"\\n" kept for line numbers) and
    the ASCII punctuation to delete."""
    table = bytearray(range(256))
    for lo, hi in _SPACE_RANGES:
        for c in range(lo, min(hi, 0x7F) + 1):
            table[c] = 0x20
    if keep_newlines:
        table[0x0A] = 0x0A
    delete = bytes(c for lo, hi in _DROP_RANGES for c in range(lo, min(hi, 0x7F) + 1))
    return bytes(table), delete


_TABLES = {False: _ascii_table(False), True: _ascii_table(True)}


def tokenize(texts: pa.Array | Sequence[str], lines: bool = False) -> Tokens:
    """Normalised words of every text of a batch, hashed, without a per-character loop.

    The heavy steps run in C: Arrow lower-cases, ``bytes.translate`` deletes punctuation and
    maps whitespace, NumPy finds word boundaries, Arrow's hash table finds the distinct words
    (each hashed once). With ``lines`` each word's line number is kept too.
    """
    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(texts, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_large_string(arr.type) or pa.types.is_string(arr.type)):
        arr = arr.cast(pa.string())
    offsets, data = _string_buffers(pc.utf8_lower(pc.fill_null(arr, "")))
    raw = _mark_multibyte(data).tobytes()
    table, delete = _TABLES[lines]
    bounds = offsets.tolist()
    parts = [raw[bounds[i]:bounds[i + 1]].translate(table, delete) for i in range(len(arr))]
    # Documents joined by a space (and padded with one) so no word spans two of them and every
    # word has a boundary on both sides.
    joined = b" " + b" ".join(parts) + b" "
    doc_start = np.zeros(len(parts) + 1, np.int64)
    np.cumsum([len(p) + 1 for p in parts], out=doc_start[1:])
    a = np.frombuffer(joined, np.uint8)
    in_word = a > 0x20
    edges = np.flatnonzero(in_word[1:] != in_word[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]
    doc_word = np.searchsorted(starts, doc_start).astype(np.int64)

    n_words = len(starts)
    if n_words:
        word_off = np.zeros(n_words + 1, np.int64)
        np.cumsum(ends - starts, out=word_off[1:])
        word_bytes = joined.translate(None, b" \n")
        flat = pa.Array.from_buffers(pa.large_binary(), n_words,
                                     [None, pa.py_buffer(word_off), pa.py_buffer(word_bytes)])
        enc = pc.dictionary_encode(flat)
        vocab = np.fromiter(map(_word_hash, enc.dictionary.to_pylist()), np.uint64,
                            len(enc.dictionary))
        word_hash = vocab[enc.indices.to_numpy(zero_copy_only=False)]
    else:
        word_hash = np.empty(0, np.uint64)

    word_line = np.empty(0, np.int64)
    if lines:
        newlines = np.flatnonzero(a == 0x0A)
        word_doc = np.repeat(np.arange(len(parts)), np.diff(doc_word))
        word_line = (np.searchsorted(newlines, starts)
                     - np.searchsorted(newlines, doc_start[:-1])[word_doc]).astype(np.int64)
    return Tokens(word_hash, word_line, doc_word)


def shingle_hashes(tokens: Tokens, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit shingle hashes of every document, and each document's slice of them.

    Returns ``(hashes, offsets)``: document d's shingles are ``hashes[offsets[d]:offsets[d+1]]``.
    Every document has at least one shingle (an empty one hashes its empty word list).
    """
    if ngram > len(_POSITION_MULT):
        raise UsageError(f"ngram must be at most {len(_POSITION_MULT)}")
    wh, dw = tokens.word_hash, tokens.doc_word
    n_words = np.diff(dw)
    full = n_words >= ngram
    counts = np.where(full, n_words - ngram + 1, 1)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])

    n_windows = max(len(wh) - ngram + 1, 0)
    window = np.zeros(n_windows, np.uint64)
    for j in range(ngram):
        window += wh[j:j + n_windows] * np.uint64(_POSITION_MULT[j])
    # A window is a shingle unless it crosses from one document into the next.
    valid = np.ones(n_windows, bool)
    tail = dw[1:] - np.arange(1, ngram)[:, None]
    tail = tail[(tail >= 0) & (tail < n_windows)]
    valid[tail] = False
    acc = np.zeros(offsets[-1], np.uint64)
    acc[np.repeat(full, counts)] = window[valid]

    short = np.flatnonzero(~full)
    if len(short):
        part = np.zeros(len(short), np.uint64)
        base, have = dw[short], n_words[short]
        for j in range(ngram - 1):
            take = have > j
            part[take] += wh[base[take] + j] * np.uint64(_POSITION_MULT[j])
        acc[offsets[short]] = part
    return _fmix(acc, 64), offsets


def exact_hashes(tokens: Tokens) -> list[bytes]:
    """128-bit hash of each document's word sequence: equal for texts equal once normalised."""
    wh = tokens.word_hash
    dw = tokens.doc_word
    return [xxhash.xxh3_128_digest(wh[dw[d]:dw[d + 1]].tobytes()) for d in range(len(dw) - 1)]


@dataclass
class Units:
    """The lines and paragraphs of a batch that have words, hashed as :func:`line_hash` hashes
    their text. A paragraph is a run of lines with words between lines without any; it is
    listed when it spans two or more lines (a one-line paragraph is its line). Line numbers
    count as ``text.split("\\n")`` does, so units can be cut from the original text."""
    doc: np.ndarray    # int64, index of the document in the batch
    first: np.ndarray  # int64, first line of the unit
    last: np.ndarray   # int64, last line of the unit
    words: np.ndarray  # int64, words in the unit
    hash: np.ndarray   # uint64, never 0
    is_line: np.ndarray  # bool, a line (else a paragraph)


def _group_hashes(wh: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`line_hash` of consecutive groups of words starting at ``starts``."""
    n = len(wh)
    sizes = np.diff(np.append(starts, n))
    pos = np.arange(n) - np.repeat(starts, sizes)
    powers = np.cumprod(np.full(max(int(sizes.max()), 1), _LINE_BASE, np.uint64))
    powers = np.concatenate([np.ones(1, np.uint64), powers[:-1]])
    acc = np.add.reduceat(wh * powers[pos], starts)
    acc += sizes.astype(np.uint64) * np.uint64(_LINE_LEN_MULT)
    h = _fmix(acc, 64)
    h[h == 0] = 1
    return h, sizes.astype(np.int64)


def text_units(tokens: Tokens) -> Units:
    """Every line and multi-line paragraph of the batch (``tokenize(..., lines=True)``).

    Paragraphs matter for boilerplate: a licence re-wrapped at another width shares no line
    with the usual copy, but its paragraphs have the same words.
    """
    wh, wl, dw = tokens.word_hash, tokens.word_line, tokens.doc_word
    n = len(wh)
    parts = []
    if n:
        doc_first = np.zeros(n, bool)
        doc_first[dw[:-1][dw[:-1] < n]] = True
        gap = np.diff(wl)
        for is_line, new in ((True, np.concatenate([[True], gap != 0])),
                             (False, np.concatenate([[True], gap > 1]))):
            starts = np.flatnonzero(new | doc_first)
            h, sizes = _group_hashes(wh, starts)
            first, last = wl[starts], wl[starts + sizes - 1]
            keep = slice(None) if is_line else last > first
            doc = np.searchsorted(dw, starts, side="right") - 1
            parts.append((doc[keep], first[keep], last[keep], sizes[keep], h[keep],
                          np.full(len(h[keep]), is_line)))
    if not parts:
        e = np.empty(0, np.int64)
        return Units(e, e, e, e, np.empty(0, np.uint64), np.empty(0, bool))
    cols = [np.concatenate(c) for c in zip(*parts)]
    order = np.lexsort((~cols[5], cols[1], cols[0]))  # by document, then position
    return Units(*(c[order] for c in cols))


# ---------------------------------------------------------------------------------------------
# MinHash


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` of datasketch's affine32 scheme: the same RandomState draws, in the same order."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


# Shingles per block of the NumPy kernel: large enough that call overhead vanishes.
_BLOCK = 8192


def _minhash_numpy(h: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray,
                   sig_t: np.ndarray) -> None:
    """Shingles of many documents go through one block at a time; ``np.minimum.reduceat``
    splits the block's minima by document."""
    a, b = a[:, None], b[:, None]
    total = len(h)
    buf = np.empty((len(a), _BLOCK), np.uint32)
    for s in range(0, total, _BLOCK):
        e = min(s + _BLOCK, total)
        blk = buf[:, :e - s]
        np.multiply(a, h[None, s:e], out=blk)
        np.add(blk, b, out=blk)
        d0 = int(np.searchsorted(offsets, s, side="right")) - 1
        d1 = int(np.searchsorted(offsets, e, side="left"))
        seg = np.maximum(offsets[d0:d1], s) - s
        mins = np.minimum.reduceat(blk, seg, axis=1)
        np.minimum(sig_t[:, d0:d1], mins, out=sig_t[:, d0:d1])


def _compiled_kernel():
    """The same loop compiled by numba when it is installed: the multiply, add and min of
    each shingle stay in registers instead of three passes over memory (4-5x faster).
    ``DEDUP_KERNEL=numpy`` turns it off."""
    if os.environ.get("DEDUP_KERNEL", "").lower() == "numpy":
        return None
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(h, offsets, a, b, sig_t):  # pragma: no cover - compiled
        n_perm = a.shape[0]
        out = np.empty(n_perm, np.uint32)
        for d in range(offsets.shape[0] - 1):
            out[:] = sig_t[:, d]
            for i in range(offsets[d], offsets[d + 1]):
                x = h[i]
                for p in range(n_perm):
                    out[p] = min(out[p], np.uint32(a[p] * x + b[p]))
            sig_t[:, d] = out

    return kernel


_KERNEL: list = []


def minhash(hashes32: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Signatures ``(docs, num_perm)`` uint32 from 32-bit shingle hashes grouped by ``offsets``:
    for each permutation, the min over a document's shingles of ``a * fmix32(h) + b mod 2^32``,
    datasketch's affine32 update."""
    a, b = permutations(num_perm, seed)
    sig_t = np.full((num_perm, len(offsets) - 1), 0xFFFFFFFF, np.uint32)
    h = _fmix(np.asarray(hashes32, np.uint32), 32)
    if not _KERNEL:
        _KERNEL.append(_compiled_kernel())
    if _KERNEL[0] is not None:
        _KERNEL[0](h, np.asarray(offsets, np.int64), a, b, sig_t)
    else:
        _minhash_numpy(h, offsets, a, b, sig_t)
    return np.ascontiguousarray(sig_t.T)


def signatures(texts: pa.Array | Sequence[str], num_perm: int = 128, ngram: int = 5,
               seed: int = 1) -> np.ndarray:
    """MinHash signatures of a batch: row d equals ``datasketch.MinHash(num_perm, seed,
    hashfunc=shingle_hash32)`` updated with ``shingles(texts[d], ngram)``."""
    hashes, offsets = shingle_hashes(tokenize(texts), ngram)
    return minhash((hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32), offsets, num_perm, seed)


# ---------------------------------------------------------------------------------------------
# LSH banding


def _band_probabilities(threshold: float, num_perm: int) -> tuple[np.ndarray, ...]:
    """False positive and negative areas of every (b, r) with b * r <= num_perm.

    Both integrands are polynomials of degree b * r <= num_perm in s, so Gauss-Legendre with
    num_perm / 2 + 1 nodes integrates them exactly (datasketch uses adaptive quadrature).
    """
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    b = np.array([p[0] for p in pairs], float)[:, None]
    r = np.array([p[1] for p in pairs], float)[:, None]
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    s_fp = (x + 1) * threshold / 2
    s_fn = threshold + (x + 1) * (1 - threshold) / 2
    fp = ((1 - (1 - s_fp ** r) ** b) @ w) * threshold / 2
    fn = (((1 - s_fn ** r) ** b) @ w) * (1 - threshold) / 2
    return b[:, 0].astype(int), r[:, 0].astype(int), fp, fn


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5,
                  fn_weight: float = 0.5) -> tuple[int, int]:
    """``(bands, rows)`` minimising ``fp_weight * FP + fn_weight * FN`` (datasketch's rule)."""
    b, r, fp, fn = _band_probabilities(threshold, num_perm)
    # The first minimum in datasketch's loop order (b, then r, ascending) wins ties.
    i = int(np.argmin(fp * fp_weight + fn * fn_weight))
    return int(b[i]), int(r[i])


def band_keys(sig: np.ndarray, bands: int, rows: int) -> pa.Array:
    """Band keys of every document, ``bands`` per document in band order: the bytes of the
    band's ``rows`` signature values. Two documents are candidates when a band's bytes match."""
    n_docs = sig.shape[0]
    width = rows * 4
    body = np.ascontiguousarray(sig[:, :bands * rows]).astype("<u4", copy=False)
    offsets = np.arange(0, n_docs * bands * width + 1, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n_docs * bands,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(body.tobytes())])


# ---------------------------------------------------------------------------------------------
# Batch functions run by the Spark plan (Arrow in, Arrow out)

FEATURE_SCHEMA = pa.schema([
    pa.field(ID, pa.string()),
    pa.field("length", pa.int64()),                # characters, for keep="longest"
    pa.field("exact", pa.binary()),                # 128-bit hash of the word sequence
    pa.field("bands", pa.list_(pa.binary())),      # LSH band keys, in band order
    pa.field("signature", pa.list_(pa.int32())),   # the MinHash values (bits as int32)
    pa.field("shingles", pa.list_(pa.int64())),    # distinct shingle hashes (verify only)
    pa.field("lines", pa.list_(pa.int64())),       # distinct line and paragraph hashes
])

# Documents are processed in slices of about this many bytes of text, which bounds the
# kernel's working memory (about 20 bytes per byte of text) whatever the batch size.
_SLICE_BYTES = 8 << 20


def _slices(batch: pa.RecordBatch) -> Iterable[pa.RecordBatch]:
    lengths = pc.fill_null(pc.binary_length(batch.column(TEXT)), 0).to_numpy(
        zero_copy_only=False)
    start, acc = 0, 0
    for i, n in enumerate(lengths):
        acc += int(n)
        if acc >= _SLICE_BYTES:
            yield batch.slice(start, i + 1 - start)
            start, acc = i + 1, 0
    if start < batch.num_rows:
        yield batch.slice(start)


def _list_column(values: np.ndarray, counts: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(offsets, pa.array(values.view(np.int64)))


def _distinct_per_doc(doc: np.ndarray, values: np.ndarray, n_docs: int):
    """Sorted distinct ``values`` of each document, flat, with the count per document."""
    pairs = np.unique(np.stack([doc.astype(np.uint64), values]), axis=1)
    return pairs[1], np.bincount(pairs[0].astype(np.int64), minlength=n_docs)


def features_batch(batches: Iterable[pa.RecordBatch], *, cfg: DedupConfig, bands: int,
                   rows: int) -> Iterable[pa.RecordBatch]:
    """What the plan needs of each document (``FEATURE_SCHEMA``), its text read once."""
    for batch in batches:
        for part in _slices(batch):
            n = part.num_rows
            texts = part.column(TEXT)
            tokens = tokenize(texts, lines=True)
            hashes, offsets = shingle_hashes(tokens, cfg.ngram)
            sig = minhash((hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32), offsets,
                          cfg.num_perm, cfg.seed)
            keys = pa.ListArray.from_arrays(np.arange(0, n * bands + 1, bands, dtype=np.int32),
                                            band_keys(sig, bands, rows))
            if cfg.verify:
                doc = np.repeat(np.arange(n), np.diff(offsets))
                shingle_col = _list_column(*_distinct_per_doc(doc, hashes, n))
            else:
                shingle_col = pa.nulls(n, pa.list_(pa.int64()))
            units = text_units(tokens)
            lines_col = _list_column(*_distinct_per_doc(units.doc, units.hash, n))
            length = pc.fill_null(pc.utf8_length(texts), 0).cast(pa.int64())
            signature = pa.ListArray.from_arrays(
                np.arange(0, n * cfg.num_perm + 1, cfg.num_perm, dtype=np.int32),
                pa.array(sig.reshape(-1).view(np.int32)))
            yield pa.RecordBatch.from_arrays(
                [part.column(ID), length, pa.array(exact_hashes(tokens), pa.binary()), keys,
                 signature, shingle_col, lines_col], schema=FEATURE_SCHEMA)


def strip_lines(text: str, cut: set[int]) -> str:
    """``text`` without the lines whose index is in ``cut``. Blank lines that a cut leaves
    next to each other (or at either end) go too, so a removed header leaves no empty page."""
    if not cut:
        return text
    out: list[str] = []
    cut_since_text = False
    for i, line in enumerate(text.split("\n")):
        if i in cut:
            cut_since_text = True
            continue
        blank = not line.strip()
        if blank and cut_since_text and (not out or not out[-1].strip()):
            continue
        if not blank:
            cut_since_text = False
        out.append(line)
    while cut_since_text and out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def strip_boilerplate_batch(batches: Iterable[pa.RecordBatch], *,
                            cfg: DedupConfig) -> Iterable[pa.RecordBatch]:
    """Cut boilerplate lines and paragraphs from the documents still kept.

    Column ``boilerplate`` holds, per document, the hashes of its units to cut (null: none).
    A document left with fewer than ``boilerplate_min_words`` words is rejected as
    ``dup:boilerplate`` and written as it came, so the rejected folder shows what was removed.
    Output: the input columns less ``boilerplate``, plus ``boilerplate_lines``.
    """
    for batch in batches:
        texts = batch.column(TEXT).to_pylist()
        cut_hashes = batch.column("boilerplate").to_pylist()
        reasons = batch.column(REASON).to_pylist()
        todo = [i for i, c in enumerate(cut_hashes) if c and reasons[i] is None]
        n_cut = np.zeros(batch.num_rows, np.int32)
        if todo:
            tokens = tokenize([texts[i] for i in todo], lines=True)
            units = text_units(tokens)
            h = units.hash.view(np.int64)
            total_words = np.diff(tokens.doc_word)
            bounds = np.searchsorted(units.doc, np.arange(len(todo) + 1))
            for k, i in enumerate(todo):
                sel = np.arange(bounds[k], bounds[k + 1])
                hit = sel[np.isin(h[sel], np.array(cut_hashes[i], np.int64))]
                cut = set()
                for a, b in zip(units.first[hit].tolist(), units.last[hit].tolist()):
                    cut.update(range(a, b + 1))
                lines = sel[units.is_line[sel]]
                cut_words = units.words[lines[np.isin(units.first[lines], list(cut))]].sum()
                n_cut[i] = len(cut)
                if total_words[k] - cut_words < cfg.boilerplate_min_words:
                    reasons[i] = BOILERPLATE
                else:
                    texts[i] = strip_lines(texts[i], cut)
        yield stage_batch(
            batch, [(pa.field(BOILERPLATE_LINES, pa.int32()), pa.array(n_cut, pa.int32()))],
            reasons, replace={TEXT: pa.array(texts, batch.schema.field(TEXT).type)},
            drop=("boilerplate",))
