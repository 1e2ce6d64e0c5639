"""Our compiled lid.176 against fastText itself: same labels, same probabilities, same sample."""
from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

from core.errors import UsageError
from pipeline.langfilter import langid, lid176
from pipeline.langfilter.langid import sample_text

# Strings that have broken tokenizers: separators fastText splits on and Unicode spaces it does
# not, its own markers, scripts without spaces, marks that render as nothing, long runs.
HOSTILE = [
    "", " ", "\0", "a\0b", "\t\v\f\r", "   leading and trailing   ", "</s>",
    "hello </s> world", "bonjour</s>", "__label__en", "__label__xyz bonjour le monde",
    "x__label__en is a word", "x" * 5000, "é" * 3000, "中文" * 800,
    "今日はとても良い天気なので、私たちは公園に散歩に行きました。",
    "Привет, как дела? Всё хорошо.", "مرحبا بالعالم، كيف حالك اليوم؟",
    "नमस्ते दुनिया, आप कैसे हैं?", "สวัสดีชาวโลก วันนี้อากาศดีมาก",
    "\u202eevil text reversed\u202c and more", "zero\u200bwidth\u200dspaces\ufeff here",
    "non\u00a0breaking\u00a0spaces and\u3000ideographic", "line\u2028separator\u2029para",
    "emoji 😀🎉👍🏽 and flags 🇩🇪🇫🇷", "combining e\u0301e\u0301 a\u030a",
    "ｆｕｌｌｗｉｄｔｈ １２３ ｔｅｘｔ", "٣٤٥ Arabic-Indic digits ٦", "\x1c\x1d\x1e\x1f unit seps",
    "--verbose -x 12 /usr/bin/ls 0x1F {a=b} 3.14", "a" + "\u0300" * 500,
    "\U0001d7ce\U0001d7cf mathematical digits", "tab\tseparated\tvalues\tin\ta\tline",
]


def fuzz_strings(n: int, seed: int, surrogates: bool = False) -> list[str]:
    """Random strings over an alphabet with every character class the sample distinguishes."""
    alphabet = (list("abcdefghij XYZ-_/()=<>[]{}|@#$%^&*+~`0123456789.,;:!?'\"\\")
                + list("\n\t\r\v\f\0\u00a0\u2028\u3000\u200b\u202e")
                + list("éßøąčяжλ中文字日本語한국어ｱｲ１２ａｂ٣٤\u0301😀\U0001d7ce"))
    if surrogates:
        alphabet.append("\ud800")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.choice([0, 1, 2, 5, 20, 80, 300, 1500])
        out.append("".join(rng.choice(alphabet) for _ in range(length)))
    return out


@pytest.fixture(scope="module")
def ours():
    return langid.lid()


@pytest.fixture(scope="module")
def fasttext_model():
    return langid.model()


def fasttext_predict(ft, texts):
    labels, probs = [], []
    for text in texts:
        label, prob = ft.predict(text, k=1)
        labels.append(label[0][len("__label__"):])
        probs.append(float(prob[0]))
    return labels, np.array(probs)


def assert_same_as_fasttext(ours, ft, texts):
    model, _ = ours
    labels, probs = model.predict(texts)
    want_labels, want_probs = fasttext_predict(ft, texts)
    got = [model.labels[i] for i in labels]
    wrong = [(t[:60], g, w) for t, g, w in zip(texts, got, want_labels) if g != w]
    assert not wrong, f"{len(wrong)} labels differ from fastText, e.g. {wrong[:3]}"
    np.testing.assert_allclose(probs, want_probs, rtol=0, atol=1e-4)


def man_pages(shared_data):
    path = shared_data / "multilingual" / "manpages_l10n.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def test_same_as_fasttext_on_every_man_page_sample(ours, fasttext_model, shared_data):
    samples = [sample_text(t, 3, 300) for t in man_pages(shared_data)]
    assert_same_as_fasttext(ours, fasttext_model, samples)


def test_same_as_fasttext_on_whole_man_pages(ours, fasttext_model, shared_data):
    """Every 10th page whole, folded to one line: thousands of tokens per prediction."""
    pages = [t.replace("\n", " ") for t in man_pages(shared_data)[::10]]
    assert_same_as_fasttext(ours, fasttext_model, pages)


def test_same_as_fasttext_on_hostile_and_random_strings(ours, fasttext_model):
    # fastText's Python predict refuses a newline; its C++ reads up to the first, as ours does
    texts = [t.replace("\n", " ") for t in HOSTILE + fuzz_strings(300, seed=1)]
    assert_same_as_fasttext(ours, fasttext_model, texts)


def test_a_newline_ends_the_line(ours):
    model, _ = ours
    labels, probs = model.predict(["Die Katze schläft\nthe cat sleeps all day long",
                                   "Die Katze schläft"])
    assert labels[0] == labels[1] and probs[0] == probs[1]


