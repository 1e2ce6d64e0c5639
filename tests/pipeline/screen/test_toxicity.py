"""The toxicity classifier: the shipped model, its features, and retraining in one command."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from core.errors import UsageError
from pipeline.screen import toxicity as T
from pipeline.screen.lexicons import identity_lexicon, words
from tools import train_toxicity as TT

BENIGN_ABOUT_GROUPS = [
    "Muslims gather for prayer at the mosque on Friday.",
    "She is a proud lesbian and a teacher.",
    "Black students won the science fair this year.",
    "The Jewish community center hosts a book club.",
    "Gay and lesbian couples can marry in many countries.",
    "My grandmother is an elderly immigrant from Mexico.",
    "Transgender people serve in the military.",
    "He is a deaf artist who paints landscapes.",
]
TOXIC = [
    "You are a fucking idiot and a bitch.",
    "fuck all of you faggots",
    "shut the fuck up you dumb bitch",
]


@pytest.fixture(scope="module")
def model():
    return T.load_model()


def test_shipped_model_is_small_and_documented(model):
    assert T.MODEL_PATH.stat().st_size < 5 * 1024 * 1024
    meta = json.loads(T.META_PATH.read_text())
    assert 0.0 < meta["threshold"] < 1.0 and meta["threshold"] == model.threshold
    assert meta["model_sha256"] == hashlib.sha256(T.MODEL_PATH.read_bytes()).hexdigest()
    assert "valid" in meta["threshold_rule"]
    # Plain arrays: loadable without pickle.
    with np.load(T.MODEL_PATH, allow_pickle=False) as z:
        assert z["weights"].shape == (1 << T.HASH_BITS,)


def test_toxic_text_scores_above_benign_text_about_groups(model):
    benign = model.score_texts(BENIGN_ABOUT_GROUPS)
    toxic = model.score_texts(TOXIC)
    assert (benign < model.threshold).all(), benign
    assert (toxic >= model.threshold).all(), toxic


def test_a_group_name_alone_carries_no_weight(model):
    """Every identity term and pronoun on its own scores exactly the empty-context score."""
    base = 1.0 / (1.0 + np.exp(-model.bias))
    terms = sorted({w for e in identity_lexicon().entries for w in words(e.term)})
    scores = model.score_texts(terms)
    assert np.allclose(scores, base), [t for t, s in zip(terms, scores) if abs(s - base) > 1e-9]


def test_swapping_the_group_barely_moves_the_score(model):
    for template in ("I hate {}", "{} are disgusting animals", "I love {}"):
        s = model.score_texts([template.format(g) for g in
                               ("jews", "muslims", "christians", "blacks", "whites", "asians",
                                "gays", "women", "men")])
        assert s.max() - s.min() < 0.2, (template, s)


def test_documents_score_their_worst_paragraph(model):
    benign = "The committee met on Tuesday to discuss the new library budget.\n\n"
    doc = benign * 5 + "You are a fucking idiot and a bitch, fuck you.\n\n" + benign * 5
    scores = model.score_documents([benign * 10, doc, "", None])
    assert scores[0] < model.threshold <= scores[1]
    assert scores[2] == 0.0 and scores[3] == 0.0


def test_chunks_join_short_paragraphs_and_cap_windows():
    pieces = T.chunks("Hell!\n\nI said we should go home now because it is late and cold.\n\nok")
    assert pieces == [["hell", "i", "said", "we", "should", "go", "home", "now", "because",
                       "it", "is", "late", "and", "cold", "ok"]]
    long = T.chunks(" ".join(["word"] * 150))
    assert [len(p) for p in long] == [50, 50, 50]
    assert T.chunks("you stupid bitch") == [["you", "stupid", "bitch"]]


def test_normalize_removes_tweet_artefacts():
    assert T.normalize("RT @someone: so &amp; cool http://t.co/x #win") == [
        "so", "cool", "win"]
    # Repeated letters are cut when hashed: elongated spellings share a feature.
    assert (T.feature_ids(T.normalize("fuuuuuck")) == T.feature_ids(["fuuck"])).all()


def test_split_is_stable_and_by_proportion():
    splits = [TT.split_of(f"doc/{i}", "default") for i in range(5000)]
    assert splits == [TT.split_of(f"doc/{i}", "default") for i in range(5000)]
    share = {s: splits.count(s) / len(splits) for s in ("train", "valid", "test")}
    assert 0.67 < share["train"] < 0.73 and 0.13 < share["test"] < 0.17
    prose = TT.Example("books/a.txt#3", "x", "benign", "prose", "books/a.txt")
    assert prose.split == TT.split_of("books/a.txt", "prose")


def _tiny_data(root):
    """Four small labelled files and two books, shaped like ../shared/data."""
    tox = root / "toxicity"
    tox.mkdir()
    rows = {
        "davidson_tweets_labelled.jsonl": [
            {"id": f"davidson/{i}", "label": lab, "text": t}
            for i, (lab, t) in enumerate(
                [("offensive", f"you stupid bitch number {k}") for k in range(40)]
                + [("hate", f"kill all those faggots {k}") for k in range(20)]
                + [("neither", f"what a lovely sunny day {k}") for k in range(40)])],
        "stormfront_sentences_labelled.jsonl": [
            {"id": f"sf/{i}", "label": lab, "text": t}
            for i, (lab, t) in enumerate(
                [("hate", f"the jews are vermin {k}") for k in range(20)]
                + [("noHate", f"the meeting is on monday {k}") for k in range(40)]
                + [("idk/skip", "unclear")])],
        "offensive_fortunes_en.jsonl": [
            {"id": f"f/{i}", "category": cat, "text": t}
            for i, (cat, t) in enumerate(
                [("vulgarity", f"shit happens, fuck it {k}") for k in range(20)]
                + [("atheism", "a quotation about god")])],
        "benign_identity_wikipedia.jsonl": [
            {"id": f"w/{i}", "domain": "race", "group": "G", "text": t}
            for i, t in enumerate([f"the muslim scholar wrote {k} books" for k in range(40)])],
    }
    for name, items in rows.items():
        (tox / name).write_text("".join(json.dumps(r) + "\n" for r in items))
    books = root / "books"
    books.mkdir()
    for b in range(2):
        (books / f"b{b}.txt").write_text(
            "\n\n".join(f"It was a calm evening in chapter {k} and the river ran slowly past "
                        "the old mill where the miller sat reading quietly." for k in range(30)))
    return tox, books


@pytest.mark.slow
def test_retrain_in_one_command_is_deterministic(tmp_path):
    tox, books = _tiny_data(tmp_path)
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run / "toxicity.npz"
        assert TT.main(["train", "--data", str(tox), "--books", str(books),
                       "--out", str(out)]) == 0
        outs.append(out)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].with_suffix(".json").read_bytes() == outs[1].with_suffix(".json").read_bytes()
    m = T.load_model(outs[0])
    meta = m.meta
    assert meta["train_examples"] > 100 and "books/*.txt" in meta["data_sha256"]
    assert m.score_texts(["you stupid bitch"])[0] > m.score_texts(["a lovely sunny day"])[0]


def test_missing_training_data_is_exit_2(tmp_path, capsys):
    assert TT.main(["train", "--data", str(tmp_path), "--books", str(tmp_path),
                   "--out", str(tmp_path / "m.npz")]) == 2
    assert "toxicity data not found" in capsys.readouterr().err


@pytest.mark.slow
def test_held_out_hateful_tagged_twice_as_often_as_benign_about_groups(shared_data, model):
    """The issue's bar on the real held-out split (bench/screen.py reports the details)."""
    books = shared_data / "books"
    examples = [e for e in TT.load_examples(shared_data / "toxicity",
                                           books if books.is_dir() else None)
                if e.split == "test"]
    lex = identity_lexicon()
    scores = model.score_texts([e.text for e in examples])
    tagged = scores >= model.threshold

    def share(pred):
        idx = [i for i, e in enumerate(examples) if pred(e)]
        return tagged[idx].mean()

    def names(e):
        return bool(lex.find(words(e.text.lower())))

    benign_named = share(lambda e: e.label == "benign" and names(e))
    assert share(lambda e: e.label == "hate") >= 2 * benign_named
    assert share(lambda e: e.label == "offensive") >= 2 * benign_named
    assert share(lambda e: e.source == "benign_identity") <= 0.01


def test_model_of_another_feature_version_fails_clearly(tmp_path):
    """Weights hashed for other features would score garbage without an error."""
    npz = tmp_path / "old.npz"
    npz.write_bytes(T.MODEL_PATH.read_bytes())
    meta = json.loads(T.META_PATH.read_text())
    meta["feature_version"] = T.FEATURE_VERSION - 1
    npz.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="feature version .*retrain"):
        T.load_model(npz)


def test_inflections_share_a_prefix_feature():
    """An unseen form of a slur still meets the weight its first letters learnt."""
    assert set(T.feature_ids(["faggotry"])) & set(T.feature_ids(["faggots"]))
    assert not set(T.feature_ids(["fag"])) & set(T.feature_ids(["faggots"]))
