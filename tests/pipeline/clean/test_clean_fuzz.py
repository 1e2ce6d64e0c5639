"""Hostile text through the clean rules (pipeline/clean/rules.py): random Unicode, NUL bytes,
zero-width and bidi controls, C0/C1 controls, lone surrogates from bytes decoded with
surrogateescape, mixed encodings and a 5 MB line. Whatever comes in, nothing raises, every
document is either kept or rejected with a `quality:` reason, and what is kept is valid UTF-8
without the control characters normalisation promises to remove.
"""
from __future__ import annotations

import random
import signal
import unicodedata
from contextlib import contextmanager

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.clean.rules import (
    CleanConfig,
    clean_batch,
    clean_document,
    normalize_text,
)

NUL = "\x00"
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"]
BIDI = ["\u200e", "\u200f", "\u061c", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
BREAKS = ["\r", "\r\n", "\n", "\n\n\n\n\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\t"]
CONTROLS = [chr(c) for c in (*range(0x01, 0x09), *range(0x0E, 0x20), 0x7F, *range(0x80, 0xA0))]
ODD = ["\ufffd", "\ufffe", "\uffff", "\U0010ffff", "\u0301\u0301\u0301", "\U0001f600", "\u4e2d\u6587",
       "\u0e44\u0e17\u0e22", "&amp;", "&#0;", "&#xD800;", "Ã©", "â€™", "{", "}", "[1]", "lorem ipsum",
       "\x1b[31m", "\ud800", "\udfff", "\udc80\udcff"]
NASTY = [NUL, *ZERO_WIDTH, *BIDI, *BREAKS, *CONTROLS, *ODD]
WORDS = [
    "the", "harbour", "town", "wakes", "slowly", "when", "fishing", "boats", "return", "before", "dawn",
    "and", "traders", "carry", "baskets", "of", "silver", "fish", "up", "narrow", "streets", "to",
    "the", "market", "while", "children", "run", "between", "stalls", "with", "their", "parents", "who",
    "argue", "about", "the", "price", "of", "bread", "that"
]

# what normalisation removes: C0 and C1 controls except tab and newline, CR, Unicode line breaks
REMOVED = {chr(c) for c in (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))} | {"\u2028", "\u2029"}
CONFIGS = [CleanConfig(), CleanConfig(ftfy=False), CleanConfig(c4_drop_curly_brace=False, min_words=0)]


def without_surrogates(text: str) -> str:
    """What reaches the clean stage from the readers: they never pass a lone surrogate on."""
    return text.encode("utf-8", "replace").decode("utf-8")


@contextmanager
def hang_guard(seconds: int):
    """Turn a hang into a failure instead of a CI job that never ends (no timing is asserted:
    the limit is far above any normal run)."""
    def stop(*_):
        raise TimeoutError(f"still running after {seconds}s: a hang")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_verdict(text, verdict):
    cleaned, reason = verdict
    assert (cleaned is None) != (reason is None), verdict
    if reason is not None:
        assert isinstance(reason, str) and reason.startswith("quality:") and len(reason) > len("quality:")
        return
    assert isinstance(cleaned, str) and cleaned
    cleaned.encode("utf-8")  # raises on a lone surrogate
    assert not REMOVED & set(cleaned), [c for c in set(cleaned) if c in REMOVED]
    assert cleaned == cleaned.strip() and " \n" not in cleaned
    assert unicodedata.is_normalized("NFC", cleaned)


def surrogateescaped(data: bytes) -> str:
    """Bytes as a reader that kept undecodable bytes would hand them on."""
    return data.decode("utf-8", "surrogateescape")


hostile_chars = st.one_of(st.characters(codec=None), st.sampled_from(NASTY))  # pieces, some longer than one
hostile_text = st.lists(st.one_of(hostile_chars, st.sampled_from(WORDS).map(" {} ".format)), max_size=300).map("".join)


@st.composite
def prose_with_nasties(draw):
    """Prose that passes the rules on its own, with hostile characters dropped into it, so that
    the kept path is fuzzed too and not only the rejections."""
    rng = draw(st.randoms(use_true_random=False))
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                 for _ in range(rng.randint(8, 14))]
    text = "\n".join(" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3))
    chars = list(text)
    for _ in range(draw(st.integers(0, 25))):
        chars.insert(rng.randrange(len(chars) + 1), draw(hostile_chars))
    return "".join(chars)


mixed_encodings = st.lists(
    st.tuples(st.text(max_size=80), st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16-le", "shift_jis",
                                                    "koi8-r", "gb18030"])),
    max_size=6,
).map(lambda parts: surrogateescaped(b"".join(t.encode(enc, "replace") for t, enc in parts)))

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text=st.one_of(hostile_text, prose_with_nasties(), mixed_encodings,
                     st.binary(max_size=600).map(surrogateescaped)),
       lang=st.sampled_from([None, "en", "de", "zh", "ja_JP", "", "xx", "../../etc"]),
       cfg=st.sampled_from(CONFIGS))
