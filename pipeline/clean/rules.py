"""The clean stage: repair the text, then drop the lines and documents that are not prose.

The rules and their thresholds are Gopher's (Rae et al. 2021, "Scaling Language Models",
table A1 and §A.1.1), C4's (Raffel et al. 2020 §2.2 and tfds ``c4_utils``) and FineWeb's
(datatrove's filters, the code that built FineWeb), run in FineWeb's order: Gopher repetition,
Gopher quality, C4 lines, FineWeb. A document gets the reason of the first rule it fails.

Where we measure differently from datatrove, on purpose:

- A word is a whitespace-separated token that holds a letter or a digit, as in the Gopher
  paper. datatrove counts spaCy tokens, so every comma and full stop is a "word" without
  letters: its "80% of words contain a letter" rule then drops ordinary prose (12% of
  2,000-word Gutenberg chunks, a quarter of web pages). Tokens made only of punctuation
  ("—", "*", "...") are not words for the word count, the mean word length (letters and
  digits per word) and the hash/ellipsis ratios; they do count against the alphabetic-words
  share, which is what that rule is for
  (menus, tables, separators). The n-gram rules split punctuation off the edges of words, as a
  tokenizer does, so "Price:" repeats "Price".
- Stop words match in any case ("The" is a stop word); datatrove matches lower case only.
- FineWeb's "line ends in punctuation" accepts closing quotes and brackets after the stop
  (``."`` and ``?)`` end a sentence); datatrove does not.
- Hard-wrapped text (books, e-mail) breaks a paragraph over lines; C4's "fewer than 3 words"
  line rule spares the wrapped tail of a sentence, and FineWeb's punctuation ratio counts the
  paragraph once (``wrapped_max_line_chars``; 0 treats every line as a paragraph, as they do).
  Without this, FineWeb's rule drops more than half of 2,000-word Gutenberg chunks and C4's
  cuts the last word off many of their paragraphs.
- Blank lines survive the line rules, so paragraphs survive; datatrove joins kept lines with
  one newline and loses them.

Languages: stop words apply only to ``stop_word_langs`` (English). Scripts written without
spaces between words (``unspaced_langs``: Chinese, Japanese, Thai, …, or, when the language is
unknown, text where such characters are ≥ 30% of the characters) skip every rule that counts
words or measures line length in characters: Gopher word count, mean word length, symbol
ratios, alphabetic words, word n-grams; C4 words per line and word length; FineWeb short lines
and list ratio. Their line, paragraph, punctuation and boilerplate rules still apply.

Speed: a document is split once into lines and paragraphs (``str.split``), and once into
per-character flags (one numpy lookup), from which tokens, n-gram units, per-line facts and
64-bit hashes of every token come as whole-array operations: no rule loops over words in
Python or builds a string per n-gram. ftfy, the slowest step, runs only on text where one of
its fixes can apply. ``bench/clean_baseline.py`` is the same rules written the plain way; the
two agree on every verdict, reason and text (tests and ``bench.clean`` check it).
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from itertools import compress

import ftfy
import numpy as np
import pyarrow as pa
from ftfy.badness import BADNESS_RE, MOJIBAKE_CATEGORIES
from ftfy.chardata import CONTROL_CHARS, HTML_ENTITY_RE

from pipeline.stage.schema import METADATA, REASON, TEXT, stage_batch


@dataclass
class CleanConfig:
    """Every threshold of the clean stage, with its source. Each group of rules has a switch;
    ``RULE_SETTINGS`` gives the values that switch one rule off."""

    # Normalisation.
    ftfy: bool = True  # ftfy 6: mojibake, HTML entities, C1 controls, surrogates
    max_blank_lines: int = 2  # longer runs of blank lines are cut to this many

    # Gopher repetition: Rae et al. 2021 table A1 (datatrove GopherRepetitionFilter defaults).
    gopher_repetition: bool = True
    dup_para_frac: float = 0.30  # duplicate paragraph fraction
    dup_para_char_frac: float = 0.20  # duplicate paragraph character fraction
    dup_line_frac: float = 0.30  # duplicate line fraction
    dup_line_char_frac: float = 0.20  # duplicate line character fraction
    top_2gram_char_frac: float = 0.20  # top 2-gram character fraction
    top_3gram_char_frac: float = 0.18  # top 3-gram character fraction
    top_4gram_char_frac: float = 0.16  # top 4-gram character fraction
    dup_5gram_char_frac: float = 0.15  # duplicate 5-gram character fraction
    dup_6gram_char_frac: float = 0.14  # duplicate 6-gram character fraction
    dup_7gram_char_frac: float = 0.13  # duplicate 7-gram character fraction
    dup_8gram_char_frac: float = 0.12  # duplicate 8-gram character fraction
    dup_9gram_char_frac: float = 0.11  # duplicate 9-gram character fraction
    dup_10gram_char_frac: float = 0.10  # duplicate 10-gram character fraction

    # Gopher quality: Rae et al. 2021 §A.1.1 (datatrove GopherQualityFilter defaults).
    gopher_quality: bool = True
    min_words: int = 50  # "between 50 and 100,000 words"
    max_words: int = 100_000
    min_mean_word_length: float = 3.0  # "mean word length outside 3 to 10 characters"
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1  # "symbol-to-word ratio > 0.1", for # and for ellipsis
    max_bullet_lines_frac: float = 0.9  # "more than 90% of lines starting with a bullet point"
    max_ellipsis_lines_frac: float = 0.3  # "more than 30% ending with an ellipsis"
    min_alpha_words_frac: float = 0.8  # "80% of words contain at least one alphabetic char"
    min_stop_words: int = 2  # "at least two of the following English words"
    stop_words: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")
    stop_word_langs: tuple[str, ...] = ("en",)  # the list is English: other languages skip it

    # C4: Raffel et al. 2020 §2.2, tfds c4_utils, datatrove C4QualityFilter as FineWeb ran it.
    c4: bool = True
    # C4 keeps only lines ending in terminal punctuation; FineWeb turned it off
    # (datatrove examples/fineweb.py) because it removes most of any text that is not one
    # paragraph per line: every hard-wrapped line of a book, lists, headings.
    c4_drop_no_terminal_punct: bool = False
    c4_min_words_per_line: int = 3  # "only retained lines that contained at least 3 words"
    c4_max_word_length: int = 1000  # tfds c4_utils: a line with a longer "word" is dropped
    c4_drop_javascript_lines: bool = True  # "removed any line with the word Javascript"
    c4_drop_policy_lines: bool = True  # tfds c4_utils: terms of use, privacy/cookie policy
    c4_drop_lorem_ipsum: bool = True  # "removed any page where the phrase lorem ipsum appeared"
    c4_drop_curly_brace: bool = True  # "removed any pages that contained a curly bracket"
    c4_remove_citations: bool = True  # tfds c4_utils: strip [1], [edit], [citation needed]
    c4_min_sentences: int = 5  # "discarded any page with fewer than 5 sentences"

    # FineWeb: datatrove FineWebQualityFilter defaults, the code that built FineWeb.
    fineweb: bool = True
    fineweb_min_line_punct_frac: float = 0.12  # share of lines ending in terminal punctuation
    fineweb_short_line_chars: int = 30  # a "short line" has at most this many characters
    fineweb_max_short_lines_frac: float = 0.67
    # Characters in duplicated lines over all characters. The FineWeb blog post says 0.1; the
    # code that built FineWeb (datatrove) uses 0.01, and so do we.
    fineweb_max_dup_line_char_frac: float = 0.01
    fineweb_max_newline_word_ratio: float = 0.3  # list-like documents: newlines per word

    # Ours: hard-wrapped text (books, e-mail, RFCs: the longest line is between half this
    # and this) breaks one paragraph over several lines. A line there that ends mid-sentence,
    # followed by a line whose first word would not have fitted after it, continues onto that
    # line: C4's "3 words" rule spares the continuation (the tail of a sentence) and
    # FineWeb's punctuation ratio counts the paragraph once. 0 treats every line as a
    # paragraph, as C4 and FineWeb do.
    wrapped_max_line_chars: int = 100

    # Languages written without spaces between words (fastText codes).
    unspaced_langs: tuple[str, ...] = ("zh", "ja", "th", "lo", "km", "my", "bo")


# The settings each document rule reads, and the values that switch them off. A rule here is
# what a reason names ("quality:gopher_top_2gram"), except gopher_symbol_ratio: its reasons
# are gopher_hash_ratio and gopher_ellipsis_ratio, one setting for both as in Gopher.
_OFF = float("inf")
RULE_SETTINGS: dict[str, dict[str, object]] = {
    "gopher_dup_paragraphs": {"dup_para_frac": _OFF},
    "gopher_dup_paragraph_chars": {"dup_para_char_frac": _OFF},
    "gopher_dup_lines": {"dup_line_frac": _OFF},
    "gopher_dup_line_chars": {"dup_line_char_frac": _OFF},
    **{f"gopher_top_{n}gram": {f"top_{n}gram_char_frac": _OFF} for n in (2, 3, 4)},
    **{f"gopher_dup_{n}gram": {f"dup_{n}gram_char_frac": _OFF} for n in range(5, 11)},
    "gopher_word_count": {"min_words": 0, "max_words": 2**62},
    "gopher_mean_word_length": {"min_mean_word_length": 0.0, "max_mean_word_length": _OFF},
    "gopher_symbol_ratio": {"max_symbol_word_ratio": _OFF},
    "gopher_bullet_lines": {"max_bullet_lines_frac": _OFF},
    "gopher_ellipsis_lines": {"max_ellipsis_lines_frac": _OFF},
    "gopher_alpha_words": {"min_alpha_words_frac": 0.0},
    "gopher_stop_words": {"min_stop_words": 0},
    "c4_lorem_ipsum": {"c4_drop_lorem_ipsum": False},
    "c4_curly_brace": {"c4_drop_curly_brace": False},
    "c4_too_few_sentences": {"c4_min_sentences": 0},
    "fineweb_line_punct": {"fineweb_min_line_punct_frac": 0.0},
    "fineweb_short_lines": {"fineweb_max_short_lines_frac": _OFF},
    "fineweb_dup_line_chars": {"fineweb_max_dup_line_char_frac": _OFF},
    "fineweb_list_ratio": {"fineweb_max_newline_word_ratio": _OFF},
}


def single_rule_config(rule: str, base: CleanConfig | None = None) -> CleanConfig:
    """``base`` (default settings if none) with every document rule switched off but ``rule``;
    normalisation and C4's line rules still run. What one rule removes on its own, and how
    the benchmark compares rules one by one with datatrove's."""
    if rule not in RULE_SETTINGS:
        raise ValueError(f"unknown rule {rule!r}; known: {', '.join(RULE_SETTINGS)}")
    off = {k: v for name, settings in RULE_SETTINGS.items() if name != rule
           for k, v in settings.items()}
    return replace(base or CleanConfig(), **off)


