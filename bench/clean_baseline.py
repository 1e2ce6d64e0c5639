"""The clean stage's rules written the plain way: a Python loop per rule, each rule splitting
the text again, n-grams as joined strings in a Counter, ftfy on every document.

Two uses in ``bench.clean``: the baseline of "ratio to a plain-Python loop of the same rules",
and a check of ``pipeline.clean.rules``: its shared splits, numpy counts, hashed n-grams and skipped
ftfy calls must reach the same verdict, reason and text on every document.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

import ftfy

from pipeline.clean.rules import (
    _BULLETS,
    _C4_END_PUNCT,
    _CITATION_RE,
    _CLOSERS,
    _FTFY_CONFIG,
    _POLICY_PHRASES,
    _SENTENCE_END_RE,
    _SENTENCE_TERMINALS,
    CleanConfig,
    _base_lang,
    is_unspaced,
)


def _is_word_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "LMN" or c == "_"


def _is_letter(c: str) -> bool:
    return unicodedata.category(c)[0] in "LM"


def _tidy(text: str, cfg: CleanConfig) -> str:
    lines = []
    blank_run = 0
    for line in text.split("\n"):
        line = re.sub("[ \t]{2,}", " ", line).rstrip(" \t")
        blank_run = blank_run + 1 if not line else 0
        if blank_run <= cfg.max_blank_lines:
            lines.append(line)
    return "\n".join(lines).strip()


def normalize(text: str, cfg: CleanConfig) -> str:
    if cfg.ftfy:
        text = ftfy.fix_text(text, _FTFY_CONFIG)
    text = re.sub("\r\n?|[\u2028\u2029\x85]", "\n", text)
    text = "".join(c for c in text if c in "\t\n" or unicodedata.category(c) != "Cc")
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)
    return _tidy(text, cfg)


def _ends_sentence(line: str) -> bool:
    j = len(line) - 1
    for _ in range(3):
        if j > 0 and line[j] in _CLOSERS:
            j -= 1
    return line[j] in _SENTENCE_TERMINALS


def _wraps(lines: list[str], i: int, cfg: CleanConfig) -> bool:
    width = max(map(len, lines))
    if not cfg.wrapped_max_line_chars // 2 <= width <= cfg.wrapped_max_line_chars > 0 \
            or i + 1 >= len(lines):
        return False
    line, following = lines[i], lines[i + 1]
    return (line != "" and following != "" and not _ends_sentence(line)
            and len(line) + 1 + len(following.split()[0]) > width)


def _ngram_units(word: str) -> list[str]:
    """Punctuation at either edge of a word, one character at a time, then the word."""
    inside = [i for i, c in enumerate(word) if _is_word_char(c)]
    if not inside:
        return list(word)
    first, last = inside[0], inside[-1]
    return [*word[:first], word[first:last + 1], *word[last + 1:]]


def _find_duplicates(items: list[str]) -> tuple[int, int]:
    seen, dup_items, dup_chars = set(), 0, 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items, dup_chars


def _gopher_repetition(text: str, cfg: CleanConfig, unspaced: bool) -> str | None:
    paragraphs = re.split(r"\n{2,}", text)
    dups, chars = _find_duplicates(paragraphs)
    if dups > cfg.dup_para_frac * len(paragraphs):
        return "quality:gopher_dup_paragraphs"
    if chars > cfg.dup_para_char_frac * len(text):
        return "quality:gopher_dup_paragraph_chars"
    lines = [line for line in text.split("\n") if line]
    dups, chars = _find_duplicates(lines)
    if dups > cfg.dup_line_frac * len(lines):
        return "quality:gopher_dup_lines"
    if chars > cfg.dup_line_char_frac * len(text):
        return "quality:gopher_dup_line_chars"
    if unspaced:
        return None
    words = text.split()
    n_words = sum(1 for w in words if any(map(_is_word_char, w)))
    if cfg.gopher_quality and n_words > cfg.max_words:
        return None
    words = [unit for w in words for unit in _ngram_units(w)]
    for n, frac in ((2, cfg.top_2gram_char_frac), (3, cfg.top_3gram_char_frac),
                    (4, cfg.top_4gram_char_frac)):
        ngrams = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
        if ngrams:
            top, count = Counter(ngrams).most_common(1)[0]
            if len(top) * count > frac * len(text):
                return f"quality:gopher_top_{n}gram"
    for n, frac in ((5, cfg.dup_5gram_char_frac), (6, cfg.dup_6gram_char_frac),
                    (7, cfg.dup_7gram_char_frac), (8, cfg.dup_8gram_char_frac),
                    (9, cfg.dup_9gram_char_frac), (10, cfg.dup_10gram_char_frac)):
        seen, repeated, i = set(), 0, 0
        while i < len(words) - n + 1:
            ngram = "".join(words[i:i + n])
            if ngram in seen:
                repeated += len(ngram)
                i += n
            else:
                seen.add(ngram)
                i += 1
        if repeated > frac * len(text):
            return f"quality:gopher_dup_{n}gram"
    return None


def _gopher_quality(text: str, lang: str | None, cfg: CleanConfig,
                    unspaced: bool) -> str | None:
    words = text.split()
    if not unspaced:
        n_words = sum(1 for w in words if any(map(_is_word_char, w)))
        if not cfg.min_words <= n_words <= cfg.max_words or n_words == 0:
            return "quality:gopher_word_count"
        word_chars = sum(1 for c in text if _is_word_char(c))
        if not cfg.min_mean_word_length <= word_chars / n_words <= cfg.max_mean_word_length:
            return "quality:gopher_mean_word_length"
        if text.count("#") > cfg.max_symbol_word_ratio * n_words:
            return "quality:gopher_hash_ratio"
        if text.count("...") + text.count("…") > cfg.max_symbol_word_ratio * n_words:
            return "quality:gopher_ellipsis_ratio"
    lines = [line for line in text.split("\n") if line]
    bullets = sum(1 for line in lines if line.lstrip(" \t")[:1] in tuple(_BULLETS))
    if bullets > cfg.max_bullet_lines_frac * len(lines):
        return "quality:gopher_bullet_lines"
    ellipsis = sum(1 for line in lines if line.endswith(("...", "…")))
    if ellipsis > cfg.max_ellipsis_lines_frac * len(lines):
        return "quality:gopher_ellipsis_lines"
    if not unspaced:
        alpha = sum(1 for w in words if any(map(_is_letter, w)))
        if alpha < cfg.min_alpha_words_frac * len(words):
            return "quality:gopher_alpha_words"
    if lang in cfg.stop_word_langs and cfg.min_stop_words > 0:
        found = set(re.findall(r"\w+", text.lower())) & set(cfg.stop_words)
        if len(found) < cfg.min_stop_words:
            return "quality:gopher_stop_words"
    return None


def _c4(text: str, cfg: CleanConfig, unspaced: bool) -> tuple[list[str], str | None]:
    lines = text.split("\n")
    kept = []
    for i, line in enumerate(lines):
        if not line:
            kept.append(line)
            continue
        words = line.split()
        lowered = line.lower()
        if not unspaced and cfg.c4_max_word_length > 0 and any(
                len(w) > cfg.c4_max_word_length for w in words):
            continue
        if cfg.c4_drop_no_terminal_punct and (
                not line.endswith(tuple(_C4_END_PUNCT)) or line.endswith("...")):
            continue
        if (not unspaced and cfg.c4_min_words_per_line > 1
                and len(words) < cfg.c4_min_words_per_line
                and not (i > 0 and _wraps(lines, i - 1, cfg))):
            continue
        if cfg.c4_drop_lorem_ipsum and "lorem ipsum" in lowered:
            return lines, "quality:c4_lorem_ipsum"
        if cfg.c4_drop_curly_brace and "{" in line:
            return lines, "quality:c4_curly_brace"
        if cfg.c4_drop_javascript_lines and "javascript" in lowered:
            continue
        if cfg.c4_drop_policy_lines and any(p in lowered for p in _POLICY_PHRASES):
            continue
        kept.append(line)
    nonempty = [line for line in kept if line]
    if not nonempty:
        return kept, "quality:empty_after_lines"
    sentences = sum(1 + len(_SENTENCE_END_RE.findall(line)) for line in nonempty)
    if sentences < cfg.c4_min_sentences:
        return kept, "quality:c4_too_few_sentences"
    return kept, None


def _fineweb(lines: list[str], cfg: CleanConfig, unspaced: bool) -> str | None:
    nonempty = [line for line in lines if line]
    wrapped = sum(1 for i, line in enumerate(lines) if line and _wraps(lines, i, cfg))
    ends = sum(1 for line in nonempty if _ends_sentence(line))
    if ends < cfg.fineweb_min_line_punct_frac * (len(nonempty) - wrapped):
        return "quality:fineweb_line_punct"
    if not unspaced:
        short = sum(1 for line in nonempty if len(line) <= cfg.fineweb_short_line_chars)
        if short > cfg.fineweb_max_short_lines_frac * len(nonempty):
            return "quality:fineweb_short_lines"
    _, dup_chars = _find_duplicates(nonempty)
    if dup_chars > cfg.fineweb_max_dup_line_char_frac * sum(len(line) for line in lines):
        return "quality:fineweb_dup_line_chars"
    if not unspaced:
        words = sum(len(line.split()) for line in lines)
        if len(nonempty) - 1 > cfg.fineweb_max_newline_word_ratio * words:
            return "quality:fineweb_list_ratio"
    return None


def clean_document(text: str | None, lang: str | None = None,
                   cfg: CleanConfig | None = None) -> tuple[str | None, str | None]:
    cfg = cfg or CleanConfig()
    if not text:
        return None, "quality:empty"
    text = normalize(text, cfg)
    if cfg.c4 and cfg.c4_remove_citations:
        text = _tidy(_CITATION_RE.sub("", text), cfg)
    if not text:
        return None, "quality:empty"
    lang = _base_lang(lang)
    unspaced = is_unspaced(text, lang, cfg)
    if cfg.gopher_repetition:
        reason = _gopher_repetition(text, cfg, unspaced)
        if reason:
            return None, reason
    if cfg.gopher_quality:
        reason = _gopher_quality(text, lang, cfg, unspaced)
        if reason:
            return None, reason
    lines = text.split("\n")
    if cfg.c4:
        lines, reason = _c4(text, cfg, unspaced)
        if reason:
            return None, reason
    if cfg.fineweb:
        reason = _fineweb(lines, cfg, unspaced)
        if reason:
            return None, reason
    return _tidy("\n".join(lines), cfg), None
