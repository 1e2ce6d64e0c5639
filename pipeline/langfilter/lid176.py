"""fastText's ``lid.176.ftz`` language identifier, read and run without fastText.

fastText reads about 5 MB of text per second per core, and most of that is not arithmetic: a
``std::string`` and a hash-map lookup per character n-gram, eight product-quantizer centroid
lookups per row it adds. Here the file is parsed with NumPy and the input matrix dequantized
once into dense float32 rows; a bit per n-gram bucket (256 KB, it stays in cache) says which of
the 2M buckets survived pruning; the n-gram rows of a token seen before in the batch are reused;
and the whole batch (sample, tokens, n-grams, average, hierarchical softmax) is one
numba-compiled call over the batch's UTF-8 bytes, with no Python work per document.

``Lid176.predict`` gives fastText's own answer for each text read as one line: the same label
and the same float32 probability, as the tests check against the ``fasttext`` package. That
takes the same tokenizer, the same 32-bit FNV-1a hash with fastText's sign-extended bytes, the
same order of float32 additions and the same pruned depth-first search of the Huffman tree.
``predict_sampled`` first cuts each text down to the language filter's sample
(``pipeline.langfilter.langid.sample_text``) in the same compiled pass.
"""
from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Sequence
from typing import NamedTuple

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import UsageError

_MAGIC = 793712314
_VERSIONS = (11, 12)  # 11: models saved before char n-grams existed for supervised models
_LOSS_HS, _MODEL_SUP = 1, 3  # fastText's loss_name::hs and model_name::sup
_KSUB = 256  # centroids per sub-quantizer: a code is one byte
_EOS = b"</s>"
_LABEL = b"__label__"

_FNV_OFFSET = np.uint64(2166136261)
_FNV_PRIME = np.uint64(16777619)
_U32 = np.uint64(0xFFFFFFFF)
_SIGNED_BYTE = np.uint64(0xFFFFFF00)
_LOG_EPS = 1e-5  # fastText's std_log(x) = log(x + 1e-5)


class Arrays(NamedTuple):
    """What the compiled code reads; one argument, so the kernels' signatures stay short."""

    words: np.ndarray  # uint8: the vocabulary's words, back to back
    word_offsets: np.ndarray  # int64 (nwords + 1,)
    word_slots: np.ndarray  # int32 open-addressing table of word ids, -1 = empty
    ngram_rows: np.ndarray  # int32 (bucket,): input row of each n-gram bucket, -1 = pruned
    ngram_bits: np.ndarray  # uint64 (bucket / 64,): bit b set when bucket b has a row
    rows: np.ndarray  # float32 (nwords + kept n-grams, dim): the dequantized input matrix
    out: np.ndarray  # float32 (nlabels - 1 used, dim): one row per inner tree node
    out_scale: np.ndarray  # float32 (nlabels,): per-row norm of a quantized output, else 1
    left: np.ndarray  # int32 (2 * nlabels - 1,): Huffman tree children, -1 at leaves
    right: np.ndarray
    word_rows_offsets: np.ndarray  # int64 (nwords + 1,)
    word_rows: np.ndarray  # int32: each word's own row, then its n-grams' (CSR)
    eos: int  # word id of "</s>", the token every line ends with
    minn: int
    maxn: int
    bucket: int


