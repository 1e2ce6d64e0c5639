"""The clean stage's rules on plain strings: each rule passes one document and fails another,
normalisation, which languages a rule applies to, and the Arrow batch function.

Most rule tests run the rule alone (``single_rule_config``), so a failure names the rule
under test rather than whichever rule happens to come first.
"""
from __future__ import annotations

import importlib.util
import json
import random
from collections import Counter
from functools import cache

import pyarrow as pa
import pytest
from conftest import REPO

from pipeline.clean.rules import (
    RULE_SETTINGS,
    CleanConfig,
    clean_batch,
    clean_document,
    is_unspaced,
    normalize_text,
    single_rule_config,
)

PROSE = """\
The old harbour town wakes slowly when the fishing boats return before dawn.
Traders carry baskets of silver fish up the narrow streets towards the market square.
Children run between the stalls while their parents argue about the price of bread.
By noon the heat settles over the rooftops and most of the shops close their shutters.

In the evening the fishermen gather at the tavern to share stories about the sea.
Some of them remember storms that sank whole fleets and changed the shape of the coast.
Others only want to drink quietly and watch the lights of the ships on the horizon.
Nobody in the town can say exactly when the first harbour wall was built.

Historians believe that the stones were brought from a quarry in the northern hills.
The records of the parish mention repairs after a flood in the winter of that year.
Visitors who come in summer often stay longer than they had planned to."""


