"""The toxicity classifier: hashed words, word pairs and word prefixes, logistic regression.

Why this shape: it is fastText's supervised model without the low-rank embedding, trained with
scipy's L-BFGS in under a minute on one core, exactly deterministic, and shipped as a ~1 MB
``.npz`` of float16 weights that ``np.load(allow_pickle=False)`` reads (no pickle, no native
training library whose wheels clash with ``fasttext-predict``).

Why the training set is built as it is: word lists and classifiers trained on hate-speech data
fire on the *names* of groups, because hateful examples name groups far more often than benign
ones. So:

* the negatives include benign sentences that name groups (a training part of
  ``benign_identity_wikipedia.jsonl``) and benign prose (windows of public-domain books, so
  that a novel's dialogue does not read as a tweet);
* every training text that names a group is added again with the group swapped for another of
  the same axis (Dixon et al., 2018; Park et al., 2018);
* identity terms, pronouns and the commonest words carry no weight of their own, nor do
  their prefixes (see ``frozen_feature_ids``): only their context may;
* hateful examples weigh ``HATE_WEIGHT`` times as much as offensive ones: 2.6k hateful texts
  against 19k offensive tweets, and hate without swear words (most of the forum sentences) is
  what a profanity-shaped boundary misses.

Held-out parts of every source, split by a hash of the id (of the book, for prose), are never
trained on: ``valid`` chooses the ``toxic`` threshold (the lowest that tags at most
``MAX_BENIGN_TAGGED`` of benign text, see ``choose_threshold``), ``test`` is what
``bench/screen.py`` reports.

``python -m tools.train_toxicity train [--data DIR] [--books DIR] [--out FILE]`` rebuilds the
shipped model (about a minute); ``... score`` prints P(toxic) of lines of standard input.
"""
from __future__ import annotations

import functools
import html
import itertools
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UsageError
from pipeline.screen.lexicons import words

MODEL_DIR = Path(__file__).parent / "models"
MODEL_PATH = MODEL_DIR / "toxicity.npz"
META_PATH = MODEL_DIR / "toxicity.json"

HASH_BITS = 20
PREFIX_LETTERS = 4  # words longer than this also count as their first four letters
CHUNK_WORDS = 64  # the training texts are tweets and sentences: score in pieces of that size
MIN_PIECE_WORDS = 12
# 1: words and word pairs. 2: + the first four letters of longer words. A model's weights
# mean nothing under another version's hashing, so loading checks it.
FEATURE_VERSION = 2


_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_RETWEET = re.compile(r"^\s*rt\b|\brt\s*:")
_REPEAT = re.compile(r"(\w)\1{2,}")


def normalize(text: str) -> list[str]:
    """Lower-cased word tokens, with the artefacts of tweets and forums taken out.

    Mentions, URLs, "RT" and HTML entities mark a text as a tweet; left in, the model learns
    that tweets are offensive (most of the tweets are) rather than what makes a text offensive.
    Letters repeated three times or more are cut to two ("fuuuuck" and "fuuuck" hash the
    same) when a token is hashed.
    """
    if "&" in text:
        text = html.unescape(text)
    text = text.lower()
    if "http" in text or "www." in text:
        text = _URL.sub(" ", text)
    if "@" in text:
        text = _MENTION.sub(" ", text)
    if "rt" in text:
        text = _RETWEET.sub(" ", text)
    return words(text)


class _Memo(dict):
    """``fn(token)``, computed once per distinct token.

    ``map(memo.__getitem__, tokens)`` stays in C for every token seen before; the work of a
    new token (cutting repeated letters, hashing) is paid once per process. Bounded, so a
    stream of unique junk tokens cannot grow it without end.
    """

    def __init__(self, fn):
        super().__init__()
        self._fn = fn

    def __missing__(self, tok: str):
        value = self._fn(tok)
        if len(self) < 1 << 20:
            self[tok] = value
        return value


def _word_hash(tok: str) -> int:
    """crc32 of the token's normalized form."""
    return zlib.crc32(_REPEAT.sub(r"\1\1", tok).encode("utf-8"))


def _prefix(tok: str) -> tuple[int, ...]:
    """crc32 of ``<`` and the token's first ``PREFIX_LETTERS`` letters, as a 0- or 1-tuple.

    Why prefixes: slurs and insults come in inflections and compounds that no training text
    has ("niglet", "faggotry"), and a word never seen in training weighs nothing. Why not
    letter n-grams from anywhere in the word: they were tried, and "stitch", "truck" and
    "trigger" took weight from "bitch", "fuck" and "nigger"; on the valid split, sentences
    about sewing occupations crowded the top 5% of benign scores. A prefix hash cannot equal
    a word's: words hold no "<".
    """
    t = _REPEAT.sub(r"\1\1", tok)
    return (zlib.crc32(f"<{t[:PREFIX_LETTERS]}".encode("utf-8")),) if len(t) > PREFIX_LETTERS else ()


_token_hash = _Memo(_word_hash).__getitem__
_prefix_hash = _Memo(_prefix).__getitem__


_MASK = np.uint64((1 << HASH_BITS) - 1)
_PAIR_MULT = np.uint64(0x9E3779B97F4A7C15)


