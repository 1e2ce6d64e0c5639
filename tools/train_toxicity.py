"""Train the bias screen's toxicity classifier (``pipeline/screen/toxicity.py`` scores with it).

    python -m tools.train_toxicity train [--data DIR] [--books DIR] [--out MODEL.npz]
    python -m tools.train_toxicity score [--model MODEL.npz] < lines

Not part of the runtime package: a corpus run only loads the shipped model. Training reads
the labelled sets in ``../shared/data/toxicity`` and benign book windows, splits by a hash
of each id (train / valid / test: the test split is the benchmark's, never tuned on), fits a
hashed logistic regression and picks the tag threshold on the valid split.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UsageError
from pipeline.screen.lexicons import identity_lexicon, words
from pipeline.screen.toxicity import (
    _MASK,
    CHUNK_WORDS,
    FEATURE_VERSION,
    HASH_BITS,
    MODEL_PATH,
    PREFIX_LETTERS,
    ToxicityModel,
    _load,
    _prefix_hash,
    _token_hash,
    chunks,
    load_model,
    normalize,
    window_features,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "toxicity"
DEFAULT_BOOKS = DEFAULT_DATA.parent / "books"
L2 = 3e-5
HATE_WEIGHT = 2.0
PROSE_WINDOWS_PER_BOOK = 60
SEED = 20240520
# The threshold is the lowest that tags at most this share of the valid split's benign text,
# each benign source weighing the same. 0.8% is where the word-only model (feature version 1)
# stood at its best-F1 threshold: a better model buys recall at the same cost to benign text.
MAX_BENIGN_TAGGED = 0.008
# Reported beside it: F1 at the share of toxic text we expect in web text, not at the ~45% of
# the labelled sets.
EXPECTED_TOXIC_SHARE = 0.05
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
    from pipeline.screen.lexicons import offensive_lexicon

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
    parser = argparse.ArgumentParser(prog="python -m tools.train_toxicity",
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
