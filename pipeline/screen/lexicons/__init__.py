"""Word lists the bias screen counts with: offensive words by category, identity terms by axis.

Each ``.tsv`` file here carries its own provenance and licence in its header; this module only
parses them and compiles matchers. The lists are data, not code, so that a reviewer can read
exactly what is matched and the bias report can name each file's version and sha256.
"""
from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.errors import UsageError

LEXICON_DIR = Path(__file__).parent
OFFENSIVE_CATEGORIES = ("sexual", "slur", "profanity", "violence")
IDENTITY_AXES = (
    "gender",
    "race_ethnicity",
    "religion",
    "sexual_orientation",
    "disability",
    "age",
    "nationality",
)
PRONOUNS = ("he", "she", "they")
IDENTITY_FORMS = ("adj", "adj_people", "noun", "plural")

# Words after which an everyday adjective ("black", "old", "straight") names people; the same
# list decides whether "black" in a sentence is a colour or a group.
PEOPLE_WORDS = (
    "people", "person", "persons", "man", "men", "woman", "women", "boy", "boys", "girl",
    "girls", "guy", "guys", "folk", "folks", "community", "communities", "family", "families",
    "kid", "kids", "child", "children", "adult", "adults", "american", "americans", "student",
    "students", "voter", "voters", "worker", "workers", "individual", "individuals",
    "population", "populations", "youth", "lives", "culture", "neighborhood", "neighborhoods",
    "patients", "residents", "employees", "couple", "couples", "teen", "teens", "female",
    "male", "females", "males", "citizen", "citizens", "british", "europeans",
)


@dataclass(frozen=True)
class LexiconFile:
    """A lexicon file's identity for reports: which words, which version, exactly which bytes."""

    name: str
    path: Path
    version: str
    sha256: str


def _read_rows(path: Path, n_cols: int) -> tuple[str, list[list[str]]]:
    version = "unknown"
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("#"):
            if line.startswith("# version:"):
                version = line.split(":", 1)[1].strip()
            continue
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != n_cols or not all(c.strip() for c in cols):
            raise UsageError(f"{path}:{lineno}: expected {n_cols} tab-separated columns")
        rows.append([c.strip().lower() for c in cols])
    return version, rows


def file_info(path: Path) -> LexiconFile:
    version, _ = _read_rows(path, 4 if path.name.startswith("identity") else 2)
    return LexiconFile(path.name, path, version, hashlib.sha256(path.read_bytes()).hexdigest())


def offensive_files(lexicon_dir: Path = LEXICON_DIR) -> dict[str, Path]:
    """Language code → offensive-word file, from the files present (``offensive_<lang>.tsv``)."""
    return {p.stem.split("_", 1)[1]: p for p in sorted(lexicon_dir.glob("offensive_*.tsv"))}


def identity_file(lexicon_dir: Path = LEXICON_DIR) -> Path:
    return lexicon_dir / "identity_en.tsv"


def attack_file(lexicon_dir: Path = LEXICON_DIR) -> Path:
    return lexicon_dir / "attack_en.tsv"


def all_files(lexicon_dir: Path = LEXICON_DIR) -> list[LexiconFile]:
    paths = (list(offensive_files(lexicon_dir).values()) + [identity_file(lexicon_dir),
                                                             attack_file(lexicon_dir)])
    return [file_info(p) for p in paths]


_WORD = re.compile(r"\w+")


def words(lowered_text: str) -> list[str]:
    """The word tokens every matcher and the toxicity classifier see.

    Terms are tokenized the same way, so "african-american", "african american" and
    "i'll kill" match across hyphens, spaces and apostrophes alike.
    """
    return _WORD.findall(lowered_text)


@dataclass(frozen=True)
class _Phrase:
    tokens: tuple[str, ...]
    wildcard: bool  # the last token may continue with more letters ("fuck*")
    payload: object
    before: frozenset | None  # the next token must be one of these (adj_people forms)


class PhraseMatcher:
    """Finds lexicon phrases in a token list: greedy, longest first, non-overlapping.

    Per-position regex alternation over hundreds of terms costs seconds per book in ``re``;
    here the common case, a document with no candidate word at all, is decided by one set
    intersection over its distinct tokens, and only candidate positions are walked.
    """

    def __init__(self, phrases: list[_Phrase]):
        self.exact: dict[str, list[_Phrase]] = {}
        self.prefix: dict[str, list[_Phrase]] = {}
        for ph in phrases:
            first = ph.tokens[0]
            if ph.wildcard and len(ph.tokens) == 1:
                self.prefix.setdefault(first, []).append(ph)
            else:
                self.exact.setdefault(first, []).append(ph)
        for table in (self.exact, self.prefix):
            for cands in table.values():
                cands.sort(key=lambda ph: -len(ph.tokens))
        self.prefix_lens = sorted({len(k) for k in self.prefix})
        self.exact_keys = frozenset(self.exact)

    def _candidates(self, tok: str) -> list[_Phrase]:
        found = list(self.exact.get(tok, ()))
        for k in self.prefix_lens:
            if k > len(tok):
                break
            found.extend(self.prefix.get(tok[:k], ()))
        return found

    def find(self, toks: list[str]) -> list[tuple[int, int, object]]:
        """(start, end, payload) of every match, token positions, end exclusive."""
        uniq = set(toks)
        cand_words = uniq & self.exact_keys
        if self.prefix_lens:
            cand_words |= {
                t for t in uniq
                if any(t[:k] in self.prefix for k in self.prefix_lens if k <= len(t))
            }
        if not cand_words:
            return []
        out = []
        i, n = 0, len(toks)
        while i < n:
            tok = toks[i]
            if tok in cand_words:
                for ph in self._candidates(tok):
                    j = i + len(ph.tokens)
                    if j > n or not _phrase_at(ph, toks, i):
                        continue
                    if ph.before is not None and (j >= n or toks[j] not in ph.before):
                        continue
                    out.append((i, j, ph.payload))
                    i = j - 1
                    break
            i += 1
        return out