# ---------------------------------------------------------------------------------------------
# Normalisation

# datatrove's FTFYFormatter settings: repair encodings, but do not impose a house style that a
# model then never sees (curly quotes, full-width CJK punctuation and ligatures are real text).
_FTFY_CONFIG = ftfy.TextFixerConfig(
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    explain=False,
)
# Per BMP character, for the ftfy gate: _FTFY_ONLY, a character only ftfy handles (C1
# controls, ESC of terminal escapes, surrogates, the non-ASCII format characters it deletes);
# _MOJIBAKE, a non-ASCII character that can be part of mojibake: any but the punctuation
# ftfy's detector treats as ordinary (curly quotes, dashes, ellipsis, no-break space, ...).
# No string of ASCII and that punctuation matches the detector (tests check every one of up
# to three characters; its longer patterns all need other characters).
_FTFY_ONLY, _MOJIBAKE = 1, 2
_ORDINARY_PUNCTUATION = "".join(MOJIBAKE_CATEGORIES[name] for name in
                                ("common", "start_punctuation", "end_punctuation"))
_FTFY_GATE = np.zeros(0x10000, dtype=np.uint8)
_FTFY_GATE[0x80:] = _MOJIBAKE
_FTFY_GATE[[ord(c) for c in _ORDINARY_PUNCTUATION]] = 0
_FTFY_GATE[[0x1B, *range(0x80, 0xA0), *range(0xD800, 0xE000),
            *(c for c in CONTROL_CHARS if 0x7F < c < 0x10000)]] |= _FTFY_ONLY
