"""Dedup rules on strings: normalisation, hashes, MinHash against datasketch, banding, lines."""
from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest
import xxhash
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32
from datasketch.lsh import _optimal_param

from core.errors import UsageError
from pipeline.dedup import minhash as D
from pipeline.dedup import reference

ALPHABET = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_  \n\t.,;:!?'\"-()"
            "éÉüßøÅ\u00a0«»“”‘’—–…•§©°×÷\u2009\u200b\u3000、。「」日本語中文Ωπ\U0001F600\ufeff\r")


def random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.choice([0, 1, 3, 10, 40, 300])
        out.append("".join(rng.choice(ALPHABET) for _ in range(length)))
    return out


def datasketch_signature(text: str, num_perm: int = 128, seed: int = 1, ngram: int = 5,
                         hashfunc=D.shingle_hash32) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=hashfunc)
    m.update_batch([s.encode("utf-8") for s in D.shingles(text, ngram)])
    return m.hashvalues


@pytest.fixture(scope="module")
def licences(shared_data) -> list[str]:
    with open(shared_data / "neardup" / "licenses.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f][:120]


# --- words -----------------------------------------------------------------------------------


def test_words_lowercase_strip_punctuation_and_spacing():
    assert D.words("Hello,  World!\nIt's  a\u00a0“test”—ok…") == [
        "hello", "world", "its", "a", "testok"]
    assert D.normalize("  A\tb\r\nC  ") == "a b c"
    assert D.words("") == [] and D.words("!!! ...") == []
    assert D.words("snake_case 3.14 日本語、テスト") == ["snake_case", "314", "日本語テスト"]


def _batch_words(texts):
    tok = D.tokenize(texts, lines=True)
    return tok, [tok.word_hash[tok.doc_word[d]:tok.doc_word[d + 1]].tolist()
                 for d in range(len(texts))]


def _hashes(ws):
    return [xxhash.xxh3_64_intdigest(w.encode("utf-8")) for w in ws]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_words_equal_reference_on_random_text(seed):
    texts = random_texts(200, seed)
    _, got = _batch_words(texts)
    assert got == [_hashes(D.words(t)) for t in texts]


def test_batch_words_equal_reference_on_real_text(licences):
    _, got = _batch_words(licences)
    assert got == [_hashes(D.words(t)) for t in licences]


def test_batch_keeps_documents_apart_and_accepts_nulls_and_slices():
    arr = pa.array(["end", "start of b", None, "", "x"])
    tok, got = _batch_words(arr.slice(1))
    assert got == [_hashes(["start", "of", "b"]), [], [], _hashes(["x"])]
    assert list(np.diff(tok.doc_word)) == [3, 0, 0, 1]


def test_word_lines_follow_text_split_on_newlines():
    texts = ["a b\n\n c\r\nd, e\n", "one\ntwo"]
    tok = D.tokenize(texts, lines=True)
    assert tok.word_line.tolist() == [0, 0, 2, 3, 3, 0, 1]


# --- shingles and signatures -------------------------------------------------------------------


def test_shingles_short_document_is_one_shingle():
    assert D.shingles("One two three", 5) == ["one two three"]
    assert D.shingles("", 5) == [""]
    assert D.shingles("a b c d e f", 5) == ["a b c d e", "b c d e f"]


@pytest.mark.parametrize("ngram", [1, 3, 5])
def test_batch_shingle_hashes_equal_scalar_hash(ngram):
    texts = random_texts(150, 7) + ["a b c d e f g h", "x", ""]
    hashes, offsets = D.shingle_hashes(D.tokenize(texts), ngram)
    for d, t in enumerate(texts):
        expected = [D.shingle_hash64(s) for s in D.shingles(t, ngram)]
        assert hashes[offsets[d]:offsets[d + 1]].tolist() == expected


def test_permutations_are_datasketchs():
    a, b = D.permutations(64, 7)
    ref = MinHash(num_perm=64, seed=7).permutations
    assert np.array_equal(a, ref[0]) and np.array_equal(b, ref[1])


@pytest.mark.parametrize("num_perm,seed,ngram", [(128, 1, 5), (64, 42, 3), (256, 3, 1)])
def test_signatures_equal_datasketch_on_random_text(num_perm, seed, ngram):
    texts = random_texts(60, seed)
    sig = D.signatures(texts, num_perm=num_perm, ngram=ngram, seed=seed)
    for d, t in enumerate(texts):
        assert np.array_equal(sig[d], datasketch_signature(t, num_perm, seed, ngram)), d


def test_signatures_equal_datasketch_on_real_text(licences):
    sig = D.signatures(licences)
    for d, t in enumerate(licences):
        assert np.array_equal(sig[d], datasketch_signature(t)), d


def test_signatures_with_datasketch_default_hash(licences):
    """datasketch's own default (sha1_hash32), through the same permutation kernel."""
    texts = licences[:25] + random_texts(25, 9)
    sig = reference.signatures_with(texts, sha1_hash32)
    for d, t in enumerate(texts):
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode("utf-8") for s in D.shingles(t, 5)])
        assert np.array_equal(sig[d], m.hashvalues), d