def _phrase_at(ph: _Phrase, toks: list[str], i: int) -> bool:
    last = len(ph.tokens) - 1
    for k, want in enumerate(ph.tokens):
        got = toks[i + k]
        if got != want and not (k == last and ph.wildcard and got.startswith(want)):
            return False
    return True


def _phrase(term: str, payload: object, before: frozenset | None = None) -> _Phrase:
    toks = tuple(words(term.rstrip("*")))
    if not toks:
        raise UsageError(f"lexicon term {term!r} has no word in it")
    return _Phrase(toks, term.endswith("*"), payload, before)


class OffensiveLexicon:
    """Counts offensive terms per category in the languages asked for.

    One matcher per language set, built once per process and cached: a screen over many
    documents pays for building it once per executor.
    """

    def __init__(self, lexicon_dir: Path = LEXICON_DIR):
        self.terms: dict[str, dict[str, list[str]]] = {}
        for lang, path in offensive_files(lexicon_dir).items():
            _, rows = _read_rows(path, 2)
            by_cat: dict[str, list[str]] = {c: [] for c in OFFENSIVE_CATEGORIES}
            for category, term in rows:
                if category not in by_cat:
                    raise UsageError(f"{path}: unknown category {category!r}")
                by_cat[category].append(term)
            self.terms[lang] = by_cat
        if not self.terms:
            raise UsageError(f"no offensive_*.tsv lexicon in {lexicon_dir}")
        self._matchers: dict[tuple[str, ...], PhraseMatcher] = {}

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self.terms))

    def matcher(self, langs: tuple[str, ...]) -> PhraseMatcher:
        found = self._matchers.get(langs)
        if found is None:
            # A term listed in two languages (or two categories) counts once, first category wins.
            phrases: dict[str, _Phrase] = {}
            for cat in OFFENSIVE_CATEGORIES:
                for lang in langs:
                    for term in self.terms[lang][cat]:
                        phrases.setdefault(term, _phrase(term, cat))
            found = self._matchers[langs] = PhraseMatcher(list(phrases.values()))
        return found

    def languages_for(self, lang: str | None) -> tuple[str, ...]:
        """English always (it is mixed into every web language), plus the document's own.

        With no language known, every list: a German page must not escape the German list
        because the language filter did not run.
        """
        if not lang:
            return self.languages
        base = lang.split("_")[0].split("-")[0].lower()
        return tuple(sorted({"en", base} & set(self.terms))) or ("en",)

    def count(self, toks: list[str], lang: str | None = None) -> dict[str, int]:
        """Category → number of matches in the tokens of lower-cased text."""
        counts = dict.fromkeys(OFFENSIVE_CATEGORIES, 0)
        for _, _, cat in self.matcher(self.languages_for(lang)).find(toks):
            counts[cat] += 1
        return counts

    def matches(self, toks: list[str], lang: str | None = None) -> list[tuple[str, str]]:
        """(category, matched words) pairs, to explain a flag to a reviewer and in tests."""
        return [
            (cat, " ".join(toks[i:j]))
            for i, j, cat in self.matcher(self.languages_for(lang)).find(toks)
        ]


@dataclass(frozen=True)
class IdentityTerm:
    axis: str
    group: str
    form: str
    term: str


class IdentityLexicon:
    """Identity terms by axis and group, plus he/she/they pronouns."""

    def __init__(self, path: Path | None = None):
        path = path or identity_file()
        _, rows = _read_rows(path, 4)
        self.entries: list[IdentityTerm] = []
        seen: set[str] = set()
        for axis, group, form, term in rows:
            if axis not in IDENTITY_AXES and axis != "pronoun":
                raise UsageError(f"{path}: unknown axis {axis!r}")
            if form not in IDENTITY_FORMS:
                raise UsageError(f"{path}: unknown form {form!r}")
            if term in seen:
                raise UsageError(f"{path}: term {term!r} listed twice")
            seen.add(term)
            self.entries.append(IdentityTerm(axis, group, form, term))
        people = frozenset(PEOPLE_WORDS)
        self._identity = PhraseMatcher([
            _phrase(e.term, e, people if e.form == "adj_people" else None)
            for e in self.entries if e.axis != "pronoun"
        ])
        self._pronoun_words = {
            w: e.group for e in self.entries if e.axis == "pronoun" for w in words(e.term)
        }

    def groups(self) -> list[tuple[str, str]]:
        """Every (axis, group) of the identity axes, in file order."""
        seen: dict[tuple[str, str], None] = {}
        for e in self.entries:
            if e.axis != "pronoun":
                seen[(e.axis, e.group)] = None
        return list(seen)

    def find(self, toks: list[str]) -> list[tuple[int, int, IdentityTerm]]:
        """(start, end, term) of every identity-term occurrence, pronouns excluded."""
        return self._identity.find(toks)

    def pronoun_counts(self, toks: list[str]) -> dict[str, int]:
        counts = dict.fromkeys(PRONOUNS, 0)
        for tok, n in Counter(toks).items():
            group = self._pronoun_words.get(tok)
            if group is not None:
                counts[group] += n
        return counts


@functools.lru_cache(maxsize=None)
def offensive_lexicon() -> OffensiveLexicon:
    """The shipped offensive lexicon, parsed once per process."""
    return OffensiveLexicon()


@functools.lru_cache(maxsize=None)
def identity_lexicon() -> IdentityLexicon:
    """The shipped identity lexicon, parsed once per process."""
    return IdentityLexicon()