@cache
def plain():
    """``bench/clean_baseline.py``, the same rules written the plain way (loaded by path: the
    repository root need not be on sys.path)."""
    path = REPO / "bench" / "clean_baseline.py"
    spec = importlib.util.spec_from_file_location("clean_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reason(text: str, rule: str | None = None, lang: str | None = "en", **settings) -> str | None:
    """The reason ``text`` is rejected (None: kept), by ``rule`` alone or by every rule."""
    base = CleanConfig(**settings)
    cfg = single_rule_config(rule, base) if rule else base
    return clean_document(text, lang, cfg)[1]


def kept_text(text: str, lang: str | None = "en", **settings) -> str:
    cleaned, why = clean_document(text, lang, CleanConfig(**settings))
    assert why is None, why
    return cleaned


def words(n: int, seed: int = 0) -> str:
    """``n`` distinct-looking words in sentences of 12, one sentence a line."""
    rng = random.Random(seed)
    vocab = ["river", "stone", "market", "window", "garden", "letter", "winter", "silver",
             "harbour", "evening", "journey", "teacher", "village", "morning", "kitchen",
             "mountain", "library", "picture", "station", "weather", "blanket", "lantern"]
    out = [rng.choice(vocab) + str(i % 7 or "") for i in range(n)]
    lines = [" ".join(out[i:i + 12]) + "." for i in range(0, n, 12)]
    return "\n".join(line[0].upper() + line[1:] for line in lines)


# ---------------------------------------------------------------------------------------------
# The whole chain


def test_prose_passes_every_rule():
    assert kept_text(PROSE) == PROSE


def test_every_rule_passes_prose_alone():
    for rule in RULE_SETTINGS:
        assert reason(PROSE, rule) is None, rule


def test_rejections_name_the_first_rule_that_fails():
    assert reason("") == "quality:empty"
    assert reason(" \n\t \x00 ") == "quality:empty"
    for tiny in ("a", ".", "ab", "..", "a\nb", "…", "x\n\ny"):
        assert reason(tiny) is not None
    assert reason(words(30)) == "quality:gopher_word_count"
    assert reason("Too short.") == "quality:gopher_top_2gram"  # as in datatrove: 2 words, 1 2-gram
    headings = words(240).replace(".", "")
    assert reason(headings, lang=None) == "quality:fineweb_line_punct"


# ---------------------------------------------------------------------------------------------
# Normalisation


def test_ftfy_repairs_mojibake_and_entities():
    assert normalize_text("The cafÃ© was closed.") == "The café was closed."
    assert normalize_text("Fish &amp; chips") == "Fish & chips"
    assert normalize_text("\ufeffByte order mark") == "Byte order mark"


def test_curly_quotes_and_cjk_punctuation_are_left_alone():
    text = "“Quoted,” she said — it’s fine. 你好，世界。ﬁne"
    assert normalize_text(text) == text


def test_control_characters_go_but_tab_and_newline_stay():
    assert normalize_text("a\x00b\x07c\td\x0be\nf\x7fgh") == "abc\tde\nfgh"
    # C1 controls are mojibake to ftfy (Windows-1252 read as Latin-1); without it, they go.
    assert normalize_text("f\x9fg") == "f\u0178g"
    assert normalize_text("f\x9fg", CleanConfig(ftfy=False)) == "fg"


def test_nfc():
    assert normalize_text("cafe\u0301") == "caf\u00e9"


def test_whitespace():
    assert normalize_text("a   b  \t c   \nd\r\ne\rf") == "a b c\nd\ne\nf"
    assert normalize_text("a\u00a0b\u2003c\u2028d") == "a b c\nd"
    assert normalize_text("  lead\n\ttab  \n") == "lead\n\ttab"
    assert normalize_text("a\n\nb") == "a\n\nb"  # a paragraph break is kept
    assert normalize_text("a\n \n\t\n  \n\n\nb") == "a\n\n\nb"  # at most two blank lines
    assert normalize_text("a\n\n\n\nb", CleanConfig(max_blank_lines=1)) == "a\n\nb"


@pytest.mark.parametrize("text", [
    "â€œQuotedâ€\x9d text and more",  # UTF-8 read as Windows-1252
    "Ð¿Ñ€Ð¸Ð²ÐµÑ‚ Ð¼Ð¸Ñ€",  # Russian, the same way
    "The word naÃ¯ve and Ã  la carte",
    "Plain ASCII with &lt;tags&gt; and &#8212; entities",
    "Escape \x1b[31mred\x1b[0m codes",
    "Windows-1252 \x93quotes\x94 as C1 controls",
    "Mixed: “fine” quotes, then â€™ broken ones, é and \u00e9",
    "“Only” fine — non-ASCII ’ here… «ok» ½ °C",
])
def test_skipping_ftfy_changes_nothing(text):
    # normalize_text calls ftfy only where one of its fixes can apply; the result must be the
    # one ftfy on every document gives.
    assert normalize_text(text) == plain().normalize(text, CleanConfig())


def test_mojibake_detector_never_matches_ordinary_punctuation():
    # normalize_text skips ftfy's detector on text whose only non-ASCII characters are this
    # punctuation: no string of them and ASCII (one character of each class the detector's
    # pattern tells apart) of up to three characters may match; longer patterns need others.
    from ftfy.badness import BADNESS_RE

    from pipeline.clean.rules import _ORDINARY_PUNCTUATION

    alphabet = list("aZ0_ \n\t.,?!-(") + list(_ORDINARY_PUNCTUATION)
    for a in alphabet:
        for b in alphabet:
            assert not BADNESS_RE.search(a + b)
            for c in alphabet:
                assert not BADNESS_RE.search(a + b + c), a + b + c


# ---------------------------------------------------------------------------------------------
# Gopher repetition


def test_duplicate_paragraphs():
    assert reason(PROSE, "gopher_dup_paragraphs") is None
    paragraphs = PROSE.split("\n\n")
    text = "\n\n".join(paragraphs + [paragraphs[0]] * 2)
    assert reason(text, "gopher_dup_paragraphs") == "quality:gopher_dup_paragraphs"


def test_duplicate_paragraph_characters():
    long_paragraph = words(120, seed=1).replace("\n", " ")
    short = [f"Short paragraph number {i} here." for i in range(12)]
    text = "\n\n".join([long_paragraph, *short, long_paragraph])  # 1 of 14 repeated
    assert reason(text, "gopher_dup_paragraphs") is None
    assert reason(text, "gopher_dup_paragraph_chars") == "quality:gopher_dup_paragraph_chars"


def test_duplicate_lines():
    text = PROSE.replace("\n\n", "\n") + "\nRead more" * 8
    assert reason(PROSE, "gopher_dup_lines") is None
    assert reason(text, "gopher_dup_lines") == "quality:gopher_dup_lines"


def test_duplicate_line_characters():
    line = words(60, seed=2).replace("\n", " ")
    text = "\n".join([line, *(f"Line {i} of the list." for i in range(10)), line])
    assert reason(text, "gopher_dup_lines") is None
    assert reason(text, "gopher_dup_line_chars") == "quality:gopher_dup_line_chars"


def test_top_ngrams():
    assert reason(PROSE, "gopher_top_2gram") is None
    spam = PROSE + "\n" + " ".join(["buy now"] * 80) + "."
    assert reason(spam, "gopher_top_2gram") == "quality:gopher_top_2gram"
    # A repeated 3-gram that is over 18% of the text while its 2-grams stay under 20%.
    filler = words(300, seed=3)
    phrase_text = filler + "\n" + " ".join(f"red big car{i % 2 and '' or ''} w{i}"
                                           for i in range(110))
    assert reason(phrase_text, "gopher_top_2gram") is None
    assert reason(phrase_text, "gopher_top_3gram") == "quality:gopher_top_3gram"


def test_top_ngram_ignores_edge_punctuation():
    # "Price:" and "Price" are the same word to the n-gram rules, as to a tokenizer.
    lines = [f"Sale Price: ${100 + i}.{i % 10}0 only today" for i in range(60)]
    assert reason("\n".join(lines), "gopher_top_2gram") == "quality:gopher_top_2gram"


def test_duplicated_ngrams():
    assert reason(PROSE, "gopher_dup_5gram") is None
    sentence = "the quick brown fox jumps over the lazy dog every single day"
    text = words(200, seed=4) + "\n" + " and ".join([sentence] * 8) + "."
    assert reason(text, "gopher_dup_5gram") == "quality:gopher_dup_5gram"
    assert reason(text, "gopher_dup_10gram") == "quality:gopher_dup_10gram"


# ---------------------------------------------------------------------------------------------
# Gopher quality


def test_word_count():
    assert reason(words(50), "gopher_word_count") is None
    assert reason(words(49), "gopher_word_count") == "quality:gopher_word_count"
    assert reason(words(300), "gopher_word_count", max_words=200) == "quality:gopher_word_count"
    # Punctuation standing alone is not a word.
    assert reason(words(45) + " — — — — — — ... ...", "gopher_word_count") == \
        "quality:gopher_word_count"


def test_mean_word_length():
    assert reason(PROSE, "gopher_mean_word_length") is None
    short = "\n".join("a an i o u ax by " * 3 + "ok." for _ in range(5))
    assert reason(short, "gopher_mean_word_length") == "quality:gopher_mean_word_length"
    long = " ".join(["incomprehensibilities"] * 30 + ["characteristically"] * 30) + "."
    assert reason(long, "gopher_mean_word_length") == "quality:gopher_mean_word_length"


def test_hash_and_ellipsis_ratios():
    assert reason(PROSE, "gopher_symbol_ratio") is None
    tags = PROSE + "\n" + " ".join(f"#tag{i}" for i in range(30))
    assert reason(tags, "gopher_symbol_ratio") == "quality:gopher_hash_ratio"
    trailing = PROSE + "\n" + " ".join(f"and then{i}..." for i in range(30))
    assert reason(trailing, "gopher_symbol_ratio") == "quality:gopher_ellipsis_ratio"


def test_bullet_lines():
    bullets = "\n".join(f"- item number {i} in the list" for i in range(20))
    assert reason(bullets, "gopher_bullet_lines") == "quality:gopher_bullet_lines"
    assert reason(bullets.replace("- ", "• "), "gopher_bullet_lines") == \
        "quality:gopher_bullet_lines"
    assert reason(bullets + "\n" + PROSE, "gopher_bullet_lines") is None


def test_ellipsis_lines():
    teasers = "\n".join(f"Read the story about number {i} and..." for i in range(10))
    assert reason(teasers + "\n" + PROSE, "gopher_ellipsis_lines") == \
        "quality:gopher_ellipsis_lines"
    assert reason(PROSE, "gopher_ellipsis_lines") is None


def test_alphabetic_words():
    table = "\n".join(" ".join(str(i * j) for j in range(12)) + " total" for i in range(8))
    assert reason(table, "gopher_alpha_words") == "quality:gopher_alpha_words"
    # Punctuation attached to words does not make non-words: datatrove's spaCy tokens would
    # count every comma and full stop here as a word without a letter.
    punctuated = "\n".join("Well, yes; no: maybe, perhaps, (surely) not, \"never\"!" for _ in
                           range(10))
    assert reason(punctuated, "gopher_alpha_words") is None


def test_stop_words():
    no_stop = words(80)
    assert reason(no_stop, "gopher_stop_words") == "quality:gopher_stop_words"
    assert reason(no_stop + " The river and", "gopher_stop_words") is None  # any case
    assert reason(no_stop + " thereby andante", "gopher_stop_words") == \
        "quality:gopher_stop_words"  # whole words only


# ---------------------------------------------------------------------------------------------
# C4


def test_lorem_ipsum():
    assert reason(PROSE, "c4_lorem_ipsum") is None
    text = PROSE + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit."
    assert reason(text, "c4_lorem_ipsum") == "quality:c4_lorem_ipsum"


def test_curly_brace():
    assert reason(PROSE, "c4_curly_brace") is None
    code = PROSE + "\nint main() { return 0; }"
    assert reason(code, "c4_curly_brace") == "quality:c4_curly_brace"
    # As in C4, a line that the word rules drop anyway does not reject the page.
    assert reason(PROSE + "\n{", "c4_curly_brace") is None


def test_line_rules_remove_lines():
    text = "\n".join([
        "Home",  # fewer than 3 words
        PROSE,
        "Please enable JavaScript to view the comments powered by Disqus.",
        "This website uses cookies to improve your experience.",
        "Read our Privacy Policy and Terms of Use before you continue.",
        "x" * 1001 + " is a very long word indeed.",
    ])
    stats = Counter()
    cleaned, why = clean_document(text, "en", CleanConfig(), line_stats=stats)
    assert why is None
    assert cleaned == PROSE
    assert {k for k in stats if k.endswith(".lines")} == {
        "c4_few_words.lines", "c4_javascript.lines", "c4_policy.lines", "c4_long_word.lines"}
    assert stats["c4_policy.lines"] == 2


def test_terminal_punctuation_rule_when_switched_on():
    text = PROSE + "\nA line without a full stop at its end"
    assert kept_text(text) == text  # off by default, as FineWeb runs C4
    assert kept_text(text, c4_drop_no_terminal_punct=True) == PROSE


def test_citations_are_removed():
    text = PROSE.replace("market square.", "market square[12] and the church[edit].")
    assert "[12]" not in kept_text(text)
    assert "square and the church." in kept_text(text)


def test_too_few_sentences_and_nothing_left():
    four = "\n".join(f"This is sentence number {i} of four." for i in range(4))
    assert reason(four, "c4_too_few_sentences") == "quality:c4_too_few_sentences"
    assert reason(four.replace("\n", " "), "c4_too_few_sentences") == \
        "quality:c4_too_few_sentences"
    five = four + "\nAnd here comes the fifth one."
    assert reason(five, "c4_too_few_sentences") is None
    assert reason("Home\nAbout us\nContact", "c4_too_few_sentences") == \
        "quality:empty_after_lines"


def wrap(text: str, width: int = 70) -> str:
    """Paragraphs of ``text`` hard-wrapped at ``width``, as a Gutenberg book is."""
    paragraphs = []
    for paragraph in text.split("\n\n"):
        lines, line = [], ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        paragraphs.append("\n".join(lines + [line]))
    return "\n\n".join(paragraphs)


def test_wrapped_sentence_tail_is_kept():
    # A width at which the first paragraph's last word ends up alone on its line.
    width = next(w for w in range(60, 80)
                 if len(wrap(PROSE, w).split("\n\n")[0].split("\n")[-1].split()) == 1)
    book = wrap(PROSE, width)
    tail = book.split("\n\n")[0].split("\n")[-1]
    book = book.replace("\n\n", "\n\nCHAPTER II\n\n", 1)
    cleaned = kept_text(book)
    assert f"\n{tail}\n" in cleaned
    assert "CHAPTER II" not in cleaned  # a heading, not a tail: C4 drops it
    # Treating every line as a paragraph, as C4 and FineWeb do, drops the tail too.
    assert f"\n{tail}\n" not in kept_text(book, wrapped_max_line_chars=0)


# ---------------------------------------------------------------------------------------------
# FineWeb


def test_line_punctuation():
    assert reason(PROSE, "fineweb_line_punct") is None
    headings = "\n".join(f"Heading number {i} without any stop" for i in range(40))
    first_paragraph = PROSE.split("\n\n")[0]  # 4 lines that end in a full stop
    assert reason(headings + "\n" + first_paragraph, "fineweb_line_punct") == \
        "quality:fineweb_line_punct"
    quoted = "\n".join(f'He said it was number {i}."' for i in range(20))
    assert reason(quoted, "fineweb_line_punct") is None  # a closing quote after the stop


def test_hard_wrapped_paragraph_counts_once():
    wrapped = wrap(PROSE.replace("\n\n", " ").replace("\n", " "))
    lines = wrapped.split("\n")
    assert sum(line.endswith(".") for line in lines) / len(lines) < 0.12
    assert reason(wrapped, "fineweb_line_punct") is None
    assert reason(wrapped, "fineweb_line_punct", wrapped_max_line_chars=0) == \
        "quality:fineweb_line_punct"


def test_short_lines():
    assert reason(PROSE, "fineweb_short_lines") is None
    short = "\n".join(f"Item {i} is here." for i in range(30))
    assert reason(short + "\n" + PROSE, "fineweb_short_lines") == "quality:fineweb_short_lines"


def test_duplicated_line_characters():
    assert reason(PROSE, "fineweb_dup_line_chars") is None
    repeated = PROSE + "\nShare this article with your friends and family."
    repeated += "\nShare this article with your friends and family."
    assert reason(repeated, "fineweb_dup_line_chars") == "quality:fineweb_dup_line_chars"


def test_list_ratio():
    assert reason(PROSE, "fineweb_list_ratio") is None
    listing = "\n".join(f"Red apples {i}." for i in range(40))  # 3 words: C4 keeps them
    assert reason(listing, "fineweb_list_ratio") == "quality:fineweb_list_ratio"


# ---------------------------------------------------------------------------------------------
# Languages

CHINESE = ("我们的城市在河边。每天早上，渔船回到港口，商人把鱼运到市场上去卖。孩子们在街上玩，"
           "老人们坐在树下喝茶聊天。到了中午，天气很热，大多数商店都关门休息。晚上，人们聚在一起，"
           "讲述关于大海的故事。有些人记得很多年前的风暴，有些人只想安静地看着远处的灯光。") * 3


def test_stop_words_apply_to_english_only():
    no_stop = words(80)
    assert reason(no_stop, "gopher_stop_words", lang="en") == "quality:gopher_stop_words"
    assert reason(no_stop, "gopher_stop_words", lang="de") is None
    assert reason(no_stop, "gopher_stop_words", lang=None) is None
    assert reason(no_stop, "gopher_stop_words", lang="en_US") == "quality:gopher_stop_words"


def test_unspaced_scripts_skip_word_rules():
    assert is_unspaced(CHINESE, None, CleanConfig())
    assert is_unspaced("anything", "zh_CN", CleanConfig())
    assert not is_unspaced(PROSE, None, CleanConfig())
    assert reason(CHINESE, lang="zh") is None
    assert reason(CHINESE, lang=None) is None
    assert reason(CHINESE, lang="ja") is None
    # Read as English, the same text is a handful of enormous "words".
    assert reason(CHINESE, "gopher_word_count", lang="en") == "quality:gopher_word_count"


def test_unspaced_scripts_keep_line_rules():
    assert reason(CHINESE[:60] + "\n" + CHINESE[60:], "gopher_dup_lines", lang="zh") is None
    lines = [CHINESE[:40]] * 4 + [CHINESE]
    assert reason("\n".join(lines), "gopher_dup_lines", lang="zh") == "quality:gopher_dup_lines"
    assert reason(CHINESE + "{", "c4_curly_brace", lang="zh") == "quality:c4_curly_brace"


# ---------------------------------------------------------------------------------------------
# Batches


def _batch(texts: list[str], metadata: list[str | None], text_type: pa.DataType | None = None):
    n = len(texts)
    return pa.RecordBatch.from_arrays(
        [pa.array([f"doc{i}" for i in range(n)]), pa.array(texts, type=text_type or pa.string()),
         pa.array(["test"] * n), pa.array([None] * n, type=pa.string()),
         pa.array(metadata, type=pa.string())],
        names=["id", "text", "source", "url", "metadata"])


def test_batch_keeps_columns_and_rows():
    dirty = PROSE.replace("harbour", "harbour  ") + "\n\n\n\n\nJavaScript is disabled here."
    texts = [dirty, words(30), words(80), ""]
    metadata = [json.dumps({"lang": "en"}), None, json.dumps({"lang": "en"}), "{}"]
    batch = _batch(texts, metadata, pa.large_string())
    out = clean_batch(batch, CleanConfig())
    assert out.num_rows == batch.num_rows
    assert out.schema.names == ["id", "text", "source", "url", "metadata", "reason"]
    assert out.schema.field("text").type == pa.large_string()
    rows = out.to_pylist()
    assert [r["id"] for r in rows] == ["doc0", "doc1", "doc2", "doc3"]
    assert rows[0]["reason"] is None and rows[0]["text"] == PROSE
    assert rows[1]["reason"] == "quality:gopher_word_count"
    assert rows[1]["text"] == words(30)  # a rejected document keeps its original text
    assert rows[2]["reason"] == "quality:gopher_stop_words"  # lang from metadata
    assert rows[3]["reason"] == "quality:empty"
    assert all(r["metadata"] == m for r, m in zip(rows, metadata))


def test_batch_language_from_lang_column_and_prior_reasons_pass_through():
    batch = _batch([words(80), words(80), "anything"], [None, None, None])
    batch = pa.RecordBatch.from_arrays(
        [*batch.columns, pa.array(["en", "de", None]), pa.array([None, None, "ingest:bad_json"])],
        names=[*batch.schema.names, "lang", "reason"])
    out = clean_batch(batch).to_pylist()
    assert [r["reason"] for r in out] == ["quality:gopher_stop_words", None, "ingest:bad_json"]
    assert out[2]["text"] == "anything"
    assert list(out[0]) == ["id", "text", "source", "url", "metadata", "lang", "reason"]


def test_empty_batch():
    out = clean_batch(_batch([], []))
    assert out.num_rows == 0 and out.schema.names[-1] == "reason"


def test_single_rule_config_rejects_unknown_rules():
    with pytest.raises(ValueError):
        single_rule_config("no_such_rule")


# ---------------------------------------------------------------------------------------------
# The fast implementation decides as the plain one does


def _plain_and_fast_agree(text: str, lang: str | None, cfg: CleanConfig) -> None:
    assert clean_document(text, lang, cfg) == plain().clean_document(text, lang, cfg)


_TOKENS = [
    *"the of and to with that have be".split(), *words(60, seed=9).split(),
    "Price:", "$19.99", "(see", "above)", "don't", "e-mail", "“quoted”", "—", "...", "…", "-",
    "*", "•", "#tag", "1990", "3.5", "___", "{", "}", "[1]", "[edit]", "lorem", "ipsum",
    "JavaScript", "cookies", "privacy", "policy", "cafÃ©", "â€œ", "&amp;", "\u00a0", "\t",
    "naïve", "e\u0301", "ＡＢＣ", "中文句子。", "ไทย", "x" * 1005, "end.", "end?\"", "ok!",
]


@pytest.mark.parametrize("seed", range(40))
def test_fast_and_plain_implementations_agree_on_random_documents(seed):
    rng = random.Random(seed)
    lines = []
    for _ in range(rng.randint(1, 40)):
        repeat = lines and rng.random() < 0.15
        lines.append(rng.choice(lines) if repeat else " ".join(
            rng.choice(_TOKENS) for _ in range(rng.choice([1, 2, 3, 5, 8, 13, 30]))))
    separators = ["\n"] * 6 + ["\n\n", "\n\n\n\n", " \n", "\r\n"]
    text = lines[0] + "".join(rng.choice(separators) + line for line in lines[1:])
    cfg = CleanConfig(c4_drop_no_terminal_punct=rng.random() < 0.3,
                      min_words=rng.choice([1, 50]), wrapped_max_line_chars=rng.choice([0, 100]))
    _plain_and_fast_agree(text, rng.choice([None, "en", "de", "zh"]), cfg)
    for rule in rng.sample(list(RULE_SETTINGS), 3):
        _plain_and_fast_agree(text, "en", single_rule_config(rule, cfg))


def test_fast_and_plain_implementations_agree_on_real_text(shared_data):
    docs = []
    for path in sorted((shared_data / "books").glob("*.txt"))[:3]:
        text = path.read_text(encoding="utf-8", errors="replace")
        docs += [text[i:i + 30_000] for i in range(0, min(len(text), 150_000), 30_000)]
    with open(shared_data / "web" / "dclm_labeled" / "majority_data.jsonl") as f:
        docs += [json.loads(line)["text"] for line, _ in zip(f, range(60))]
    with open(shared_data / "multilingual" / "manpages_l10n.jsonl") as f:
        pages = [json.loads(line) for line, _ in zip(f, range(400))]
    docs_langs = [(d, "en") for d in docs] + [(p["text"], p["lang"]) for p in pages[::10]]
    for text, lang in docs_langs:
        _plain_and_fast_agree(text, lang, CleanConfig())