class Lid176:
    """A supervised, hierarchical-softmax fastText model (``lid.176.ftz``), loaded for
    ``predict``. ``labels[i]`` is label ``i`` without ``__label__``."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError as e:
            raise UsageError(f"cannot read fastText model {path}: {e.strerror}") from None
        self.labels, self.arrays = _parse(blob, self.path)

    def predict(self, texts: pa.Array | Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Label ids (int32) and probabilities (float32, may exceed 1 by 1e-5 as fastText's
        do) of each text read by fastText as one line: the text up to its first newline."""
        data, offsets = utf8_buffers(texts)
        labels = np.empty(len(offsets) - 1, np.int32)
        probs = np.empty(len(offsets) - 1, np.float32)
        _predict_lines(self.arrays, data, offsets, labels, probs)
        return labels, probs

    def predict_sampled(self, texts: pa.Array | Sequence[str | None], windows: int,
                        window_chars: int, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` of each text's sample, ``sample(texts, ...)``, in one compiled pass."""
        data, offsets = utf8_buffers(texts)
        labels = np.empty(len(offsets) - 1, np.int32)
        probs = np.empty(len(offsets) - 1, np.float32)
        _predict_sampled(self.arrays, data, offsets, classes, windows, window_chars, labels,
                         probs)
        return labels, probs


# --- the file -------------------------------------------------------------------------------

class _Reader:
    """Little-endian reads from the model's bytes; running out is a corrupt file, said once."""

    def __init__(self, blob: bytes, path: str):
        self.blob, self.pos, self.path = blob, 0, path

    def fail(self, what: str):
        raise UsageError(f"{self.path} is not a usable fastText model: {what} "
                         f"(at byte {self.pos} of {len(self.blob)})")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.blob):
            self.fail(f"truncated in {what}")
        view = memoryview(self.blob)[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def array(self, dtype, count: int, what: str) -> np.ndarray:
        dtype = np.dtype(dtype)
        return np.frombuffer(self.take(count * dtype.itemsize, what), dtype.newbyteorder("<"))


def _parse(blob: bytes, path: str) -> tuple[list[str], Arrays]:
    r = _Reader(blob, path)
    magic, version = r.unpack("ii", "header")
    if magic != _MAGIC:
        r.fail("wrong magic number")
    if version not in _VERSIONS:
        r.fail(f"version {version}, expected one of {_VERSIONS}")
    (dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn,
     _lr_update, _t) = r.unpack("12id", "arguments")
    if model != _MODEL_SUP or loss != _LOSS_HS:
        r.fail(f"model {model}, loss {loss}: only supervised hierarchical-softmax models "
               f"(lid.176) are supported")
    if word_ngrams != 1:
        r.fail(f"wordNgrams {word_ngrams}: only word unigrams (lid.176's 1) are supported")
    if version == 11:
        maxn = 0  # fastText's rule: supervised models of version 11 have no char n-grams
    if not (0 < dim <= 4096 and bucket >= 0 and 0 <= minn and maxn <= 64):
        r.fail(f"implausible arguments dim={dim} bucket={bucket} minn={minn} maxn={maxn}")

    size, nwords, nlabels, _ntokens, prune_size = r.unpack("iiiqq", "dictionary header")
    if not (0 <= nwords and 0 < nlabels and size == nwords + nlabels):
        r.fail(f"dictionary of {size} entries, {nwords} words, {nlabels} labels")
    words, counts, types = [], [], []
    for _ in range(size):
        end = blob.find(b"\0", r.pos)
        if end < 0:
            r.fail("truncated in the dictionary")
        word = bytes(r.take(end - r.pos, "the dictionary"))
        r.pos += 1
        count, kind = r.unpack("qb", "the dictionary")
        words.append(word)
        counts.append(count)
        types.append(kind)
    # fastText sorts words before labels; the label ids and the tree rely on it.
    if types != [0] * nwords + [1] * nlabels:
        r.fail("dictionary entries are not words followed by labels")
    if prune_size > 0:
        pairs = r.array(np.int32, 2 * prune_size, "the pruned n-gram index").reshape(-1, 2)
    quant_input, = r.unpack("?", "the input matrix")
    if not quant_input:
        rows = _dense(r, "the input matrix")
    else:
        codes, norms = _quantized(r, "the input matrix")
        # addRowToVector adds norm * centroid, a float product per element: the same here
        rows = codes * norms[:, None]
    n_ngram_rows = len(rows) - nwords
    if rows.shape[1] != dim or n_ngram_rows < 0:
        r.fail(f"input matrix of shape {rows.shape} for {nwords} words of dim {dim}")
    if prune_size < 0:  # not pruned: every bucket has its row after the words
        if n_ngram_rows != bucket:
            r.fail(f"input matrix has {n_ngram_rows} n-gram rows for {bucket} buckets")
        ngram_rows = np.arange(nwords, nwords + bucket, dtype=np.int32)
    else:  # pruned: only the buckets listed keep a row; prune_size 0 keeps none
        ngram_rows = np.full(bucket, -1, np.int32)
        if prune_size > 0:
            bad = ((pairs[:, 0] < 0) | (pairs[:, 0] >= bucket) | (pairs[:, 1] < 0)
                   | (pairs[:, 1] >= n_ngram_rows))
            if bad.any():
                r.fail("pruned n-gram index points outside the input matrix")
            ngram_rows[pairs[:, 0]] = nwords + pairs[:, 1]
    quant_output, = r.unpack("?", "the output matrix")
    if quant_input and quant_output:
        out, out_scale = _quantized(r, "the output matrix")
    else:
        out = _dense(r, "the output matrix")
        out_scale = np.ones(len(out), np.float32)
    if out.shape != (nlabels, dim):
        r.fail(f"output matrix of shape {out.shape}, expected ({nlabels}, {dim})")
    if r.pos != len(blob):
        r.fail(f"{len(blob) - r.pos} bytes after the output matrix")
    try:
        eos = words.index(_EOS)
    except ValueError:
        r.fail("no </s> word in the dictionary")
    left, right = _huffman_tree(counts[nwords:])
    word_bytes = np.frombuffer(b"".join(words[:nwords]) or b"\0", np.uint8)
    word_offsets = np.cumsum([0] + [len(w) for w in words[:nwords]], dtype=np.int64)
    kept = np.flatnonzero(ngram_rows >= 0)
    ngram_bits = np.zeros(bucket // 64 + 1, np.uint64)
    np.bitwise_or.at(ngram_bits, kept // 64, np.uint64(1) << (kept % 64).astype(np.uint64))
    word_rows_offsets, word_rows = _vocab_rows(word_bytes, word_offsets, eos, minn, maxn,
                                               bucket, ngram_bits, ngram_rows)
    arrays = Arrays(
        words=word_bytes, word_offsets=word_offsets, word_slots=_word_table(words[:nwords]),
        word_rows_offsets=word_rows_offsets, word_rows=word_rows,
        ngram_rows=ngram_rows, ngram_bits=ngram_bits, rows=np.ascontiguousarray(rows, np.float32),
        out=np.ascontiguousarray(out, np.float32), out_scale=out_scale, left=left, right=right,
        eos=eos, minn=minn, maxn=maxn, bucket=bucket)
    labels = [w[len(_LABEL):].decode("utf-8", "replace") if w.startswith(_LABEL)
              else w.decode("utf-8", "replace") for w in words[nwords:]]
    return labels, arrays


def _dense(r: _Reader, what: str) -> np.ndarray:
    m, n = r.unpack("qq", what)
    if m < 0 or n < 0 or m * n * 4 > len(r.blob):
        r.fail(f"{what} of shape ({m}, {n})")
    return r.array(np.float32, m * n, what).reshape(m, n)


def _quantized(r: _Reader, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A product-quantized matrix expanded to float32, and its per-row norms (1 without).

    Row ``i`` is the concatenation of the centroids its codes pick: exactly what fastText adds
    to the hidden vector for it (``ProductQuantizer::addcode`` with a factor of 1), so adding
    the dense row gives the same float32 sums.
    """
    qnorm, m, n, codesize = r.unpack("?qqi", what)
    if m < 0 or n <= 0:
        r.fail(f"{what} of shape ({m}, {n})")
    codes = r.array(np.uint8, codesize, what)
    dim, nsubq, dsub, lastdsub = r.unpack("iiii", what)
    if not (dim == n and 0 < dsub and 0 < lastdsub <= dsub
            and (nsubq - 1) * dsub + lastdsub == dim and codesize == m * nsubq):
        r.fail(f"{what}: product quantizer dim={dim} nsubq={nsubq} dsub={dsub} "
               f"lastdsub={lastdsub} for shape ({m}, {n}) and {codesize} codes")
    centroids = r.array(np.float32, dim * _KSUB, what)
    codes = codes.reshape(m, nsubq)
    rows = np.empty((m, n), np.float32)
    for sub in range(nsubq):
        d = lastdsub if sub == nsubq - 1 else dsub
        table = centroids[sub * _KSUB * dsub:sub * _KSUB * dsub + _KSUB * d].reshape(_KSUB, d)
        rows[:, sub * dsub:sub * dsub + d] = table[codes[:, sub]]
    scale = np.ones(m, np.float32)
    if qnorm:
        norm_codes = r.array(np.uint8, m, what)
        ndim, _nsubq, _dsub, _last = r.unpack("iiii", what)
        if ndim != 1:
            r.fail(f"{what}: norm quantizer of dim {ndim}")
        scale = r.array(np.float32, _KSUB, what)[norm_codes]
    return rows, scale


def _huffman_tree(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """fastText's tree over the labels (``HierarchicalSoftmaxLoss::buildTree``): leaves are the
    labels, sorted by count descending, and inner node ``nlabels + k`` uses output row ``k``."""
    osz = len(counts)
    count = np.full(2 * osz - 1, 10 ** 15, np.int64)
    count[:osz] = counts
    left = np.full(2 * osz - 1, -1, np.int32)
    right = np.full(2 * osz - 1, -1, np.int32)
    leaf, node = osz - 1, osz
    for i in range(osz, 2 * osz - 1):
        pick = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                pick.append(leaf)
                leaf -= 1
            else:
                pick.append(node)
                node += 1
        left[i], right[i] = pick
        count[i] = count[pick[0]] + count[pick[1]]
    return left, right


def _fnv(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ (b | 0xFFFFFF00 if b >= 128 else b)) * 16777619) & 0xFFFFFFFF
    return h


def _word_table(words: list[bytes]) -> np.ndarray:
    """Open addressing by the words' FNV hash, as the kernel probes it (fastText's own table
    gives the same answer: the id of an equal word, or none)."""
    slots = np.full(1 << max(4, (2 * len(words)).bit_length()), -1, np.int32)
    mask = len(slots) - 1
    for wid, word in enumerate(words):
        i = _fnv(word) & mask
        while slots[i] >= 0:
            i = (i + 1) & mask
        slots[i] = wid
    return slots


# --- text in -------------------------------------------------------------------------------

def utf8_buffers(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a batch of texts and int64 offsets, a null read as an empty text.

    An Arrow string column is used in place (no copy of its bytes). A Python list goes through
    Arrow too; a string Arrow refuses (a lone surrogate) is encoded with ``surrogatepass``, one
    code point in three bytes, as Python counts it.
    """
    if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
        try:
            texts = pa.array(texts, pa.string())
        except (UnicodeEncodeError, pa.ArrowInvalid):
            parts = [(t or "").encode("utf-8", "surrogatepass") for t in texts]
            offsets = np.zeros(len(parts) + 1, np.int64)
            np.cumsum([len(p) for p in parts], out=offsets[1:])
            return np.frombuffer(b"".join(parts) or b"\0", np.uint8), offsets
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.type not in (pa.string(), pa.large_string()):
        texts = texts.cast(pa.large_string())
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    wide = texts.type == pa.large_string()
    _, offsets_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64 if wide else np.int32)
    offsets = offsets[texts.offset:texts.offset + len(texts) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size else \
        np.zeros(1, np.uint8)
    return data, offsets


# Code point classes for the sample's neutral-token rule; ``char_classes`` sets them.
SPACE, TOKEN, SPECIAL = 1, 2, 4


def char_classes(token: str, special: str) -> np.ndarray:
    """uint8 class bits of every code point under three regex character classes: ``\\s``
    (SPACE), ``token`` (TOKEN) and ``special`` (SPECIAL), as Python's ``re`` decides them, so
    the compiled sample agrees with the regex one on every character."""
    every = np.arange(0x110000, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")
    classes = np.zeros(0x110000, np.uint8)
    for bit, pattern in ((SPACE, r"\s"), (TOKEN, token), (SPECIAL, special)):
        for m in re.finditer(f"(?:{pattern})+", every):
            classes[m.start():m.end()] |= bit
    return classes


def sample(texts: pa.Array | Sequence[str | None], windows: int, window_chars: int,
           classes: np.ndarray) -> list[str]:
    """The compiled sample of each text, as text (for tests: it must equal ``sample_text``)."""
    data, offsets = utf8_buffers(texts)
    cap = _sample_capacity(windows, window_chars, _longest(offsets))
    out = np.empty(cap * (len(offsets) - 1), np.uint8)
    lengths = np.empty(len(offsets) - 1, np.int64)
    _sample_batch(data, offsets, classes, windows, window_chars, out, lengths)
    return [bytes(out[i * cap:i * cap + n]).decode("utf-8", "surrogatepass")
            for i, n in enumerate(lengths)]


# --- compiled -------------------------------------------------------------------------------
# Everything below runs under numba. Integer hashes are uint64 masked to 32 bits: numba widens
# uint32 arithmetic to 64 bits anyway, and a mixed signed/unsigned operation would give a float.

_jit = numba.njit(cache=True, nogil=True)
_LABEL_BYTES = np.frombuffer(_LABEL, np.uint8).copy()


@_jit
def _is_sep(b):
    # fastText's word separators (Dictionary::readWord); a newline also ends the line
    return b == 32 or b == 10 or b == 13 or b == 9 or b == 11 or b == 12 or b == 0


@_jit
def _fnv_byte(h, b):
    # fastText hashes each byte as int8 widened to uint32: bytes >= 0x80 are sign-extended
    x = np.uint64(b)
    if b >= 128:
        x |= _SIGNED_BYTE
    return ((h ^ x) * _FNV_PRIME) & _U32


@_jit
def _word_id(m, buf, s, e, h):
    mask = np.uint64(m.word_slots.shape[0] - 1)
    i = h & mask
    n = e - s
    while True:
        wid = m.word_slots[i]
        if wid < 0:
            return -1
        ws = m.word_offsets[wid]
        if m.word_offsets[wid + 1] - ws == n:
            same = True
            for k in range(n):
                if m.words[ws + k] != buf[s + k]:
                    same = False
                    break
            if same:
                return wid
        i = (i + np.uint64(1)) & mask


@_jit
def _ngram_rows(wbuf, w, minn, maxn, bucket, ngram_bits, ngram_rows, ids, k):
    """Append to ``ids[k:]`` the input rows of the char n-grams of ``wbuf[:w]`` ("<token>"),
    minn..maxn code points long, in fastText's order (Dictionary::computeSubwords); returns
    the new end. One-character n-grams ("<" and ">" alone) never count."""
    if bucket <= 0:
        return k
    divisor = np.int64(bucket)
    inverse = 1.0 / bucket
    for i in range(w):
        if (wbuf[i] & 0xC0) == 0x80:
            continue
        h = _FNV_OFFSET
        j = i
        n = 1
        while j < w and n <= maxn:
            h = _fnv_byte(h, wbuf[j])
            j += 1
            while j < w and (wbuf[j] & 0xC0) == 0x80:
                h = _fnv_byte(h, wbuf[j])
                j += 1
            if n >= minn and not (n == 1 and (i == 0 or j == w)):
                # h % bucket through a float reciprocal, corrected to exact: a 64-bit
                # division costs more than the rest of the n-gram
                q = np.int64(np.float64(h) * inverse)
                b = np.int64(h) - q * divisor
                if b < 0:
                    b += divisor
                elif b >= divisor:
                    b -= divisor
                # most n-grams were pruned: a bit per bucket (L2-sized) says which were not
                ub = np.uint64(b)
                if (ngram_bits[ub >> np.uint64(6)] >> (ub & np.uint64(63))) & np.uint64(1):
                    ids[k] = ngram_rows[ub]
                    k += 1
            n += 1
    return k


@_jit
def _vocab_rows(words, word_offsets, eos, minn, maxn, bucket, ngram_bits, ngram_rows):
    """Each word's rows as fastText lists them once at load (Dictionary::initNgrams): the
    word's own row, then its char n-grams' ("</s>" has none). CSR: offsets, rows."""
    nwords = word_offsets.shape[0] - 1
    per_byte = max(1, maxn - minn + 1)
    bound = 0
    for wid in range(nwords):
        bound += 1 + (word_offsets[wid + 1] - word_offsets[wid] + 2) * per_byte
    ids = np.empty(bound, np.int32)
    offsets = np.zeros(nwords + 1, np.int64)
    wbuf = np.empty(2, np.uint8)
    k = 0
    for wid in range(nwords):
        s = word_offsets[wid]
        e = word_offsets[wid + 1]
        ids[k] = wid
        k += 1
        if wid != eos:
            if wbuf.shape[0] < e - s + 2:
                wbuf = np.empty(e - s + 2, np.uint8)
            wbuf[0] = 60  # "<"
            wbuf[1:e - s + 1] = words[s:e]
            wbuf[e - s + 1] = 62  # ">"
            k = _ngram_rows(wbuf, e - s + 2, minn, maxn, bucket, ngram_bits, ngram_rows, ids,
                            k)
        offsets[wid + 1] = k
    return offsets, ids[:k].copy()


@_jit
def _line_rows(m, buf, length, wbuf, ids, cache):
    """The input rows fastText averages for ``buf[:length]`` read as one line
    (Dictionary::getLine) into ``ids``; returns how many. A word of the vocabulary brings its
    listed rows, another token its char n-grams'; "</s>", also read at the end of the line,
    brings its row and ends the line; a token starting with "__label__" is a label, no word.

    The n-gram rows of a token that is no word are kept in ``cache`` for the rest of the
    batch: tokens repeat, and hashing every n-gram of every token is most of the work. (The
    cache is unpacked here, once a line: numba counts references to every array it passes.)
    """
    slots, key_hash, key_start, key_len, rows_start, rows_len, keys, rows, used = cache
    mask = np.uint64(slots.shape[0] - 1)
    k = 0
    i = 0
    while True:
        while i < length and _is_sep(buf[i]) and buf[i] != 10:
            i += 1
        if i >= length or buf[i] == 10:
            ids[k] = m.eos
            return k + 1
        s = i
        while i < length and not _is_sep(buf[i]):
            i += 1
        e = i
        n = e - s
        if n >= 9:
            label = True
            for j in range(9):
                if buf[s + j] != _LABEL_BYTES[j]:
                    label = False
                    break
            if label:
                continue
        h = _FNV_OFFSET
        for j in range(s, e):
            h = _fnv_byte(h, buf[j])
        wid = _word_id(m, buf, s, e, h)
        if wid >= 0:
            for j in range(m.word_rows_offsets[wid], m.word_rows_offsets[wid + 1]):
                ids[k] = m.word_rows[j]
                k += 1
            if wid == m.eos:
                return k
            continue
        slot = h & mask
        found = False
        while slots[slot] >= 0:
            entry = slots[slot]
            if key_hash[entry] == h and key_len[entry] == n:
                ks = key_start[entry]
                found = True
                for j in range(n):
                    if keys[ks + j] != buf[s + j]:
                        found = False
                        break
                if found:
                    r0 = rows_start[entry]
                    for j in range(rows_len[entry]):
                        ids[k + j] = rows[r0 + j]
                    k += rows_len[entry]
                    break
            slot = (slot + np.uint64(1)) & mask
        if found:
            continue
        wbuf[0] = 60  # "<"
        wbuf[1:n + 1] = buf[s:e]
        wbuf[n + 1] = 62  # ">"
        end = _ngram_rows(wbuf, n + 2, m.minn, m.maxn, m.bucket, m.ngram_bits, m.ngram_rows,
                          ids, k)
        entry, kused, rused = used[0], used[1], used[2]
        # a full cache takes no more tokens; half its slots stay empty so probes end early
        if (2 * entry < slots.shape[0] and kused + n <= keys.shape[0]
                and rused + end - k <= rows.shape[0]):
            slots[slot] = entry
            key_hash[entry] = h
            key_len[entry] = n
            key_start[entry] = kused
            rows_start[entry] = rused
            rows_len[entry] = end - k
            keys[kused:kused + n] = buf[s:e]
            rows[rused:rused + end - k] = ids[k:end]
            used[0] = entry + 1
            used[1] = kused + n
            used[2] = rused + end - k
        k = end


@_jit
def _ids_capacity(length, minn, maxn):
    """Most rows a line of ``length`` bytes can bring: at most (length + 1) / 2 tokens (a
    separator between two), a token of b bytes one word row and (b + 2) * (maxn - minn + 1)
    n-grams, and "</s>"."""
    tokens = (length + 1) // 2
    return tokens + (length + 2 * tokens) * max(0, maxn - minn + 1) + 1


@_jit
def _std_log(x):
    return np.float32(math.log(np.float64(x) + _LOG_EPS))


@_jit
def _best_label(m, hidden, stack_node, stack_score):
    """fastText's top-1 search (HierarchicalSoftmaxLoss::dfs with k=1, threshold 0): depth
    first, left child first, a branch dropped when its score falls below the best leaf's.
    The scores can rise by log(1 + 1e-5) along a path, so the pruning can change the answer
    and is kept as it is; a later leaf with an equal score replaces the best, as fastText's
    heap does."""
    osz = m.out.shape[0]
    floor = _std_log(np.float32(0.0))
    best = np.float32(0.0)
    best_node = -1
    stack_node[0] = 2 * osz - 2
    stack_score[0] = np.float32(0.0)
    sp = 1
    while sp > 0:
        sp -= 1
        node = stack_node[sp]
        score = stack_score[sp]
        if score < floor:
            continue
        if best_node >= 0 and score < best:
            continue
        if m.left[node] == -1 and m.right[node] == -1:
            best = score
            best_node = node
            continue
        row = node - osz
        f = np.float32(0.0)
        for k in range(hidden.shape[0]):
            f += m.out[row, k] * hidden[k]
        f = f * m.out_scale[row]
        # f = 1. / (1 + std::exp(-f)): expf, a float sum, a double quotient stored as float
        f = np.float32(1.0 / np.float64(np.float32(1.0) + np.exp(-f)))
        stack_node[sp] = m.right[node]
        stack_score[sp] = score + _std_log(f)
        stack_node[sp + 1] = m.left[node]
        stack_score[sp + 1] = score + _std_log(np.float32(1.0 - np.float64(f)))
        sp += 2
    return best_node, np.exp(best)


@_jit
def _predict_line(m, buf, length, work):
    """fastText's label id and probability for ``buf[:length]`` (FastText::predictLine)."""
    wbuf, ids, hidden, stack_node, stack_score = work[:5]
    count = _line_rows(m, buf, length, wbuf, ids, work[5:])
    # the float32 mean, summed in fastText's order; Vector::mul(1.0 / n) rounds the
    # reciprocal to float first
    hidden[:] = 0
    for j in range(count):
        r = ids[j]
        for d in range(hidden.shape[0]):
            hidden[d] += m.rows[r, d]
    scale = np.float32(1.0 / count)
    for d in range(hidden.shape[0]):
        hidden[d] *= scale
    return _best_label(m, hidden, stack_node, stack_score)


@_jit
def _scratch(m, longest, total):
    """Work arrays for a batch whose longest line has ``longest`` bytes, ``total`` in all: the
    per-line buffers, then the cache of unknown tokens (open addressing, sized to the batch)."""
    wbuf = np.empty(longest + 2, np.uint8)
    ids = np.empty(_ids_capacity(longest, m.minn, m.maxn), np.int32)
    hidden = np.zeros(m.rows.shape[1], np.float32)
    stack_node = np.empty(2 * m.out.shape[0] + 2, np.int32)
    stack_score = np.empty(2 * m.out.shape[0] + 2, np.float32)
    n_slots = 1 << 10
    while n_slots < (1 << 17) and n_slots < total // 8:
        n_slots *= 2
    slots = np.full(n_slots, -1, np.int32)
    entries = n_slots // 2
    return (wbuf, ids, hidden, stack_node, stack_score, slots,
            np.empty(entries, np.uint64), np.empty(entries, np.int64),
            np.empty(entries, np.int64), np.empty(entries, np.int64),
            np.empty(entries, np.int64), np.empty(32 * entries, np.uint8),
            np.empty(16 * entries, np.int32), np.zeros(3, np.int64))


@_jit
def _predict_lines(m, data, offsets, labels, probs):
    work = _scratch(m, _longest(offsets), offsets[-1] - offsets[0])
    for d in range(offsets.shape[0] - 1):
        s = offsets[d]
        labels[d], probs[d] = _predict_line(m, data[s:offsets[d + 1]], offsets[d + 1] - s,
                                            work)


@_jit
def _decode(buf, i, n):
    """The code point at ``buf[i]`` and its length in bytes; lenient, never reads past n."""
    b = np.int64(buf[i])
    if b < 0x80:
        return b, 1
    if b >= 0xF0 and i + 3 < n:
        cp = ((b & 0x07) << 18) | ((np.int64(buf[i + 1]) & 0x3F) << 12) \
            | ((np.int64(buf[i + 2]) & 0x3F) << 6) | (np.int64(buf[i + 3]) & 0x3F)
        return (cp if cp < 0x110000 else 0xFFFD), 4
    if b >= 0xE0 and i + 2 < n:
        return ((b & 0x0F) << 12) | ((np.int64(buf[i + 1]) & 0x3F) << 6) \
            | (np.int64(buf[i + 2]) & 0x3F), 3
    if b >= 0xC0 and i + 1 < n:
        return ((b & 0x1F) << 6) | (np.int64(buf[i + 1]) & 0x3F), 2
    return 0xFFFD, 1


@_jit
def _sample_one(text, classes, windows, window_chars, joined, out):
    """``pipeline.langfilter.langid.sample_text`` on UTF-8 bytes, written to ``out``; returns its length.

    The windows are cut at code point offsets, as Python slices a str. The neutral-token regex
    is replayed run by run: at a run of TOKEN code points, ``TOKEN* SPECIAL TOKEN*`` matches the
    whole run when the run holds a SPECIAL, and reaches on through the next run when the code
    point right after the run is a SPECIAL that is not a TOKEN (a full-width digit); failing
    that, ``(?<!\\S)-TOKEN*`` matches a run that starts with "-" after white space. A match
    becomes one space; newlines become spaces.
    """
    n_bytes = text.shape[0]
    lead = text.view(np.int8)  # a code point starts at each byte >= -64 (not 10xxxxxx)
    continuation = 0
    for k in range(n_bytes):
        continuation += np.int64(lead[k] < -64)
    n = n_bytes - continuation
    # Valid UTF-8 fits ``joined`` by construction; invalid bytes (an Arrow column is not
    # checked) could make a window longer, so copies are cut to fit, never overrun.
    room = joined.shape[0]
    if n <= windows * window_chars:
        size = min(n_bytes, room)
        joined[:size] = text[:size]
    else:
        size = 0
        step = np.float64(n - window_chars) / np.float64(max(windows - 1, 1))
        pos = 0
        cp = 0
        for w in range(windows):
            start = np.int64(w * step) if windows > 1 else 0
            pos, cp = _seek(lead, pos, cp, start)
            first = pos
            pos, cp = _seek(lead, pos, cp, start + window_chars)
            end = pos
            if start > 0:
                # part.find(" ", 0, 32): drop the cut word if a space ends it early enough
                chars = 0
                for k in range(first, end):
                    if lead[k] >= -64:
                        if chars == 32:
                            break
                        if text[k] == 32:
                            first = k + 1
                            break
                        chars += 1
            if w > 0 and size < room:
                joined[size] = 32
                size += 1
            end = min(end, first + room - size)
            joined[size:size + end - first] = text[first:end]
            size += end - first
    return _drop_neutral(joined, size, classes, out)


@_jit
def _drop_neutral(text, size, classes, out):
    """``text[:size]`` with each match of the neutral-token regex replaced by a space and
    newlines by spaces, into ``out``; returns its length."""
    o = 0
    i = 0
    after_space = True  # (?<!\S) holds at the start of the text
    while i < size:
        b = text[i]
        c, ln = _decode(text, i, size)
        cls = classes[c]
        if cls & SPACE:
            out[o] = 32 if b == 10 else b
            for k in range(1, ln):
                out[o + k] = text[i + k]
            o += ln
            i += ln
            after_space = True
            continue
        if cls & TOKEN:
            matched = c == 45 and after_space  # 45: "-"
            seen = 0  # the union of the run's classes
            j = i
            while True:
                seen |= cls
                j += ln
                if j >= size:
                    break
                c, ln = _decode(text, j, size)
                cls = classes[c]
                if not cls & TOKEN:
                    break
            matched = matched or (seen & SPECIAL) != 0
            if j < size and cls & SPECIAL:  # a SPECIAL right after the run: a full-width digit
                matched = True
                j = _token_run_end(text, j + ln, size, classes)
        elif cls & SPECIAL:
            matched = True
            j = _token_run_end(text, i + ln, size, classes)
        else:  # a run of CJK, kana or Hangul: kept, copied in one go
            matched = False
            j = i + ln
            while j < size:
                c, ln = _decode(text, j, size)
                if classes[c] != 0:
                    break
                j += ln
        if matched:
            out[o] = 32
            o += 1
        else:
            out[o:o + j - i] = text[i:j]
            o += j - i
        i = j
        after_space = False
    return o


@_jit
def _seek(lead, pos, cp, target):
    """Byte offset of code point ``target`` (the end if there is none) and its index, from
    ``pos`` where code point ``cp`` starts. 64-byte blocks are counted, not walked: the loop
    over one compiles to vector instructions."""
    n = lead.shape[0]
    while pos + 64 <= n:
        block = lead[pos:pos + 64]  # indices from 0: no negative-index check, so SIMD loads
        starts = 0
        for k in range(64):
            starts += np.int64(block[k] >= -64)
        if cp + starts > target:
            break
        cp += starts
        pos += 64
    while pos < n:
        if lead[pos] >= -64:
            if cp == target:
                return pos, cp
            cp += 1
        pos += 1
    return n, cp


@_jit
def _token_run_end(buf, j, size, classes):
    while j < size:
        c, ln = _decode(buf, j, size)
        if not classes[c] & TOKEN:
            break
        j += ln
    return j


@_jit
def _sample_capacity(windows, window_chars, longest):
    """Bytes a sample can take: a window of c code points takes at most 4c bytes and no more
    than the text, the windows do not overlap, and a space joins two."""
    return min(4 * windows * window_chars, longest) + windows + 4


@_jit
def _longest(offsets):
    longest = 0
    for d in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[d + 1] - offsets[d])
    return longest


@_jit
def _sample_batch(data, offsets, classes, windows, window_chars, out, lengths):
    cap = out.shape[0] // max(lengths.shape[0], 1)
    joined = np.empty(cap, np.uint8)
    for d in range(offsets.shape[0] - 1):
        lengths[d] = _sample_one(data[offsets[d]:offsets[d + 1]], classes, windows,
                                 window_chars, joined, out[d * cap:(d + 1) * cap])


@_jit
def _predict_sampled(m, data, offsets, classes, windows, window_chars, labels, probs):
    cap = _sample_capacity(windows, window_chars, _longest(offsets))
    joined = np.empty(cap, np.uint8)
    sampled = np.empty(cap, np.uint8)
    work = _scratch(m, cap, (offsets.shape[0] - 1) * cap)
    for d in range(offsets.shape[0] - 1):
        length = _sample_one(data[offsets[d]:offsets[d + 1]], classes, windows, window_chars,
                             joined, sampled)
        labels[d], probs[d] = _predict_line(m, sampled, length, work)