def test_labels_are_the_176_languages(ours):
    assert set(ours[0].labels) == langid.LID176_LANGUAGES


@pytest.mark.parametrize("windows,window_chars", [(3, 300), (1, 16), (2, 50), (5, 20)])
def test_compiled_sample_equals_sample_text(ours, windows, window_chars):
    _, classes = ours
    long_texts = [" ".join(fuzz_strings(12, seed=s)) for s in range(40)]
    texts = HOSTILE + fuzz_strings(400, seed=2, surrogates=True) + long_texts
    got = lid176.sample(texts, windows, window_chars, classes)
    for text, sample in zip(texts, got):
        assert sample == sample_text(text, windows, window_chars), repr(text[:80])


def test_compiled_sample_equals_sample_text_on_man_pages(ours, shared_data):
    texts = man_pages(shared_data)
    got = lid176.sample(texts, 3, 300, ours[1])
    differ = [i for i, (t, s) in enumerate(zip(texts, got)) if s != sample_text(t, 3, 300)]
    assert not differ, f"{len(differ)} samples differ, first page {differ[:1]}"


def test_predict_sampled_is_predict_of_the_sample(ours):
    model, classes = ours
    texts = HOSTILE + fuzz_strings(100, seed=3)
    labels, probs = model.predict_sampled(texts, 3, 300, classes)
    want_labels, want_probs = model.predict([sample_text(t, 3, 300) for t in texts])
    assert (labels == want_labels).all() and (probs == want_probs).all()


def test_character_classes_follow_pythons_regex(ours):
    classes = ours[1]
    space, token, special = lid176.SPACE, lid176.TOKEN, lid176.SPECIAL
    assert classes[ord(" ")] == space and classes[ord("\u3000")] == space
    assert classes[ord("\u00a0")] == space and classes[ord("\x1f")] == space
    assert classes[ord("\u200b")] == token  # zero width, but not white space to Python
    assert classes[ord("a")] == token and classes[ord("中")] == 0
    assert classes[ord("7")] == token | special and classes[ord("/")] == token | special
    assert classes[ord("１")] == special  # a full-width digit is a digit, but not a TOKEN
    assert classes[ord("٣")] == token | special and classes[0x1D7CE] == token | special


def test_batch_forms_agree(ours):
    model, classes = ours
    texts = ["The cat sleeps on the sofa.", None, "Die Katze schläft.", "", "猫在沙发上睡觉。"]
    want = model.predict_sampled(texts, 3, 300, classes)
    arr = pa.array(texts)
    forms = [arr, arr.cast(pa.large_string()), pa.chunked_array([arr[:2], arr[2:]]),
             pa.array(["skipped"] + texts)[1:]]
    for form in forms:
        got = model.predict_sampled(form, 3, 300, classes)
        assert (got[0] == want[0]).all() and (got[1] == want[1]).all(), form.type
    empty = model.predict_sampled([], 3, 300, classes)
    assert empty[0].shape == (0,) and empty[1].shape == (0,)


def test_a_lone_surrogate_does_not_fail_the_batch(ours):
    model, classes = ours
    labels, _ = model.predict_sampled(["broken \ud800 text", "The cat sleeps."], 3, 300,
                                      classes)
    assert model.labels[labels[1]] == "en"


def test_invalid_utf8_in_an_arrow_column_is_read_not_overrun(ours):
    model, classes = ours
    junk = bytes(range(128, 256)) * 200 + b" \xff\xfe " + b"\x80" * 10000
    arr = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(
        np.array([0, len(junk), len(junk) + 12], np.int32).tobytes()),
        pa.py_buffer(junk + b"The cat sat.")])
    labels, probs = model.predict_sampled(arr, 3, 300, classes)
    assert labels.shape == (2,) and np.isfinite(probs).all()


def test_loader_rejects_a_damaged_model(tmp_path):
    with open(langid.model_path(), "rb") as f:
        blob = f.read()
    for cut in (0, 3, 8, 40, 70, 100, 5000, 459271, 459300, 900000, len(blob) - 1):
        path = tmp_path / f"cut{cut}.ftz"
        path.write_bytes(blob[:cut])
        with pytest.raises(UsageError, match="not a usable fastText model"):
            lid176.Lid176(path)
    damaged = {"magic": b"\0\0\0\0" + blob[4:], "version": blob[:4] + b"\x63\0\0\0" + blob[8:],
               "trailing": blob + b"\0"}
    for name, data in damaged.items():
        path = tmp_path / f"{name}.ftz"
        path.write_bytes(data)
        with pytest.raises(UsageError, match=f"{path}.*not a usable fastText model"):
            lid176.Lid176(path)
    with pytest.raises(UsageError, match="cannot read fastText model"):
        lid176.Lid176(tmp_path / "missing.ftz")
