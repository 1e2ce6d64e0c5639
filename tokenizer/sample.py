"""The tokenizer's training sample: a deterministic, language-stratified slice of the corpus.

Two streaming passes over the stage folder's Parquet files, so memory is bounded by the
sample, never by the corpus:

1. survey: for every document, a number in [0, 1) from a seeded hash of its id, and its size;
   per language, a histogram of bytes over 65,536 hash buckets, and a small uniform probe of
   texts (the documents with the lowest hashes) to see which scripts the corpus is written in.
2. stream: per language, the documents whose hash falls in the lowest buckets that fit the
   language's share of ``sample_bytes`` (topped up to the budget with later buckets that fit),
   sorted by that hash, cut into the same pieces encoding uses.

The same seed and corpus give the same sample, in the same order, whatever the order or number
of Parquet files.
"""

from __future__ import annotations

import heapq
import itertools
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from core.errors import UsageError
from tokenizer.encode import doc_unit, split_pieces, text_column

BUCKETS = 1 << 16
PROBE_BYTES = 4 << 20
NO_LANG = ""


@dataclass
class Survey:
    """What pass 1 learned: bytes per hash bucket per language, and the script probe."""

    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    docs: Counter = field(default_factory=Counter)
    probe: list[tuple[float, str]] = field(default_factory=list)

    def lang_bytes(self) -> dict[str, int]:
        return {lang: int(h.sum()) for lang, h in self.histograms.items()}


def parquet_files(data_dir: str | Path) -> list[Path]:
    files = sorted(Path(data_dir).glob("*.parquet"))
    if not files:
        raise UsageError(f"empty corpus: no Parquet files in {data_dir}")
    return files


def _batches(files: list[Path], progress=None):
    """(ids, langs, text column, sizes) per record batch; ``lang`` is optional in the input."""
    import pyarrow.parquet as pq

    for path in files:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        if "id" not in names or "text" not in names:
            raise UsageError(f"{path} has no id/text columns (columns: {', '.join(names)})")
        columns = ["id", "text"] + (["lang"] if "lang" in names else [])
        # 256 rows: a row may be a whole book, and a batch is held in memory at once
        for batch in pf.iter_batches(batch_size=256, columns=columns):
            text, sizes = text_column(batch)
            langs = (
                [lang or NO_LANG for lang in batch.column("lang").to_pylist()]
                if "lang" in columns
                else [NO_LANG] * batch.num_rows
            )
            if progress is not None:
                progress.update(batch.num_rows)
            yield batch.column("id").to_pylist(), langs, text, sizes


def survey(files: list[Path], seed: int, probe_bytes: int = PROBE_BYTES, progress=None) -> Survey:
    out = Survey()
    heap: list[tuple[float, int, int, str]] = []  # (-unit, tiebreak, size, text): a max-heap
    held, order = 0, itertools.count()
    for ids, langs, text, sizes in _batches(files, progress=progress):
        units = np.fromiter((doc_unit(i, seed, b"sample") for i in ids), dtype=np.float64, count=len(ids))
        buckets = (units * BUCKETS).astype(np.int64)
        for lang in set(langs):
            rows = np.fromiter((x == lang for x in langs), dtype=bool, count=len(langs))
            hist = out.histograms.setdefault(lang, np.zeros(BUCKETS, dtype=np.int64))
            hist += np.bincount(buckets[rows], weights=sizes[rows], minlength=BUCKETS).astype(np.int64)
            out.docs[lang] += int(rows.sum())
        # Only documents hashed below the probe's current maximum are converted to Python text.
        for row in np.argsort(units, kind="stable"):
            if held >= probe_bytes and -heap[0][0] <= units[row]:
                break
            heapq.heappush(heap, (-units[row], next(order), int(sizes[row]), text[int(row)].as_py()))
            held += int(sizes[row])
            while held - heap[0][2] >= probe_bytes and len(heap) > 1:
                held -= heapq.heappop(heap)[2]
    out.probe = sorted((-u, t) for u, _, _, t in heap)
    return out


def lang_quotas(lang_bytes: dict[str, int], budget: float, alpha: float = 1.0) -> dict[str, float]:
    """Bytes of sample per language: shares proportional to ``bytes ** alpha``.

    ``alpha`` 1 keeps the corpus's proportions exactly; below 1 small languages get more than
    their share (XLM-R and mT5 sample with 0.3), so rare scripts still get whole-word pieces.
    A language smaller than its share gives all it has and the rest is shared out again.
    """
    remaining = {lang: b for lang, b in lang_bytes.items() if b > 0}
    quotas = {lang: 0.0 for lang in lang_bytes}
    while remaining and budget > 0:
        weights = {lang: float(b) ** alpha for lang, b in remaining.items()}
        total = sum(weights.values())
        full = [lang for lang in remaining if budget * weights[lang] / total >= remaining[lang]]
        if not full:
            for lang in remaining:
                quotas[lang] = budget * weights[lang] / total
            break
        for lang in full:
            quotas[lang] = float(remaining.pop(lang))
            budget -= quotas[lang]
    return quotas


