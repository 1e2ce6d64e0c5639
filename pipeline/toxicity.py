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

``python -m pipeline.toxicity train [--data DIR] [--books DIR] [--out FILE]`` rebuilds the
shipped model (about a minute); ``... score`` prints P(toxic) of lines of standard input.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import html
import io
import itertools
import json
import random
import re
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UsageError
from pipeline.lexicons import identity_lexicon, words

MODEL_DIR = Path(__file__).parent / "models"
MODEL_PATH = MODEL_DIR / "toxicity.npz"
META_PATH = MODEL_DIR / "toxicity.json"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "toxicity"
DEFAULT_BOOKS = DEFAULT_DATA.parent / "books"

HASH_BITS = 20
L2 = 3e-5
HATE_WEIGHT = 2.0
PREFIX_LETTERS = 4  # words longer than this also count as their first four letters
PROSE_WINDOWS_PER_BOOK = 60
# The threshold is the lowest that tags at most this share of the valid split's benign text,
# each benign source weighing the same. 0.8% is where the word-only model (feature version 1)
# stood at its best-F1 threshold: a better model buys recall at the same cost to benign text.
MAX_BENIGN_TAGGED = 0.008
# Reported beside it: F1 at the share of toxic text we expect in web text, not at the ~45% of
# the labelled sets.
EXPECTED_TOXIC_SHARE = 0.05
CHUNK_WORDS = 64  # the training texts are tweets and sentences: score in pieces of that size
MIN_PIECE_WORDS = 12
# 1: words and word pairs. 2: + the first four letters of longer words. A model's weights
# mean nothing under another version's hashing, so loading checks it.
FEATURE_VERSION = 2
SEED = 20240520

# Fortune categories that are offensive as a category. The others in fortune-mod's "off" set
# (atheism, religion, politics, riddles, limericks, ...) are a mix, mostly quotations about
# religion and politics: labelling them offensive would teach the model that text about a
# religion is toxic, the very harm this screen exists to avoid. They are left out entirely.
OFFENSIVE_FORTUNES = frozenset(
    {"sex", "vulgarity", "privates", "misogyny", "misandry", "hphobia", "racism", "ethnic"}
)

# Split by hash of the id, fractions of [0, 1): (train, valid) upper bounds; the rest is test.
# benign_identity keeps 40% for the bench: its smallest groups need the examples.
SPLITS = {"default": (0.70, 0.85), "benign_identity": (0.50, 0.60)}

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
            "`python -m pipeline.toxicity train`")
    return ToxicityModel(weights, bias, float(meta["threshold"]), meta)


# --- training data ------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    label: str  # hate | offensive | benign
    source: str  # davidson | stormfront | fortunes | benign_identity | prose
    group: str = ""  # benign_identity: its domain/group; prose: the book

    @property
    def toxic(self) -> bool:
        return self.label != "benign"

    @property
    def split(self) -> str:
        # Windows of one book stay together, or the test split would share its style.
        return split_of(self.group if self.source == "prose" else self.id, self.source)


def split_of(key: str, source: str) -> str:
    """train / valid / test, from a hash of the id: stable across runs and machines."""
    u = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    train, valid = SPLITS.get(source, SPLITS["default"])
    return "train" if u < train else "valid" if u < valid else "test"


DATA_FILES = {
    "davidson": "davidson_tweets_labelled.jsonl",
    "stormfront": "stormfront_sentences_labelled.jsonl",
    "fortunes": "offensive_fortunes_en.jsonl",
    "benign_identity": "benign_identity_wikipedia.jsonl",
}


def _label(source: str, row: dict) -> str | None:
    if source == "davidson":
        return {"hate": "hate", "offensive": "offensive", "neither": "benign"}[row["label"]]
    if source == "stormfront":
        return {"hate": "hate", "noHate": "benign"}.get(row["label"])  # relation, idk: out
    if source == "fortunes":
        return "offensive" if row.get("category") in OFFENSIVE_FORTUNES else None
    return "benign"