def window_features(texts: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(text index, feature id) of the distinct hashed features of each token list.

    Features are the words, adjacent word pairs and prefixes of longer words of a text, hashed
    into 2**HASH_BITS buckets. Computed for a whole batch in a few numpy calls (one unique
    over text-tagged keys) rather than per text: a book is thousands of windows.
    """
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    h = np.fromiter(map(_token_hash, itertools.chain.from_iterable(texts)), dtype=np.uint64,
                    count=total)
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    same = owner[:-1] == owner[1:]
    with np.errstate(over="ignore"):
        pairs = ((h[:-1] * _PAIR_MULT + h[1:] + np.uint64(1)) & _MASK)[same]
    prefixes = list(map(_prefix_hash, itertools.chain.from_iterable(texts)))
    has_prefix = np.fromiter(map(len, prefixes), dtype=np.int64, count=total)
    g = np.fromiter(itertools.chain.from_iterable(prefixes), dtype=np.uint64,
                    count=int(has_prefix.sum()))
    keys = np.concatenate([
        (owner << HASH_BITS) | (h & _MASK).astype(np.int64),
        (owner[:-1][same] << HASH_BITS) | pairs.astype(np.int64),
        (owner[has_prefix > 0] << HASH_BITS) | (g & _MASK).astype(np.int64),
    ])
    # Sort and drop repeats: np.unique's hash path is several times slower on these sizes.
    keys.sort()
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    return keys >> HASH_BITS, keys & ((1 << HASH_BITS) - 1)


def feature_ids(toks: list[str]) -> np.ndarray:
    """Distinct hashed feature ids of one text (for inspection and tests)."""
    return window_features([toks])[1]


_PARAGRAPH = re.compile(r"\n\s*\n")


def chunks(text: str) -> list[list[str]]:
    """Paragraph pieces to score: blank-line paragraphs, cut into near-equal windows of at
    most ``CHUNK_WORDS`` words; paragraphs under ``MIN_PIECE_WORDS`` words join the next.

    Hard-wrapped lines are joined, and short paragraphs with them: scored alone, "Hell!" or
    a four-word line ("come, pussy, come" to a cat in a novel) swings to either extreme, and
    the document score is a maximum.
    """
    out: list[list[str]] = []
    carry: list[str] = []
    for para in _PARAGRAPH.split(text):
        toks = carry + normalize(para)
        if len(toks) < MIN_PIECE_WORDS:
            carry = toks
            continue
        carry = []
        k = -(-len(toks) // CHUNK_WORDS)
        size = -(-len(toks) // k)
        out.extend(toks[i:i + size] for i in range(0, len(toks), size))
    if carry:
        if out and len(out[-1]) + len(carry) <= CHUNK_WORDS + MIN_PIECE_WORDS:
            out[-1] = out[-1] + carry
        else:
            out.append(carry)
    return out


@dataclass
class ToxicityModel:
    weights: np.ndarray  # float32, (2**HASH_BITS,)
    bias: float
    threshold: float  # the ``toxic`` tag threshold chosen on the valid split
    meta: dict

    def score_tokens(self, texts: list[list[str]]) -> np.ndarray:
        """P(toxic) of each token list (0 for an empty one)."""
        owner, feats = window_features(texts)
        n = len(texts)
        counts = np.bincount(owner, minlength=n)
        sums = np.bincount(owner, weights=self.weights[feats].astype(np.float64), minlength=n)
        out = np.zeros(n, dtype=np.float64)
        has = counts > 0
        logits = self.bias + sums[has] / np.sqrt(counts[has])
        out[has] = 1.0 / (1.0 + np.exp(-logits))
        return out

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """P(toxic) of short texts scored whole (the held-out sentences and tweets)."""
        return self.score_tokens([normalize(t) for t in texts])

    def score_documents(self, texts: list[str]) -> np.ndarray:
        """Per document, the highest P(toxic) of its paragraph pieces; 0 for no words."""
        return self.score_documents_share(texts, 1.0)[0]

    def score_documents_share(self, texts: list[str], threshold: float
                              ) -> tuple[np.ndarray, np.ndarray]:
        """Per document, the highest P(toxic) of its pieces and the share of pieces at or
        above ``threshold``.

        The maximum alone tags every long document: a book has a thousand pieces, and a
        classifier wrong on 0.2% of benign pieces fires on most books. The share tells one
        offensive page from one unlucky window.
        """
        pieces, owner = [], []
        for d, text in enumerate(texts):
            for c in chunks(text or ""):
                pieces.append(c)
                owner.append(d)
        top = np.zeros(len(texts), dtype=np.float64)
        share = np.zeros(len(texts), dtype=np.float64)
        if pieces:
            idx = np.array(owner)
            scores = self.score_tokens(pieces)
            np.maximum.at(top, idx, scores)
            counts = np.bincount(idx, minlength=len(texts))
            hits = np.bincount(idx, weights=(scores >= threshold), minlength=len(texts))
            share = np.divide(hits, counts, out=np.zeros_like(share), where=counts > 0)
        return top, share


def load_model(path: Path | str | None = None) -> ToxicityModel:
    """The shipped model, or the one at ``path`` (``.npz`` beside its ``.json``)."""
    return _load(str(path or MODEL_PATH))


@functools.lru_cache(maxsize=4)
def _load(path: str) -> ToxicityModel:
    npz, meta_path = Path(path), Path(path).with_suffix(".json")
    if not npz.is_file() or not meta_path.is_file():
        raise UsageError(f"toxicity model not found: {npz} (and {meta_path.name} beside it)")
    try:
        with np.load(npz, allow_pickle=False) as z:
            weights = z["weights"].astype(np.float32)
            bias = float(z["bias"][0])
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"cannot read toxicity model {npz}: {e}") from None
    if meta.get("feature_version") != FEATURE_VERSION or len(weights) != 1 << HASH_BITS:
        raise UsageError(
            f"toxicity model {npz} was built for feature version "
            f"{meta.get('feature_version')} with {len(weights)} weights; this code hashes "
            f"version {FEATURE_VERSION} into {1 << HASH_BITS}: retrain it with "
            "`python -m tools.train_toxicity train`")
    return ToxicityModel(weights, bias, float(meta["threshold"]), meta)