_MOJIBAKE_WINDOW = np.ones(7, dtype=np.int8)

_UNICODE_BREAK_RE = re.compile("[\u2028\u2029\x85]")
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ASCII_CONTROLS = dict.fromkeys([*range(0x09), *range(0x0B, 0x20), 0x7F])
_UNICODE_SPACE_RE = re.compile("[\xa0\u1680\u2000-\u200a\u202f\u205f\u3000]")
# Per BMP character: does one of the three patterns above match it?
_NEEDS_REPLACING = np.array(
    [any(p.match(chr(i)) for p in (_UNICODE_BREAK_RE, _CONTROL_RE, _UNICODE_SPACE_RE))
     for i in range(0x10000)], dtype=bool)
# Written with a literal prefix, which re finds with a fast scan: several times faster
# than " {2,}" on prose with a space between every two words.
_SPACES_RE = re.compile("  +")
_SPACES_TABS_RE = re.compile(r"[ \t]{2,}")


def _needs_ftfy(text: str) -> bool:
    """Whether any enabled ftfy fix could change ``text``; skipping ftfy otherwise is exact:
    ftfy would do only what ``normalize_text`` does anyway (line breaks, control characters,
    NFC).

    Its mojibake detector is one large regex, slow on long text. Every match is at most 7
    characters long and holds a _MOJIBAKE character with at most 2 others before the first
    and 2 after the last, so searching just the characters near _MOJIBAKE ones finds whatever
    a search of the whole text finds; in most text there are none.
    """
    if "&" in text and HTML_ENTITY_RE.search(text):
        return True
    if text.isascii():
        return "\x1b" in text
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    gate = _FTFY_GATE[np.minimum(codes, 0xFFFF)]  # astral characters count as _MOJIBAKE
    if (gate & _FTFY_ONLY).any():
        return True
    mojibake = (gate & _MOJIBAKE).view(np.int8)
    if not mojibake.any():
        return False
    # Keep character i when a _MOJIBAKE character lies in [i - 4, i + 2].
    near = np.convolve(mojibake, _MOJIBAKE_WINDOW)[2 : codes.size + 2] > 0
    return BADNESS_RE.search(codes[near].tobytes().decode("utf-32-le")) is not None


@lru_cache(maxsize=8)
def _blank_lines(max_blank_lines: int) -> tuple[str, re.Pattern, str]:
    """(a run one newline too long, the pattern of such runs, what replaces them)."""
    keep = "\n" * (max(0, max_blank_lines) + 1)
    return keep + "\n", re.compile(keep + "\n+"), keep


def _cut_blank_lines(text: str, cfg: CleanConfig) -> str:
    too_long, pattern, keep = _blank_lines(cfg.max_blank_lines)
    return pattern.sub(keep, text) if too_long in text else text


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def normalize_text(text: str, cfg: CleanConfig | None = None) -> str:
    """ftfy (when it can change something), Unix line breaks, no control characters except
    tab and newline, NFC, single spaces, no trailing spaces, at most ``max_blank_lines`` blank
    lines in a row; paragraph breaks are kept. Each step is skipped when a cheap test shows
    it has nothing to do."""
    cfg = cfg or CleanConfig()
    if cfg.ftfy and _needs_ftfy(text):
        text = ftfy.fix_text(text, _FTFY_CONFIG)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii():
        text = text.translate(_ASCII_CONTROLS)  # str.translate has a fast path for ASCII
    else:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        if ((codes >= 0xD800) & (codes <= 0xDFFF)).any():
            # Lone surrogates (from JSON escapes) cannot be written as UTF-8; ftfy replaces
            # them too, but it may be switched off.
            text = _SURROGATE_RE.sub("\ufffd", text)
        if _NEEDS_REPLACING[np.minimum(codes, 0xFFFF)].any():  # else three scans for nothing
            text = _UNICODE_BREAK_RE.sub("\n", text)
            text = _CONTROL_RE.sub("", text)
            text = _UNICODE_SPACE_RE.sub(" ", text)
            # A control character inside mojibake ("\x8dÃ©") hides it from ftfy until it is
            # removed: fix again so that normalising twice changes nothing.
            if cfg.ftfy and _needs_ftfy(text):
                text = ftfy.fix_text(text, _FTFY_CONFIG)
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
    return _tidy_spaces(text, cfg)


def _tidy_spaces(text: str, cfg: CleanConfig) -> str:
    """Runs of spaces and tabs → one space; no space at a line's end; blank lines cut."""
    if "\t" in text:
        text = _SPACES_TABS_RE.sub(" ", text).replace("\t\n", "\n")
    elif "  " in text:
        text = _SPACES_RE.sub(" ", text)
    # Runs are single now, so one space or tab at most ends a line.
    text = text.replace(" \n", "\n")
    return _cut_blank_lines(text, cfg).strip()


# ---------------------------------------------------------------------------------------------
# Characters

def _expand_ranges(spec: str) -> str:
    """``"a-d!"`` → ``"abcd!"``: the compact way to write long character lists below."""
    out, i = [], 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.extend(map(chr, range(ord(spec[i]), ord(spec[i + 2]) + 1)))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