def test_numpy_kernel_equals_compiled_kernel():
    texts = random_texts(80, 11) + ["word " * 3000]
    hashes, offsets = D.shingle_hashes(D.tokenize(texts), 5)
    h32 = (hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    a, b = D.permutations(128, 1)
    sig_t = np.full((128, len(texts)), 0xFFFFFFFF, np.uint32)
    D._minhash_numpy(D._fmix(h32, 32), offsets, a, b, sig_t)
    assert np.array_equal(sig_t.T, D.minhash(h32, offsets, 128, 1))


def test_signatures_do_not_depend_on_batching():
    texts = random_texts(40, 3) + ["word " * 5000]
    whole = D.signatures(texts)
    parts = np.concatenate([D.signatures(texts[i:i + 7]) for i in range(0, len(texts), 7)])
    assert np.array_equal(whole, parts)


def test_signature_estimates_jaccard():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(2000)]
    a = [rng.choice(vocab) for _ in range(1000)]
    b = list(a)
    for i in rng.sample(range(1000), 40):
        b[i] = rng.choice(vocab)
    ta, tb = " ".join(a), " ".join(b)
    sig = D.signatures([ta, tb], num_perm=256)
    estimate = float(np.mean(sig[0] == sig[1]))
    true = reference.jaccard(D.shingles(ta, 5), D.shingles(tb, 5))
    assert abs(estimate - true) < 0.1


# --- banding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.85, 0.9, 0.95])
@pytest.mark.parametrize("num_perm", [32, 128, 256])
def test_optimal_bands_equal_datasketch(threshold, num_perm):
    assert D.optimal_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_optimal_bands_weights_and_config():
    assert D.optimal_bands(0.8, 128, 0.2, 0.8) == _optimal_param(0.8, 128, 0.2, 0.8)
    assert D.DedupConfig().banding() == (9, 13)
    assert D.DedupConfig(bands=14, rows=8).banding() == (14, 8)
    # The S-curve: rare below the threshold, likely above it.
    assert reference.band_probability(0.5, 9, 13) < 0.01 < 0.99 < reference.band_probability(0.95, 9, 13)


def test_band_keys_are_the_bytes_of_each_band():
    sig = np.arange(2 * 12, dtype=np.uint32).reshape(2, 12)
    keys = D.band_keys(sig, 3, 4).to_pylist()
    assert len(keys) == 6
    assert keys[0] == np.arange(4, dtype="<u4").tobytes()
    assert keys[5] == np.arange(20, 24, dtype="<u4").tobytes()


@pytest.mark.parametrize("kwargs", [{"threshold": 1.5}, {"bands": 4}, {"bands": 20, "rows": 10},
                                    {"keep": "newest"}, {"num_perm": 1},
                                    {"boilerplate_min_docs": 1}])
def test_config_rejects_bad_settings(kwargs):
    with pytest.raises(UsageError):
        D.DedupConfig(**kwargs)


# --- exact hashes and lines --------------------------------------------------------------------