def load_prose(books_dir: Path | str = DEFAULT_BOOKS) -> list[Example]:
    """Benign long-form prose: windows of public-domain books, as scored in a document.

    Without them the model has seen no prose at all, only tweets, forum sentences and
    one-sentence encyclopedia facts, and it scored a quarter of the 64-word windows of
    ordinary novels as toxic (dialogue reads like tweets to it). Windows with any
    offensive-lexicon match are left out, so the few slurs and oaths of old novels are not
    taught as benign. Evenly spaced, up to ``PROSE_WINDOWS_PER_BOOK`` per book.
    """
    from pipeline.lexicons import offensive_lexicon

    books_dir = Path(books_dir)
    files = sorted(books_dir.glob("*.txt"))
    if not files:
        raise UsageError(f"no books (*.txt) for prose negatives in {books_dir}")
    lex = offensive_lexicon()
    out = []
    for path in files:
        pieces = [c for c in chunks(path.read_text(encoding="utf-8", errors="replace"))
                  if len(c) >= 20 and not any(lex.count(c, "en").values())]
        step = max(1, len(pieces) // PROSE_WINDOWS_PER_BOOK)
        for k, piece in enumerate(pieces[::step][:PROSE_WINDOWS_PER_BOOK]):
            out.append(Example(f"books/{path.name}#{k}", " ".join(piece), "benign", "prose",
                               f"books/{path.name}"))
    return out


def load_examples(data_dir: Path | str = DEFAULT_DATA,
                  books_dir: Path | str | None = DEFAULT_BOOKS) -> list[Example]:
    """Every labelled example of the four sources, in file order, then the prose windows."""
    data_dir = Path(data_dir)
    out = []
    for source, name in DATA_FILES.items():
        path = data_dir / name
        if not path.is_file():
            raise UsageError(f"toxicity data not found: {path}")
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                label = _label(source, row)
                if label is None or not row.get("text"):
                    continue
                group = f"{row['domain']}/{row['group']}" if source == "benign_identity" else ""
                out.append(Example(row["id"], row["text"], label, source, group))
    if books_dir is not None:
        out.extend(load_prose(books_dir))
    return out


def data_fingerprint(data_dir: Path | str = DEFAULT_DATA,
                     books_dir: Path | str = DEFAULT_BOOKS) -> dict[str, str]:
    out = {
        name: hashlib.sha256((Path(data_dir) / name).read_bytes()).hexdigest()
        for name in DATA_FILES.values()
    }
    books = hashlib.sha256()
    for path in sorted(Path(books_dir).glob("*.txt")):
        books.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    out["books/*.txt"] = books.hexdigest()
    return out


def swap_identity(toks: list[str], rng: random.Random) -> list[str] | None:
    """The tokens with every identity term replaced by one of another group, same axis and form.

    None when the text names no group. Adjectives and adj_people forms swap with each other
    (both stand before a noun); singular and plural nouns keep their number.
    """
    lex = identity_lexicon()
    found = lex.find(toks)
    if not found:
        return None
    pool: dict[tuple[str, str], list] = {}
    for e in lex.entries:
        kind = "adj" if e.form in ("adj", "adj_people") else e.form
        pool.setdefault((e.axis, kind), []).append(e)
    out, last = [], 0
    for start, end, term in found:
        kind = "adj" if term.form in ("adj", "adj_people") else term.form
        others = [e for e in pool[(term.axis, kind)] if e.group != term.group]
        out.extend(toks[last:start])
        out.extend(words(rng.choice(others).term) if others else toks[start:end])
        last = end
    out.extend(toks[last:])
    return out


def training_set(examples: list[Example], split: str = "train", swaps: int = 2):
    """Token lists, labels and weights for ``split``, with identity swaps added to train.

    Weights balance the three sources of negatives and positives: without them the 19k
    offensive tweets set the decision boundary and benign text that is not a tweet is scored by
    its distance from tweets rather than by what it says. Hateful examples then count
    ``HATE_WEIGHT`` times (see the module docstring).
    """
    texts, labels, keys, hate = [], [], [], []
    for ex in examples:
        if ex.split != split:
            continue
        toks = normalize(ex.text)
        if not toks:
            continue
        texts.append(toks)
        labels.append(ex.toxic)
        keys.append((ex.source, ex.toxic))
        hate.append(ex.label == "hate")
        if split == "train":
            rng = random.Random(f"{SEED}:{ex.id}")
            for _ in range(swaps):
                swapped = swap_identity(toks, rng)
                if swapped is None:
                    break
                texts.append(swapped)
                labels.append(ex.toxic)
                keys.append((ex.source, ex.toxic))
                hate.append(ex.label == "hate")
    counts: dict[tuple, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    # Each (source, class) cell gets the same total weight within its class.
    cells_per_class = {c: sum(1 for k in counts if k[1] == c) for c in (False, True)}
    n_class = {c: sum(v for k, v in counts.items() if k[1] == c) for c in (False, True)}
    weights = np.array(
        [n_class[k[1]] / (cells_per_class[k[1]] * counts[k]) for k in keys], dtype=np.float64
    )
    weights[np.array(hate, dtype=bool)] *= HATE_WEIGHT
    return texts, np.array(labels, dtype=np.float64), weights


def _design(texts: list[list[str]]):
    from scipy import sparse

    owner, feats = window_features(texts)
    counts = np.bincount(owner, minlength=len(texts))
    values = 1.0 / np.sqrt(np.maximum(counts[owner], 1))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sparse.csr_matrix((values, feats, indptr), shape=(len(texts), 1 << HASH_BITS))


COMMON_WORDS_FROZEN = 200


def frozen_feature_ids(examples: list[Example]) -> np.ndarray:
    """Hashed ids of the single words, and of their prefixes, whose weight is held at zero.

    Identity terms and pronouns: a group's name (or "she", "they") on its own says nothing
    about toxicity; only the words around it may, and swaps spread what those contexts learn
    over every group of an axis. The most common words of the benign encyclopedic sentences
    (train split): left free, "when", "come", "real", "all" learn the register of the offensive
    tweets, and quotations by Black musicians and athletes were tagged twice as often as those
    by white ones. The words of the benign_identity group names ("socialism", "sewing
    occupations"): the identity lexicon has no political ideologies or professions, and
    hateful forum posts argue about socialism, so the word alone raised the scores of
    encyclopedic sentences about it. Word pairs stay free, so "fuck you" and "shut up" still
    count. Prefixes are frozen too, in every word that shares them: left free, "<musl" would
    learn from "muslims" in hateful text what the word itself may not.
    """
    lex = identity_lexicon()
    toks = {w for e in lex.entries for w in words(e.term)}
    doc_freq: dict[str, int] = {}
    for ex in examples:
        if ex.source == "benign_identity" and ex.split == "train":
            for t in set(normalize(ex.text)):
                doc_freq[t] = doc_freq.get(t, 0) + 1
    common = sorted(doc_freq, key=lambda t: (-doc_freq[t], t))[:COMMON_WORDS_FROZEN]
    toks.update(common)
    toks.update(w for ex in examples if ex.source == "benign_identity"
                for w in words(ex.group.split("/")[-1].replace("_", " ").lower()))
    hashed = np.array([_token_hash(t) for t in sorted(toks)]
                      + [g for t in sorted(toks) for g in _prefix_hash(t)],
                      dtype=np.uint64) & _MASK
    return np.unique(hashed).astype(np.int64)


def fit(texts, labels, weights, frozen: np.ndarray, l2: float = L2, max_iter: int = 300):
    """Weighted logistic regression by L-BFGS, the ``frozen`` feature weights kept at zero.

    Deterministic for the same inputs: sums are numpy's (no threaded BLAS reduction) and the
    sparse products run in one thread.
    """
    from scipy.optimize import minimize

    X = _design(texts)
    w_sum = weights.sum()

    def loss_grad(theta):
        w, b = theta[:-1], theta[-1]
        z = X @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        # log(1 + e^z) - y z, written to stay finite for large |z|
        loss = (weights * (np.logaddexp(0.0, z) - labels * z)).sum() / w_sum
        loss += 0.5 * l2 * float(np.sum(w * w))
        r = weights * (p - labels) / w_sum
        grad = np.empty_like(theta)
        grad[:-1] = X.T @ r + l2 * w
        grad[frozen] = 0.0
        grad[-1] = r.sum()
        return loss, grad

    theta0 = np.zeros(X.shape[1] + 1)
    res = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter})
    return res.x[:-1], float(res.x[-1])


