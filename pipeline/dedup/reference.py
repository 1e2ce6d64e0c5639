"""Plain, slow versions of what the dedup stage computes fast: the yardsticks its tests and
benchmarks hold it to (exact Jaccard, the LSH S-curve, signatures through any hash function).
The stage never calls them."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from pipeline.dedup.minhash import minhash, shingles


def signatures_with(texts: Iterable[str], hashfunc: Callable[[bytes], int], num_perm: int = 128,
                    ngram: int = 5, seed: int = 1) -> np.ndarray:
    """Signatures with any 32-bit ``hashfunc`` of a shingle's UTF-8 bytes (slow: one call per
    shingle), e.g. datasketch's default ``sha1_hash32``."""
    hashes, counts = [], []
    for text in texts:
        sh = shingles(text, ngram)
        hashes.extend(hashfunc(s.encode("utf-8")) for s in sh)
        counts.append(len(sh))
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return minhash(np.array(hashes, np.uint32), offsets, num_perm, seed)


def band_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two documents of this Jaccard similarity share at least one band."""
    return 1.0 - (1.0 - similarity ** rows) ** bands


def jaccard(a: Iterable, b: Iterable) -> float:
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)