# Unicode's Sentence_Terminal characters: datatrove's TERMINAL_PUNCTUATION, FineWeb's stops.
_SENTENCE_TERMINALS = _expand_ranges(
    "!.?\u0589\u061d-\u061f\u06d4\u0700-\u0702\u07f9\u0837\u0839\u083d\u083e\u0964\u0965"
    "\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4-\u17d6\u17d9\u17da\u1803\u1809"
    "\u1944\u1945\u1aa8-\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f"
    "\u203c\u203d\u2047-\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7"
    "\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d-\uaa5f\uaaf0\uaaf1\uabeb\ufe52\ufe56"
    "\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57\U00010f55-\U00010f59"
    "\U00010f86-\U00010f89\U00011047\U00011048\U000110be-\U000110c1\U00011141-\U00011143"
    "\U000111c5\U000111c6\U000111cd\U000111de\U000111df\U00011238\U00011239\U0001123b"
    "\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2\U000115c3\U000115c9-\U000115d7"
    "\U00011641\U00011642\U0001173c-\U0001173e\U00011944\U00011946\U00011a42\U00011a43"
    "\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43\U00011f44"
    "\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98\U0001bc9f"
    "\U0001da88"
)
_CLOSERS = "\"')]\u00bb\u2019\u201d"  # may follow a sentence's stop: ." ?) !’
_BULLETS = "-*\u2022\u2023\u25e6\u2043\u25aa\u25cf"  # - * • ‣ ◦ ⁃ ▪ ●
_C4_END_PUNCT = ".?!\"'"  # C4's terminal punctuation (tfds c4_utils)

# One byte of flags per character, looked up for a whole document at once with numpy.
_SPACE, _LETTER, _DIGIT, _TERMINAL, _CLOSER, _BULLET, _C4_END = 1, 2, 4, 8, 16, 32, 64
_WORD_CHAR = _LETTER | _DIGIT


def _char_flags(c: str) -> int:
    """Letters include combining marks (they belong to the word they sit on); digits include
    every number character and ``_``, as ``\\w`` does; anything else not a space is punctuation
    or a symbol."""
    if c in " \t\n":
        return _SPACE
    major = unicodedata.category(c)[0]
    flags = _LETTER if major in "LM" else _DIGIT if major == "N" or c == "_" else 0
    for chars, flag in ((_SENTENCE_TERMINALS, _TERMINAL), (_CLOSERS, _CLOSER),
                        (_BULLETS, _BULLET), (_C4_END_PUNCT, _C4_END)):
        if c in chars:
            flags |= flag
    return flags


_BMP_FLAGS = np.array([_char_flags(chr(i)) for i in range(0x10000)], dtype=np.uint8)


# Polynomial string hashing modulo 2**64: an odd base (the 64-bit FNV prime) is invertible,
# so a substring's hash can be shifted back to start at power 0.
_HASH_BASE = 0x100000001B3
_hash_power_tables = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))