def f1_at_share(pred: np.ndarray, toxic: np.ndarray,
                share: float = EXPECTED_TOXIC_SHARE) -> dict[str, float]:
    """Precision, recall and F1 of ``pred`` with the data reweighted to ``share`` toxic."""
    w_pos = share / max(toxic.sum(), 1)
    w_neg = (1.0 - share) / max((~toxic).sum(), 1)
    tp = float((pred & toxic).sum()) * w_pos
    fp = float((pred & ~toxic).sum()) * w_neg
    precision = tp / max(tp + fp, 1e-12)
    recall = tp / max(toxic.sum() * w_pos, 1e-12)
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-12)}


def choose_threshold(scores: np.ndarray, examples: list[Example],
                     max_benign: float = MAX_BENIGN_TAGGED) -> tuple[float, dict]:
    """The lowest threshold (0.05 to 0.95 by 0.01) whose benign tagged share, averaged over
    the benign sources, is at most ``max_benign``; with its metrics on ``examples``.

    Why a fixed benign cost rather than the best F1: F1 over hate + offensive is set by the
    19k offensive tweets, which any threshold catches, and it picked thresholds that gave
    hateful recall away to tag a few fewer benign tweets. Why averaged over sources: the
    splits hold them in different proportions (valid keeps 10% of the Wikipedia sentences,
    test 40%), and a pooled share would move with that mix.
    """
    labels = np.array([e.label for e in examples])
    sources = np.array([e.source for e in examples])
    benign = [(sources == s) & (labels == "benign")
              for s in sorted(set(sources[labels == "benign"]))]
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    tagged = [float(np.mean([(scores[m] >= t).mean() for m in benign])) if benign else 0.0
              for t in grid]
    ok = [t for t, b in zip(grid, tagged) if b <= max_benign]
    threshold = float(ok[0] if ok else grid[-1])
    pred = scores >= threshold
    metrics = {
        "benign_tagged_mean_over_sources": tagged[list(grid).index(threshold)],
        "hate_recall": float(pred[labels == "hate"].mean()) if (labels == "hate").any() else 0.0,
        "offensive_recall": (float(pred[labels == "offensive"].mean())
                             if (labels == "offensive").any() else 0.0),
        **{f"{k}_at_{EXPECTED_TOXIC_SHARE:.0%}_toxic": v
           for k, v in f1_at_share(pred, labels != "benign").items()},
    }
    return threshold, metrics


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` with fixed zip timestamps, so that retraining gives identical bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    path.write_bytes(buf.getvalue())


def train(data_dir: Path | str = DEFAULT_DATA, out: Path | str = MODEL_PATH,
          books_dir: Path | str = DEFAULT_BOOKS) -> dict:
    """Train, choose the threshold on valid, write ``out`` (.npz) and its ``.json``."""
    out = Path(out)
    examples = load_examples(data_dir, books_dir)
    texts, labels, weights = training_set(examples, "train")
    frozen = frozen_feature_ids(examples)
    w, b = fit(texts, labels, weights, frozen, l2=L2)
    weights16 = w.astype(np.float16)
    model = ToxicityModel(weights16.astype(np.float32), b, 0.5, {})
    valid = [ex for ex in examples if ex.split == "valid"]
    threshold, valid_metrics = choose_threshold(model.score_texts([ex.text for ex in valid]),
                                                valid)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_npz(out, {"weights": weights16, "bias": np.array([b], dtype=np.float32)})
    meta = {
        "kind": "hashed word+pair+prefix logistic regression",
        "feature_version": FEATURE_VERSION,
        "hash_bits": HASH_BITS,
        "chunk_words": CHUNK_WORDS,
        "threshold": threshold,
        "threshold_rule": "lowest threshold tagging at most "
                          f"{MAX_BENIGN_TAGGED:.1%} of benign text on the valid split, "
                          "averaged over the benign sources",
        "l2": L2,
        "hate_weight": HATE_WEIGHT,
        "prefixes": f"first {PREFIX_LETTERS} letters of longer words",
        "prose_windows_per_book": PROSE_WINDOWS_PER_BOOK,
        "valid_metrics": {k: round(v, 4) for k, v in valid_metrics.items()},
        "seed": SEED,
        "splits": {k: list(v) for k, v in SPLITS.items()},
        "offensive_fortune_categories": sorted(OFFENSIVE_FORTUNES),
        "train_examples": len(texts),
        "train_toxic": int(labels.sum()),
        "frozen_features": int(len(frozen)),
        "frozen_rule": f"identity terms, pronouns, the {COMMON_WORDS_FROZEN} commonest words "
                       "of the benign_identity train split, the words of its group names, "
                       "and their prefixes",
        "data_sha256": data_fingerprint(data_dir, books_dir),
        "model_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n",
                                        encoding="utf-8")
    _load.cache_clear()
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.toxicity",
                                     description="Train the shipped toxicity classifier.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="retrain from the labelled toxicity data")
    t.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the four .jsonl files")
    t.add_argument("--books", default=str(DEFAULT_BOOKS),
                   help="folder of plain-text books: benign prose windows")
    t.add_argument("--out", default=str(MODEL_PATH), help="model .npz path (.json beside it)")
    s = sub.add_parser("score", help="print P(toxic) of each line of standard input")
    s.add_argument("--model", default=str(MODEL_PATH))
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            meta = train(args.data, args.out, args.books)
            print(json.dumps({k: meta[k] for k in ("threshold", "valid_metrics",
                                                    "train_examples")}))
        else:
            model = load_model(args.model)
            lines = sys.stdin.read().splitlines()
            for line, p in zip(lines, model.score_texts(lines)):
                print(f"{p:.4f}\t{line}")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