def test_exact_hash_ignores_case_punctuation_and_spacing():
    h = D.exact_hashes(D.tokenize(["Hello, World!", "hello   world", "hello world!!",
                                   "world hello", "helloworld", ""]))
    assert h[0] == h[1] == h[2]
    assert len({h[0], h[3], h[4], h[5]}) == 4
    assert all(len(x) == 16 for x in h)


def test_text_units_equal_scalar_line_hash():
    texts = ["Header line, one\n\nBody text here\nand more\n  header LINE one  \n", "x\ny z",
             "", "\n\n", "a\n* * *\nb"]
    u = D.tokenize(texts, lines=True)
    units = D.text_units(u)
    got = list(zip(units.doc.tolist(), units.first.tolist(), units.last.tolist(),
                   units.words.tolist(), units.hash.tolist(), units.is_line.tolist()))
    expected = []
    for d, t in enumerate(texts):
        lines = t.split("\n")
        block = []
        for i, ln in enumerate(lines + [""]):
            if D.words(ln):
                expected.append((d, i, i, len(D.words(ln)), D.line_hash(ln), True))
                block.append(i)
            else:
                if len(block) > 1:
                    para = "\n".join(lines[block[0]:block[-1] + 1])
                    expected.append((d, block[0], block[-1], len(D.words(para)),
                                     D.line_hash(para), False))
                block = []
    assert got == sorted(expected, key=lambda e: (e[0], e[1], not e[5]))
    # The same normalised line, the same hash; a paragraph re-wrapped, the same hash.
    assert got[0][4] == D.line_hash("header line one")
    assert D.line_hash("Body text here\nand more") == D.line_hash("body text\nhere and more")


def test_strip_lines_cuts_and_tidies_blank_runs():
    text = "HEADER\nmore header\n\n\nTitle\n\nbody one\n\nFOOTER\n\n"
    assert D.strip_lines(text, {0, 1, 8}) == "Title\n\nbody one"
    assert D.strip_lines(text, set()) == text
    assert D.strip_lines("a\n\nB\n\nc", {2}) == "a\n\nc"


def test_strip_boilerplate_batch_rejects_documents_left_too_short():
    cfg = D.DedupConfig(boilerplate_min_words=3)
    header = "Shared header of every page"
    texts = [header + "\nreal content of this page here", header + "\nhi", "untouched text",
             header]
    hb = D.line_hash(header)
    batch = pa.RecordBatch.from_pydict({
        "id": ["a", "b", "c", "d"], "text": texts,
        "boilerplate": pa.array([[hb], [hb], None, [hb]], pa.list_(pa.int64())),
        "reason": pa.array([None, None, None, "dup:exact"], pa.string()),
    })
    (out,) = list(D.strip_boilerplate_batch([batch], cfg=cfg))
    assert out.column("text").to_pylist() == ["real content of this page here", texts[1],
                                              "untouched text", header]
    assert out.column("reason").to_pylist() == [None, "dup:boilerplate", None, "dup:exact"]
    assert out.column("boilerplate_lines").to_pylist() == [1, 1, 0, 0]
    assert "boilerplate" not in out.schema.names


def test_features_batch_lists_bands_and_sets():
    cfg = D.DedupConfig(verify=True)
    batch = pa.RecordBatch.from_pydict({"id": ["a", "b"], "text": ["one two three four five six "
                                                                   "one two three four five six",
                                                                   "x\nx\ny"]})
    (out,) = list(D.features_batch([batch], cfg=cfg, bands=9, rows=13))
    assert out.schema == D.FEATURE_SCHEMA
    rows = out.to_pylist()
    assert [len(r["bands"]) for r in rows] == [9, 9]
    assert all(len(k) == 13 * 4 for r in rows for k in r["bands"])
    assert len(rows[0]["shingles"]) == 6  # 8 windows, 2 repeated
    assert len(rows[1]["lines"]) == 3      # "x" twice, "y", the paragraph "x x y"
    assert rows[0]["length"] == len(batch.column("text")[0].as_py())