def choose_buckets(surv: Survey, quotas: dict[str, float], budget: float) -> dict[str, np.ndarray]:
    """Per language, which hash buckets are in the sample (a boolean mask over buckets).

    First the lowest buckets that fit each language's quota; then, since documents come whole
    and a quota is rarely met exactly, the budget left over goes, one bucket at a time, to the
    language furthest below its quota that has a later bucket that still fits. The sample
    never exceeds the budget.
    """
    chosen, used = {}, {}
    for lang, hist in surv.histograms.items():
        prefix = int(np.searchsorted(np.cumsum(hist), quotas[lang], side="right"))
        chosen[lang] = np.arange(BUCKETS) < prefix
        used[lang] = int(hist[chosen[lang]].sum())
    left = budget - sum(used.values())
    while left > 0:
        for lang in sorted(chosen, key=lambda g: (used[g] / quotas[g] if quotas[g] else np.inf, g)):
            hist = surv.histograms[lang]
            fits = np.flatnonzero((hist > 0) & (hist <= left) & ~chosen[lang])
            if fits.size:
                chosen[lang][fits[0]] = True
                used[lang] += int(hist[fits[0]])
                left -= int(hist[fits[0]])
                break
        else:
            break
    return chosen


@dataclass
class SampleCount:
    docs: Counter = field(default_factory=Counter)
    bytes: Counter = field(default_factory=Counter)
    pieces: int = 0


def stream_sample(
    files: list[Path], seed: int, chosen: dict[str, np.ndarray], count: SampleCount, progress=None
) -> Iterator[str]:
    """The sample's pieces in hash order; ``count`` is filled in as they are consumed.

    SentencePiece's result depends on the order of its sentences, so the chosen documents are
    gathered (as Arrow: UTF-8 bytes, no per-string overhead) and sorted by their hash before
    the first is yielded: the order, and so the model, does not depend on how the corpus is
    split into files. The gathered copy is freed once SentencePiece has read it all, before
    its training, whose memory is the peak.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    gathered = []
    for ids, langs, text, sizes in _batches(files):
        units = np.fromiter((doc_unit(i, seed, b"sample") for i in ids), dtype=np.float64, count=len(ids))
        buckets = (units * BUCKETS).astype(np.int64)
        rows = np.flatnonzero([chosen[lang][b] for lang, b in zip(langs, buckets)])
        if rows.size:
            gathered.append(
                pa.table(
                    {
                        "unit": units[rows],
                        "id": pa.array([ids[r] for r in rows], pa.string()),
                        "lang": pa.array([langs[r] for r in rows], pa.string()),
                        "size": sizes[rows],
                        "text": text.take(pa.array(rows)),
                    }
                )
            )
            if progress is not None:
                progress.update(int(sizes[rows].sum()))
    if not gathered:
        return
    table = pa.concat_tables(gathered)
    del gathered
    order = pc.sort_indices(table, sort_keys=[("unit", "ascending"), ("id", "ascending")])
    for start in range(0, len(table), 1024):
        part = table.take(order[start : start + 1024])
        columns = (part[name].to_pylist() for name in ("lang", "size", "text"))
        for lang, size, doc in zip(*columns):
            count.docs[lang] += 1
            count.bytes[lang] += size
            for piece in split_pieces(doc):
                count.pieces += 1
                yield piece


def script_shares(texts: list[str]) -> dict[str, float]:
    """Share of letters per Unicode script (LATIN, CYRILLIC, CJK, …), from character names."""
    letters: Counter = Counter()
    for text in texts:
        points, counts = np.unique(np.frombuffer(text.encode("utf-32-le"), dtype="<u4"), return_counts=True)
        for point, n in zip(points.tolist(), counts.tolist()):
            ch = chr(point)
            if ch.isalpha():
                letters[unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]] += n
    total = sum(letters.values()) or 1
    return {script: n / total for script, n in letters.most_common()}


def main_scripts(shares: dict[str, float], floor: float = 0.001) -> list[str]:
    """Scripts holding at least ``floor`` of the letters: a stray Greek word is not a script.

    Low, because a script's share of letters understates it: a Japanese man page is a few
    hundred kana and kanji among Latin command names, yet needs thousands of characters.
    """
    return [s for s, share in shares.items() if share >= floor]