def _hash_powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``base**i`` and ``base**-i`` for ``i < n`` (at least), grown once and reused."""
    global _hash_power_tables
    powers, inverse = _hash_power_tables
    if powers.size < n:
        size = max(n, 2 * powers.size)
        powers, inverse = (
            np.concatenate((np.ones(1, dtype=np.uint64),
                            np.cumprod(np.full(size - 1, b, dtype=np.uint64))))
            for b in (_HASH_BASE, pow(_HASH_BASE, -1, 2**64))
        )
        _hash_power_tables = (powers, inverse)
    return powers, inverse


# ---------------------------------------------------------------------------------------------
# One document, split once


class _View:
    """A normalised document's splits and per-character, per-token and per-line statistics,
    computed once (on first use) and read by every rule.

    After normalisation the only whitespace is space, tab and newline, so the tokens found
    here are exactly those of ``str.split()``; nothing here makes a Python object per token.
    """

    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")

    @cached_property
    def _chars(self) -> tuple[np.ndarray, np.ndarray]:
        """Code points and their flags."""
        if self.text.isascii():
            codes = np.frombuffer(self.text.encode("ascii"), dtype=np.uint8)
            return codes, _BMP_FLAGS[codes]
        codes = np.frombuffer(self.text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        if codes.max() <= 0xFFFF:
            return codes, _BMP_FLAGS[codes]
        flags = _BMP_FLAGS[np.minimum(codes, 0xFFFF)]
        astral = np.flatnonzero(codes > 0xFFFF)
        flags[astral] = [_char_flags(chr(c)) for c in codes[astral].tolist()]
        return codes, flags

    @cached_property
    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end offsets of the whitespace-separated tokens."""
        space = (self._chars[1] & _SPACE) != 0
        # The text is stripped, so it starts with a token and ends with one: the places
        # where space and non-space meet are a token's end, the next one's start, and so on.
        change = np.flatnonzero(space[1:] != space[:-1]) + 1
        return (np.concatenate(([0], change[1::2])),
                np.concatenate((change[0::2], [space.size])))

    @cached_property
    def ngram_units(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end offsets of the units word n-grams are made of: a token's punctuation
        at either edge comes off one character at a time, as a tokenizer splits it (``Price:``
        is ``Price`` and ``:``, ``"Yes!"`` is four units), so punctuation does not make a
        repeated phrase look new; a token without a letter or digit is all single characters."""
        flags = self._chars[1]
        starts, ends = self.tokens
        word = (flags & _WORD_CHAR) != 0
        words_upto = np.cumsum(word, dtype=np.int32)  # word characters in text[: i + 1]
        words_before = np.concatenate(([0], words_upto))  # ... in text[:i]
        # A punctuation character is at an edge when its token has no word character before
        # it, or none after it.
        punct_at = np.flatnonzero(~word & ((flags & _SPACE) == 0))
        token = np.searchsorted(starts, punct_at, side="right") - 1
        leading = words_before[punct_at] == words_before[starts[token]]
        trailing = words_upto[punct_at] == words_upto[ends[token] - 1]
        edge = leading | trailing
        # The rest of a token, between its edges, is one unit, if it holds a word character.
        n_tokens = starts.size
        first = starts + np.bincount(token[leading], minlength=n_tokens)
        last = ends - 1 - np.bincount(token[trailing & ~leading], minlength=n_tokens)
        has_core = words_upto[ends - 1] > words_before[starts]
        unit_starts = np.sort(np.concatenate((punct_at[edge], first[has_core])))
        unit_ends = np.sort(np.concatenate((punct_at[edge] + 1, last[has_core] + 1)))
        return unit_starts, unit_ends

    def hashes(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """A 64-bit polynomial hash of each substring ``text[start:end]``, from prefix sums
        over the whole text: equal substrings get equal hashes, no Python string per token."""
        prefix = self._hash_prefix
        _, inverse_powers = _hash_powers(prefix.size)
        return (prefix[ends] - prefix[starts]) * inverse_powers[starts]

    @cached_property
    def _hash_prefix(self) -> np.ndarray:
        codes = self._chars[0]
        powers, _ = _hash_powers(codes.size + 1)
        prefix = np.zeros(codes.size + 1, dtype=np.uint64)
        np.cumsum(codes * powers[: codes.size], out=prefix[1:])
        return prefix

    @cached_property
    def token_counts(self) -> tuple[int, int, int, int]:
        """(tokens, tokens with a letter, tokens with a letter or digit, punctuation chars)."""
        flags = self._chars[1]
        starts = self.tokens[0]
        if starts.size == 0:
            return 0, 0, 0, 0
        has_letter = np.logical_or.reduceat((flags & _LETTER) != 0, starts)
        has_word_char = np.logical_or.reduceat((flags & _WORD_CHAR) != 0, starts)
        punct = int(np.count_nonzero((flags & (_SPACE | _WORD_CHAR)) == 0))
        return (starts.size, int(np.count_nonzero(has_letter)),
                int(np.count_nonzero(has_word_char)), punct)

    @cached_property
    def newlines(self) -> np.ndarray:
        return np.flatnonzero(self._chars[0] == 10)

    @cached_property
    def line_table(self) -> dict[str, np.ndarray]:
        """Per line: ``length``, ``tokens``, the length of its first token (``first_word``),
        and whether it ends a sentence (``terminal``,
        FineWeb's stops with closing quotes allowed), ends in C4's punctuation (``c4_end``),
        ends in an ellipsis (``ellipsis``) or starts with a bullet (``bullet``)."""
        codes, flags = self._chars
        newlines = self.newlines
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [codes.size]))
        length = ends - starts
        nonempty = length > 0
        # The text is stripped: the first and last lines are not empty, so ends - 1 is a valid
        # index (an empty line's is the newline before it); the two characters before it only
        # count where the line is long enough.
        last = ends - 1
        last_flags, last_codes = flags[last], codes[last]
        stop_flags = last_flags
        if (last_flags & _CLOSER).any():
            stop = last.copy()
            for _ in range(3):  # step back over closing quotes and brackets
                stop -= ((flags[stop] & _CLOSER) != 0) & (stop > starts)
            stop_flags = flags[stop]
        ellipsis = (last_codes == 0x2026) | (
            (last_codes == 46) & (length >= 3) & (codes[np.maximum(last - 1, 0)] == 46)
            & (codes[np.maximum(last - 2, 0)] == 46))
        first = np.minimum(starts + ((flags[starts] & _SPACE) != 0), last)
        token_starts, token_ends = self.tokens
        first_token = np.searchsorted(token_starts, starts)
        tokens = np.searchsorted(token_starts, ends) - first_token
        first_token = np.minimum(first_token, token_starts.size - 1)
        return {
            "length": length,
            "tokens": tokens,
            "first_word": np.where(tokens > 0, token_ends[first_token] - token_starts[first_token],
                                   0),
            "terminal": nonempty & ((stop_flags & _TERMINAL) != 0),
            "c4_end": nonempty & ((last_flags & _C4_END) != 0) & ~ellipsis,
            "ellipsis": nonempty & ellipsis,
            "bullet": nonempty & ((flags[first] & _BULLET) != 0),
        }


def _wraps_onto_next(table: dict[str, np.ndarray], cfg: CleanConfig) -> np.ndarray:
    """Per line: it ends mid-sentence in hard-wrapped text, and the next line's first word is
    what did not fit on it (the width being the document's longest line)."""
    length = table["length"]
    wraps = np.zeros(length.size, dtype=bool)
    width = int(length.max()) if length.size else 0
    if cfg.wrapped_max_line_chars // 2 <= width <= cfg.wrapped_max_line_chars > 0:
        wraps[:-1] = (~table["terminal"][:-1] & (length[:-1] > 0) & (length[1:] > 0)
                      & (length[:-1] + 1 + table["first_word"][1:] > width))
    return wraps


# ---------------------------------------------------------------------------------------------
# Language applicability

_UNSPACED_RUN_RE = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3000-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]+"
)


def _base_lang(lang: str | None) -> str | None:
    """``zh_CN`` / ``pt-BR`` / ``EN`` → ``zh`` / ``pt`` / ``en``."""
    if not lang:
        return None
    return re.split(r"[-_]", lang.strip(), maxsplit=1)[0].lower() or None


def is_unspaced(text: str, lang: str | None, cfg: CleanConfig) -> bool:
    """Whether ``text`` is in a script written without spaces between words: by its language
    when known, else by its characters."""
    if lang:
        return _base_lang(lang) in cfg.unspaced_langs
    if text.isascii():
        return False
    return sum(map(len, _UNSPACED_RUN_RE.findall(text))) >= 0.3 * len(text)


# ---------------------------------------------------------------------------------------------
# Gopher repetition

_PARAGRAPH_SPLIT_RE = re.compile("\n\n+")  # a literal prefix: 10x faster than \n{2,}
# An odd 64-bit multiplier for polynomial hashes of word n-grams (wraps modulo 2**64).
_NGRAM_MULT = np.uint64(0x9E3779B97F4A7C15)


def _duplicates(items: list[str]) -> tuple[int, int, int]:
    """(items, repeated items, characters in repeats), ignoring empty strings: the counts of
    datatrove's ``find_duplicates`` without a Python loop over the items."""
    unique = set(items)
    n_items = len(items) - items.count("")
    n_unique = len(unique) - ("" in unique)
    return n_items, n_items - n_unique, sum(map(len, items)) - sum(map(len, unique))


def _gopher_lines_paragraphs(view: _View, cfg: CleanConfig) -> str | None:
    text = view.text
    paragraphs = _PARAGRAPH_SPLIT_RE.split(text) if "\n\n" in text else [text]
    n_paras, dup_paras, dup_chars = _duplicates(paragraphs)
    if dup_paras > cfg.dup_para_frac * n_paras:
        return "quality:gopher_dup_paragraphs"
    if dup_chars > cfg.dup_para_char_frac * len(text):
        return "quality:gopher_dup_paragraph_chars"
    n_lines, dup_lines, dup_chars = _duplicates(view.lines)
    if dup_lines > cfg.dup_line_frac * n_lines:
        return "quality:gopher_dup_lines"
    if dup_chars > cfg.dup_line_char_frac * len(text):
        return "quality:gopher_dup_line_chars"
    return None


def _gopher_ngrams(view: _View, cfg: CleanConfig) -> str | None:
    """Top 2-4-gram and duplicated 5-10-gram character fractions, counted as datatrove does.

    Its words are the view's n-gram units. An n-gram is a 64-bit polynomial hash of its units'
    hashes, extended from the (n-1)-gram hash in one numpy step. An n-gram can only repeat
    where its first n-1 units repeat, so each step keeps just those positions: after the
    2-grams, the arrays are small.
    """
    starts, unit_ends = view.ngram_units
    n = starts.size
    if n < 2:
        return None
    ids = view.hashes(starts, unit_ends)
    lengths = unit_ends - starts
    ends = np.zeros(n + 1, dtype=np.int64)  # text length of units [0, i)
    lengths.cumsum(out=ends[1:])
    text_chars = len(view.text)
    top_fracs = (cfg.top_2gram_char_frac, cfg.top_3gram_char_frac, cfg.top_4gram_char_frac)
    dup_fracs = (cfg.dup_5gram_char_frac, cfg.dup_6gram_char_frac, cfg.dup_7gram_char_frac,
                 cfg.dup_8gram_char_frac, cfg.dup_9gram_char_frac, cfg.dup_10gram_char_frac)
    positions = np.arange(n - 1)  # where each k-gram in ``hashes`` starts
    hashes = ids[:-1] * _NGRAM_MULT + ids[1:]
    for k in range(2, 11):
        if n < k:
            return None
        group, first, counts = _group(hashes, stable=k <= 4)
        repeated = counts[group] > 1
        if k <= 4:
            # The most frequent n-gram, the first seen among equals (Counter.most_common),
            # as the length of its words joined by spaces times its count.
            best = int(counts.max()) if counts.size else 1
            pos = int(positions[first[counts == best].min()]) if best > 1 else 0
            chars = (int(ends[pos + k] - ends[pos]) + k - 1) * best
            if chars > top_fracs[k - 2] * text_chars:
                return f"quality:gopher_top_{k}gram"
            if k == 4 and _covered_chars(positions[repeated], 4, lengths) <= min(
                    dup_fracs) * text_chars:
                # A repeated 5-gram or longer is made of repeated 4-grams, and the duplicate
                # rules count at most the characters those cover: none of them can fire.
                return None
        else:
            if not repeated.any():
                return None  # no repeated k-gram, so no longer one either
            at = positions[repeated]
            chars = _greedy_repeated_chars(at, group[repeated], ends[at + k] - ends[at], k)
            if chars > dup_fracs[k - 5] * text_chars:
                return f"quality:gopher_dup_{k}gram"
        # Only the k-grams that repeat, and have a word after them, go on to k + 1.
        keep = repeated & (positions + k < n)
        positions = positions[keep]
        hashes = hashes[keep] * _NGRAM_MULT + ids[positions + k]
    return None


def _covered_chars(positions: np.ndarray, k: int, lengths: np.ndarray) -> int:
    """Characters of the units that the k-grams starting at ``positions`` cover."""
    n = lengths.size
    depth = (np.bincount(positions, minlength=n + 1)
             - np.bincount(positions + k, minlength=n + 1)).cumsum()[:n]
    return int(lengths[depth > 0].sum())


def _group(values: np.ndarray, stable: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique`` with inverse, first index and counts, minus its overhead: per value its
    group; per group its size and (with ``stable``) the index of its first occurrence."""
    order = values.argsort(kind="stable" if stable else None)
    ordered = values[order]
    new_group = np.empty(values.size, dtype=bool)
    new_group[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    group_sorted = new_group.cumsum() - 1
    group = np.empty(values.size, dtype=np.intp)
    group[order] = group_sorted
    first = order[new_group] if stable else None
    return group, first, np.bincount(group_sorted)


def _greedy_repeated_chars(positions: np.ndarray, groups: np.ndarray, lengths: np.ndarray,
                           k: int) -> int:
    """datatrove's ``find_all_duplicate``: walk the words; at an n-gram seen before, count
    its characters (words joined without spaces) and jump past it. Only n-grams occurring
    twice or more can have been seen before, so the walk visits just those positions; at
    every other one it would only have stepped forward by one word."""
    seen: set[int] = set()
    cursor = 0
    chars = 0
    for pos, group, length in zip(positions.tolist(), groups.tolist(), lengths.tolist()):
        if pos < cursor:
            continue
        if group in seen:
            chars += length
            cursor = pos + k
        else:
            seen.add(group)
            cursor = pos + 1
    return chars


# ---------------------------------------------------------------------------------------------
# Gopher quality


@lru_cache(maxsize=8)
def _stop_words_re(stop_words: tuple[str, ...]) -> re.Pattern:
    return re.compile(r"\b(?:%s)\b" % "|".join(map(re.escape, stop_words)), re.I)


def _enough_stop_words(text: str, cfg: CleanConfig) -> bool:
    found: set[str] = set()
    for m in _stop_words_re(tuple(cfg.stop_words)).finditer(text):
        found.add(m.group().lower())
        if len(found) >= cfg.min_stop_words:
            return True
    return False


def _gopher_quality(view: _View, lang: str | None, unspaced: bool,
                    cfg: CleanConfig) -> str | None:
    text = view.text
    n_tokens, n_alpha, n_word_tokens, n_punct = view.token_counts
    if not unspaced:
        n_words = n_word_tokens  # tokens with a letter or a digit: "—" and "..." are not words
        if not cfg.min_words <= n_words <= cfg.max_words or n_words == 0:
            return "quality:gopher_word_count"
        non_space = len(text) - text.count(" ") - text.count("\n") - text.count("\t")
        mean_length = (non_space - n_punct) / n_words  # letters and digits per word
        if not cfg.min_mean_word_length <= mean_length <= cfg.max_mean_word_length:
            return "quality:gopher_mean_word_length"
        if text.count("#") > cfg.max_symbol_word_ratio * n_words:
            return "quality:gopher_hash_ratio"
        if text.count("...") + text.count("…") > cfg.max_symbol_word_ratio * n_words:
            return "quality:gopher_ellipsis_ratio"
    lines = view.line_table
    n_lines = int(np.count_nonzero(lines["length"]))
    if np.count_nonzero(lines["bullet"]) > cfg.max_bullet_lines_frac * n_lines:
        return "quality:gopher_bullet_lines"
    if np.count_nonzero(lines["ellipsis"]) > cfg.max_ellipsis_lines_frac * n_lines:
        return "quality:gopher_ellipsis_lines"
    if not unspaced and n_alpha < cfg.min_alpha_words_frac * n_tokens:
        return "quality:gopher_alpha_words"
    if lang in cfg.stop_word_langs and cfg.min_stop_words > 0:
        if not _enough_stop_words(text, cfg):
            return "quality:gopher_stop_words"
    return None


# ---------------------------------------------------------------------------------------------
# C4 lines

_POLICY_PHRASES = (  # tfds c4_utils / datatrove POLICY_SUBSTRINGS
    "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
    "use cookies",
)
_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
# A sentence ends inside a line: a stop, closing quotes, a space and more text; CJK stops need
# no space after them.
_SENTENCE_END_RE = re.compile(
    "[.!?]+[\"'\u201d\u2019)\\]]*[ \t]+(?=\\S)"
    "|[\u3002\uff01\uff1f]+[\u201d\u300d\u300f\uff09]*(?=\\S)")


def _remove_citations(text: str, cfg: CleanConfig) -> str:
    """C4's ``[1]``, ``[edit]``, ``[citation needed]`` removal, leaving no double spaces."""
    removed = _CITATION_RE.sub("", text)
    return text if len(removed) == len(text) else _tidy_spaces(removed, cfg)


def _lines_containing(lowered_lines: list[str], phrases: tuple[str, ...]) -> np.ndarray:
    return np.fromiter((any(p in line for p in phrases) for line in lowered_lines),
                       dtype=bool, count=len(lowered_lines))


def _c4_lines(view: _View, unspaced: bool, cfg: CleanConfig,
              line_stats: Counter | None) -> tuple[np.ndarray, str | None]:
    """C4's line rules: which lines to keep, or a reason to drop the whole document.

    Lines are judged from the view's per-line arrays; the phrase rules look only at the
    lines of a document that holds the phrase at all. A dropped line is charged to the first
    rule that drops it, in C4's order; lorem ipsum and curly braces reject the document only
    from a line that the word rules keep, as in C4.
    """
    table = view.line_table
    lines = view.lines
    tokens, nonempty = table["tokens"], table["length"] > 0
    drop_rules: list[tuple[str, np.ndarray]] = []
    if not unspaced and cfg.c4_max_word_length > 0 and len(view.text) > cfg.c4_max_word_length:
        starts, ends = view.tokens
        long_starts = starts[ends - starts > cfg.c4_max_word_length]
        if long_starts.size:
            long_word = np.zeros(len(lines), dtype=bool)
            long_word[np.searchsorted(view.newlines, long_starts)] = True
            drop_rules.append(("c4_long_word", long_word))
    if cfg.c4_drop_no_terminal_punct:
        drop_rules.append(("c4_no_terminal_punct", nonempty & ~table["c4_end"]))
    k = cfg.c4_min_words_per_line
    if not unspaced and k > 1:
        few = nonempty & (tokens < k)
        few[1:] &= ~_wraps_onto_next(table, cfg)[:-1]  # the tail of a wrapped sentence
        drop_rules.append(("c4_few_words", few))
    word_rules_drop = np.zeros(len(lines), dtype=bool)
    for _, mask in drop_rules:
        word_rules_drop |= mask

    lowered = view.text.lower()
    lowered_lines = None
    doc_hits = []  # (first line, rule order, reason)
    for enabled, phrase, order, reason in (
        (cfg.c4_drop_lorem_ipsum, "lorem ipsum", 0, "quality:c4_lorem_ipsum"),
        (cfg.c4_drop_curly_brace, "{", 1, "quality:c4_curly_brace"),
    ):
        if enabled and phrase in lowered:
            lowered_lines = lowered_lines or lowered.split("\n")
            hit = np.flatnonzero(_lines_containing(lowered_lines, (phrase,))
                                 & ~word_rules_drop)
            if hit.size:
                doc_hits.append((int(hit[0]), order, reason))
    if doc_hits:
        return np.ones(len(lines), dtype=bool), min(doc_hits)[2]

    if cfg.c4_drop_javascript_lines and "javascript" in lowered:
        lowered_lines = lowered_lines or lowered.split("\n")
        drop_rules.append(("c4_javascript",
                           _lines_containing(lowered_lines, ("javascript",))))
    if cfg.c4_drop_policy_lines and any(p in lowered for p in _POLICY_PHRASES):
        lowered_lines = lowered_lines or lowered.split("\n")
        drop_rules.append(("c4_policy",
                           _lines_containing(lowered_lines, _POLICY_PHRASES)))

    keep = np.ones(len(lines), dtype=bool)
    for rule, mask in drop_rules:
        newly = keep & mask
        if line_stats is not None and newly.any():
            line_stats[rule + ".lines"] += int(np.count_nonzero(newly))
            line_stats[rule + ".chars"] += int(table["length"][newly].sum() + newly.sum())
        keep &= ~mask
    kept_lines = int(np.count_nonzero(keep & nonempty))
    if kept_lines == 0:
        return keep, "quality:empty_after_lines"
    if kept_lines < cfg.c4_min_sentences:
        # Every kept line holds at least one sentence; a few lines may hold more.
        kept_text = "\n".join(compress(lines, keep.tolist()))
        if kept_lines + len(_SENTENCE_END_RE.findall(kept_text)) < cfg.c4_min_sentences:
            return keep, "quality:c4_too_few_sentences"
    return keep, None


# ---------------------------------------------------------------------------------------------
# FineWeb


def _fineweb(view: _View, keep: np.ndarray | None, unspaced: bool,
             cfg: CleanConfig) -> str | None:
    """FineWeb's rules over the lines that C4 kept (``keep``; ``None`` is all of them)."""
    table = view.line_table
    lines = view.lines
    if keep is not None:
        table = {name: values[keep] for name, values in table.items()}
        lines = list(compress(lines, keep.tolist()))
    length = table["length"]
    n_lines = int(np.count_nonzero(length))
    # A hard-wrapped paragraph is one line here: its last line ends the sentence.
    n_paragraph_lines = n_lines - int(np.count_nonzero(_wraps_onto_next(table, cfg)))
    if np.count_nonzero(table["terminal"]) < cfg.fineweb_min_line_punct_frac * n_paragraph_lines:
        return "quality:fineweb_line_punct"
    if not unspaced:
        n_short = np.count_nonzero((length > 0) & (length <= cfg.fineweb_short_line_chars))
        if n_short > cfg.fineweb_max_short_lines_frac * n_lines:
            return "quality:fineweb_short_lines"
    _, _, dup_chars = _duplicates(lines)
    if dup_chars > cfg.fineweb_max_dup_line_char_frac * int(length.sum()):
        return "quality:fineweb_dup_line_chars"
    if not unspaced and n_lines - 1 > cfg.fineweb_max_newline_word_ratio * int(
            table["tokens"].sum()):
        return "quality:fineweb_list_ratio"
    return None


# ---------------------------------------------------------------------------------------------
# Documents and batches


def clean_document(text: str | None, lang: str | None = None, cfg: CleanConfig | None = None,
                   line_stats: Counter | None = None) -> tuple[str | None, str | None]:
    """``(clean text, None)`` for a kept document, ``(None, reason)`` for a rejected one.

    ``lang`` is a fastText code when known (``en``, ``zh_CN``); ``None`` applies only the
    language-neutral rules. ``line_stats``, when given, counts the lines and characters
    removed by each line rule (``c4_few_words.lines``, ``c4_few_words.chars``, …).
    """
    cfg = cfg or CleanConfig()
    if not text:
        return None, "quality:empty"
    text = normalize_text(text, cfg)
    if cfg.c4 and cfg.c4_remove_citations and "[" in text:
        text = _remove_citations(text, cfg)
    if not text:
        return None, "quality:empty"
    lang = _base_lang(lang)
    unspaced = is_unspaced(text, lang, cfg)
    view = _View(text)
    if cfg.gopher_repetition:
        reason = _gopher_lines_paragraphs(view, cfg)
        # Past max_words the word count rejects the document anyway: skip the n-gram pass and
        # the memory it takes on a huge record.
        if reason is None and not unspaced and not (
                cfg.gopher_quality and view.token_counts[2] > cfg.max_words):
            reason = _gopher_ngrams(view, cfg)
        if reason:
            return None, reason
    if cfg.gopher_quality:
        reason = _gopher_quality(view, lang, unspaced, cfg)
        if reason:
            return None, reason
    keep = None
    if cfg.c4:
        keep, reason = _c4_lines(view, unspaced, cfg, line_stats)
        if reason:
            return None, reason
        if keep.all():
            keep = None
    if cfg.fineweb:
        reason = _fineweb(view, keep, unspaced, cfg)
        if reason:
            return None, reason
    if keep is not None:
        text = _cut_blank_lines("\n".join(compress(view.lines, keep.tolist())), cfg).strip()
    return text, None


def _metadata_lang(metadata: str | None) -> str | None:
    """The ``lang`` (or ``language``) field of a metadata JSON object, if any."""
    if not metadata or '"lang' not in metadata:
        return None
    try:
        fields = json.loads(metadata)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    lang = fields.get("lang") or fields.get("language")
    return lang if isinstance(lang, str) else None


def clean_batch(batch: pa.RecordBatch, cfg: CleanConfig | None = None) -> pa.RecordBatch:
    """Every input column, ``text`` cleaned, plus ``reason`` (null for a kept document).

    A rejected document keeps its original text, so the rejected folder shows what was
    removed. The language comes from a ``lang`` column when there is one, else from
    ``metadata``. A row that arrives with a reason (an ingest rejection) passes unchanged.
    """
    cfg = cfg or CleanConfig()
    names = batch.schema.names
    texts = batch.column(names.index(TEXT)).to_pylist()
    n = len(texts)
    if "lang" in names:
        langs = batch.column(names.index("lang")).to_pylist()
    elif METADATA in names:
        langs = [_metadata_lang(m) for m in batch.column(names.index(METADATA)).to_pylist()]
    else:
        langs = [None] * n
    prior = batch.column(names.index(REASON)).to_pylist() if REASON in names else [None] * n

    new_texts, reasons = [], []
    for text, lang, previous in zip(texts, langs, prior):
        if previous is not None:
            new_texts.append(text)
            reasons.append(previous)
            continue
        cleaned, reason = clean_document(text, lang, cfg)
        new_texts.append(text if cleaned is None else cleaned)
        reasons.append(reason)

    text_type = batch.schema.field(TEXT).type
    return stage_batch(batch, [], reasons, replace={TEXT: pa.array(new_texts, type=text_type)})