def test_clean_document_keeps_or_rejects_with_a_reason(text, lang, cfg):
    check_verdict(text, clean_document(text, lang, cfg))


@FUZZ
@given(text=st.one_of(hostile_text, prose_with_nasties(), st.binary(max_size=600).map(surrogateescaped)),
       cfg=st.sampled_from(CONFIGS))
def test_normalize_text_output_is_clean_and_stable(text, cfg):
    once = normalize_text(text, cfg)
    once.encode("utf-8")
    assert not REMOVED & set(once)
    assert unicodedata.is_normalized("NFC", once)
    assert normalize_text(once, cfg) == once  # a second pass finds nothing left to do


def test_prose_with_nasties_is_often_kept():
    """The generator above reaches the kept path: without this the fuzz would only test rejections."""
    kept = []

    @settings(max_examples=40, deadline=None, database=None)
    @given(prose_with_nasties())
    def collect(text):
        kept.append(clean_document(text, "en")[1] is None)

    collect()
    assert sum(kept) >= len(kept) // 4


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.none(), hostile_text, prose_with_nasties()),
                               st.one_of(st.none(), st.sampled_from(['{"lang": "en"}', '{"lang": 5}', "not json",
                                                                    '{"language": "zh"}', "[1]"])),
                               st.sampled_from([None, None, "ingest:bad_json"])),
                     min_size=1, max_size=12))
def test_clean_batch_answers_for_every_row(rows):
    texts, metas, prior = zip(*rows)
    # an Arrow string column holds UTF-8: what a reader passes on has no lone surrogates
    texts = [t if t is None else without_surrogates(t) for t in texts]
    batch = pa.RecordBatch.from_pydict({"id": [str(i) for i in range(len(rows))], "text": texts,
                                        "metadata": list(metas), "reason": list(prior)})
    out = clean_batch(batch, CleanConfig())
    assert out.num_rows == batch.num_rows
    assert out.schema.names == ["id", "text", "metadata", "reason"]
    for text, before, after, new_text in zip(texts, prior, out.column("reason").to_pylist(),
                                             out.column("text").to_pylist()):
        if before is not None:
            assert (after, new_text) == (before, text)  # an ingest rejection passes unchanged
        elif after is None:
            check_verdict(text, (new_text, None))
        else:
            assert after.startswith("quality:") and new_text == text  # rejected rows keep their text
    out.column("text").validate(full=True)  # valid UTF-8 throughout


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=["ftfy", "no-ftfy"])
@pytest.mark.parametrize("line", ["words", "nul", "zero_width", "bidi", "surrogates", "no_spaces"])
def test_a_5_mb_line_is_answered(line, cfg):
    mb = 5 << 20
    body = {
        "words": ("the harbour wakes slowly. " * (mb // 26)),
        "nul": NUL * mb,
        "zero_width": "\u200b" * (mb // 3),
        "bidi": ("a\u202eb\u202c " * (mb // 8)),
        "surrogates": surrogateescaped(bytes(range(0x80, 0x100)) * (mb // 128)),
        "no_spaces": "x" * mb,
    }[line]
    with hang_guard(300):
        check_verdict(body, clean_document(body, "en", cfg))
        normalize_text(body, cfg)


def varied_prose(lines: int) -> list[str]:
    """Lines of prose the rules keep: seeded shuffles of the words, so nothing repeats much."""
    rng = random.Random(0)
    return [" ".join(rng.sample(WORDS, 14)).capitalize() + ". " + " ".join(rng.sample(WORDS, 12)) + "."
            for _ in range(lines)]


BROKEN = surrogateescaped(b" caf\xe9 \xff\xfe na\xefve.")


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "no-ftfy", "no-curly-rule"])
def test_lone_surrogates_never_reach_a_kept_document(cfg):
    """ftfy replaces lone surrogates (bytes a reader decoded with surrogateescape, or a JSON
    "\\ud800" escape); with ftfy switched off, normalisation must still not let them through."""
    plain = "\n".join(varied_prose(10))
    assert clean_document(plain, "en", cfg)[1] is None
    text = "\n".join(line + BROKEN for line in varied_prose(10))
    cleaned, reason = clean_document(text, "en", cfg)
    assert reason is None and "\ufffd" in cleaned
    check_verdict(text, (cleaned, reason))
