"""Who is attacked, and how: hate and insult found from the target and what is said of it.

A word list tags the rude word, not the attack: it tags people who reclaim a slur or argue
against hate, and misses "[group] are vermin" and "[group] should be shot", which hold no rude
word at all. This detector reads a document in one pass, clause by clause (no pattern crosses
a clause boundary):

1. **Spelling** is normalised first (``deobfuscate``): leet digits and symbols inside words
   ("k1ll", "@ss"), letters spaced or dotted apart ("k i l l", "n.a.z.i"), stars ("f*ck"),
   letters repeated for emphasis, and ``n't`` as `` not``; a word one edit away (a letter
   missing, added or swapped) from a word of the attack or slur lists is read as that word.
2. **Targets**: identity groups (``identity_en.tsv``) become ``GRP`` and slurs (category
   ``slur`` of ``offensive_*.tsv``) ``SLR``; second-person and single-person references are the
   targets of insults.
3. **What is said** (``attack_en.tsv``): a derogatory or dehumanising predicate of the group
   ("GRP are [all] vermin", "why are GRP so violent"), contempt ("I hate GRP"), harm or a call
   for it ("kill all GRP", "GRP should be deported"), exclusion ("GRP don't belong here").
   Negation falls out of the patterns: "GRP are not vermin" has no predicate after the verb.
4. **What is not hate although it looks like it**: counter-speech and reported speech (a
   reporting verb before the attack, or the attack in quotes, with a clause that rejects it:
   "saying GRP are vermin is wrong"), a negated report ("I don't think GRP are ..."), and
   in-group use of a slur ("I'm a proud SLR", "we SLRs").

It returns rule scores that ``policy`` combines with the classifier. Plain Python, no Spark.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.screen.lexicons import (
    _read_rows,
    attack_file,
    identity_lexicon,
    offensive_lexicon,
)

SHORT_TEXT = 300  # characters: a post or a statement, read whatever words it holds

# Rule strengths, set by hand, not fitted: a threat or a dehumanising predicate of a group is
# nearly always an attack; a slur alone less so (quoted, reported, or reclaimed uses that the
# rules miss). All sit above the tag threshold and below the drop threshold, so a rule alone
# tags and only a rule with the classifier agreeing drops.
STRENGTH = {"threat": 0.95, "dehumanising": 0.95, "derogation": 0.9, "contempt": 0.9,
            "exclusion": 0.85, "slur": 0.85, "insult": 0.85}

_LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "$": "s",
                       "5": "s", "7": "t", "+": "t", "|": "l"})
_LEET_WORD = re.compile(r"(?<![\w@$!+|*])(?=[\w@$!+|*]*[a-z])(?=[\w@$!+|*]*[0-9@$!+|*])"
                        r"[\w@$!+|*]*[\w@$]")  # "!" ending a word is punctuation
_YOU = re.compile(r"\b(?:you|u|ur|ya|youre|yourself)\b")
_WORD = re.compile(r"\w+")
_LEET_CHARS = re.compile(r"[a-z][0-9@$!+|*]|[0-9@$!+|*][a-z]")
_SPACED = re.compile(r"\b(?:[a-z][ .\-_*]){2,}[a-z]\b")
_REPEAT = re.compile(r"([a-z])\1{2,}")
_NOT = re.compile(r"n't\b|n’t\b")
_PIECES = re.compile(r"\w+|[.!?;:\n\"“”«»]+|\s[-–—]\s")
_BREAK_WORDS = frozenset({"but", "however"})
_QUOTE = re.compile(r"[\"“”«»]")
_FIRST_PERSON = frozenset({"i", "we", "honestly", "really", "just", "also", "still", "truly",
                           "personally", "do", "always"})


def _tsv(path: Path) -> dict[str, list[str]]:
    """Category → terms, spelt as ``deobfuscate`` spells text ("can't" → "ca not"), and
    without a leading article, which the patterns allow anyway."""
    out: dict[str, list[str]] = {}
    for category, term in _read_rows(path, 2)[1]:
        term = deobfuscate(term)
        if category in ("derogatory", "dehumanising"):
            term = re.sub(r"^(?:a|an|the)\s+", "", term)
        out.setdefault(category, []).append(term)
    return out


def _alt(terms: list[str]) -> str:
    """A regex alternation of phrases, longest first, spaces matching any run of spaces."""
    return "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in sorted(set(terms), key=len,
                                                                          reverse=True))


@dataclass(frozen=True)
class Finding:
    """The strongest attack in a text: its kind, strength, target group, and what neutralised
    other candidates (counter-speech, reclaimed use)."""

    hate: float = 0.0
    hate_kind: str | None = None
    target: str | None = None
    insult: float = 0.0
    neutralised: str | None = None  # "counter", "reclaimed" or None


class AttackDetector:
    """The compiled patterns; build once (``detector()``) and call ``find`` per text."""

    def __init__(self, path: Path | None = None):
        lex = _tsv(path or attack_file())
        self.vocab = {w for terms in lex.values() for t in terms for w in t.split()
                      if len(w) >= 5 and w.isalpha()}
        self.ident = identity_lexicon()
        # Group names are disguised too ("mus1ims", "jwes"): one edit away reads as the name.
        self.vocab |= {w for e in self.ident.entries if e.axis != "pronoun" for w in e.term.split()
                       if len(w) >= 5 and w.isalpha()}
        off = offensive_lexicon()
        slur_terms = off.terms.get("en", {}).get("slur", [])
        self.slur_stems = sorted({t.rstrip("*") for t in slur_terms if t.endswith("*")},
                                 key=len, reverse=True)
        self.slurs = {t for t in slur_terms if not t.endswith("*")}
        self.vocab |= {s for s in self.slurs if len(s) >= 5 and s.isalpha()}
        self.vocab |= {s for s in self.slur_stems if len(s) >= 5 and s.isalpha()}
        self.vocab |= {"death", "bullets", "chambers", "ovens", "nooses", "typical"}
        self._fuzzy = _fuzzy_index(self.vocab)
        self._slur_re = re.compile("|".join(re.escape(x) for x in self.slur_stems) or "(?!)")
        # token -> (canonical token, is a slur): most tokens recur, so each is read once.
        self._tokens: dict[str, tuple[str, bool]] = {}
        fill = (r"(?:(?:all|just|only|really|truly|basically|simply|literally|nothing\s+but|"
                r"nothing\s+more\s+than|no\s+better\s+than|little\s+more\s+than|such|so|very|"
                r"the|a|an|total|complete|completely|totally|utterly|fucking|fuckin|damn|"
                r"disgusting|filthy|dirty|little|bunch\s+of|like|as|always|still|naturally|"
                r"inherently|obviously|clearly|born|genetically|more|most|too|mostly)\s+)*")
        be = r"(?:are|is|were|was|be|r|re|being|remain|seem|seems|look|act\s+like|behave\s+like)"
        derog, dehum = _alt(lex["derogatory"]), _alt(lex["dehumanising"])
        harm, excl = _alt(lex["harm"]), _alt(lex["exclusion"])
        contempt = _alt(lex["contempt"])
        grp = r"(?:GRP|SLR)(?:\s+(?:people|persons|folks|men|women|kids|guys))?"
        det = r"(?:(?:all|every|the|those|these|some|more|of|any|em|them|you)\s+)*"
        modal = (r"(?:should|must|need\s+to|needs\s+to|ought\s+to|deserve\s+to|deserves\s+to|"
                 r"have\s+to|has\s+to|will|would|are\s+going\s+to|gonna|better|can|could|"
                 r"shall|let|to)")
        c = re.compile
        first = lambda terms: frozenset(t.split()[0].strip("'") for t in terms)  # noqa: E731
        D, G, H = first(lex["dehumanising"]), first(lex["derogatory"]), first(lex["harm"])
        C, E = first(lex["contempt"]), first(lex["exclusion"])
        TYP, NO = frozenset({"typical"}), frozenset({"no", "ban", "keep", "deport", "fewer", "stop"})
        SICK = frozenset({"make", "makes", "disgust", "disgusts", "sicken", "sickens", "repulse",
                          "repulses", "revolt", "revolts"})
        DEATH = frozenset({"death", "bullet", "bullets", "gas", "oven", "ovens", "noose",
                           "nooses", "deserve", "deserves"})
        # (kind, the words one of which must be in the text for it to match, pattern)
        self.patterns = [
            ("dehumanising", D, c(rf"\b{grp}\s+{be}\s+{fill}(?:{dehum})\b")),
            ("dehumanising", D, c(rf"\b{be}\s+{fill}{grp}\s+{fill}(?:{dehum})\b")),
            ("dehumanising", D, c(rf"\b{grp}\s+(?:\w+\s+){{0,2}}like\s+(?:the\s+)?(?:{dehum})\b")),
            ("derogation", G, c(rf"\b{grp}\s+{be}\s+{fill}(?:{derog})\b")),
            ("derogation", G, c(rf"\b{be}\s+{fill}{grp}\s+{fill}(?:{derog})\b")),
            # "aren't GRP basically parasites?": the negation of a question asserts
            ("dehumanising", D, c(rf"\b(?:are|is)\s+not\s+{grp}\s+{fill}(?:{dehum})\b")),
            ("derogation", G, c(rf"\b(?:are|is)\s+not\s+{grp}\s+{fill}(?:{derog})\b")),
            ("derogation", TYP, c(rf"\btypical\s+{grp}\b")),
            ("derogation", SICK, c(rf"\b{grp}\s+(?:really\s+)?(?:make|makes)\s+me\s+"
                             rf"(?:sick|ill|want\s+to\s+(?:vomit|puke|throw\s+up))|"
                             rf"\b{grp}\s+(?:disgust|sicken|repulse|revolt)s?\s+(?:me|us)\b")),
            ("contempt", C, c(rf"\b(?:i|we|everyone|everybody|all\s+of\s+us)\s+"
                           rf"(?:(?!not\b|never\b|no\b)\w+\s+){{0,2}}?"
                           rf"(?:{contempt})\s+{det}{grp}")),
            ("threat", H, c(rf"\b(?:{harm})\s+{det}{grp}")),
            ("threat", H, c(rf"\b(?:want|like|love|wish|hope|need|going|glad)\s+to\s+see\s+{det}"
                         rf"{grp}\s+(?:\w+\s+){{0,2}}(?:{harm})\b")),
            ("threat", H, c(rf"\b{grp}\s+(?:\w+\s+)?{modal}\s+(?:all\s+|just\s+|really\s+|"
                         rf"simply\s+|be\s+|get\s+|go\s+)*(?:{harm})\b")),
            ("threat", DEATH, c(rf"\b(?:death|bullets?|gas\s+chambers?|ovens?|nooses?)\s+(?:to|for)\s+"
                         rf"{det}{grp}|\b{grp}\s+(?:deserve|deserves)\s+(?:to\s+)?"
                         rf"(?:death|nothing|no\s+rights|no\s+mercy|to\s+suffer|{harm})")),
            ("exclusion", E, c(rf"\b{grp}\s+(?:\w+\s+)?(?:{modal}\s+|are\s+|is\s+|do\s+)?(?:{excl})\b")),
            ("exclusion", NO, c(rf"\b(?:no|no\s+more|ban|ban\s+all|keep\s+out|keep\s+away|"
                            rf"deport\s+all|fewer|stop\s+letting)\s+{grp}\b")),
        ]
        # Every word a pattern needs besides a group: a long text without one holds no attack.
        needed = [t for cat in ("derogatory", "dehumanising", "contempt", "harm", "exclusion",
                                "insult") for t in lex[cat]]
        needed += ["typical", "death", "deserve", "deserves", "no", "ban", "keep", "deport",
                   "fewer", "stop", "make", "makes", "disgust", "disgusts", "sicken", "repulse",
                   "revolt", "bullets", "gas", "ovens", "nooses", "fuck", "screw", "fk"]
        self.keywords = frozenset(t.split()[0].strip("'") for t in needed)
        self.insult = c(rf"\b(?:you|u|ya|youre|ur)\s+(?:are\s+|r\s+|re\s+|were\s+)?{fill}"
                        rf"(?:{_alt(lex['insult'])})\b|\b(?:fuck|screw|fk)\s+(?:you|u|off)\b|"
                        rf"\b(?:he|she|this\s+guy|that\s+guy)\s+(?:is|s)\s+{fill}"
                        rf"(?:{_alt(lex['insult'])})\b")
        self.report = c(rf"\b(?:{_alt(lex['report'])})\b")
        self.counter = c(rf"\b(?:{_alt(lex['counter'])})\b")
        self.negated_report = c(rf"\b(?:not|never|nobody|no\s+one)\s+(?:\w+\s+)?"
                                rf"(?:{_alt(lex['report'])})\b")
        self.reclaim = c(r"\b(?:i\s+am|im|i\s+m|we\s+are|we\s+re|were|as\s+an?|us|we|my|our|"
                         r"fellow|proud|proudly)\s+(?:\w+\s+){0,2}SLR")

    def canonical(self, tok: str) -> str:
        """``tok``, or the attack or slur word it is one edit away from."""
        if len(tok) < 5 or tok in self.vocab:
            return tok
        hit = self._fuzzy.get(tok)
        if hit:
            return hit
        for i in range(len(tok)):  # one letter too many
            if tok[:i] + tok[i + 1:] in self.vocab:
                return tok[:i] + tok[i + 1:]
        return tok

    def is_slur(self, tok: str) -> bool:
        return tok in self.slurs or self._slur_re.match(tok) is not None

    def token(self, tok: str) -> tuple[str, bool]:
        """(canonical spelling, is a slur), remembered."""
        hit = self._tokens.get(tok)
        if hit is None:
            if len(self._tokens) > 200_000:
                self._tokens.clear()
            canon = self.canonical(tok)
            hit = self._tokens[tok] = (canon, self.is_slur(canon))
        return hit

    def worth_reading(self, text: str, named: bool) -> bool:
        """Whether ``find`` can find anything in ``text``: it names a group or holds a slur
        (``named``, counted by the caller), or a cheap look (regular expressions only) finds a
        second person or a disguised spelling; and a long text must also hold a word some
        pattern needs (a book names groups on every page and rarely attacks one). A misspelt
        group name with no other sign ("hindsu are ...") is not looked for."""
        low = text.lower()
        if not (named or _YOU.search(low) or _LEET_CHARS.search(low) or _SPACED.search(low)):
            return False
        return len(text) <= SHORT_TEXT or not self.keywords.isdisjoint(_WORD.findall(low))

    def find(self, text: str) -> Finding:
        """The strongest attack in ``text``, read in one pass: the tokens of every clause
        joined with ``|`` between clauses, which no pattern can cross."""
        toks, slurs, clause_quoted = self._tokens_of(deobfuscate(text))
        if not toks:
            return Finding()
        marked, groups = self._mark(toks, slurs)
        sent = " ".join(marked)
        hate, kind, target, insult, neutral = 0.0, None, None, 0.0, None
        if "GRP" in sent or "SLR" in sent:
            present = set(marked)
            # A pattern runs only when a word it needs is in the text: most never do.
            for name, needs, pattern in self.patterns:
                if needs.isdisjoint(present):
                    continue
                for m in pattern.finditer(sent):
                    if self._countered(sent, m.start(), clause_quoted):
                        neutral = "counter"
                        continue
                    if STRENGTH[name] > hate:
                        hate, kind = STRENGTH[name], name
                        target = groups[_group_at(marked, m)] if groups else None
        if "SLR" in sent:
            start = 0
            for clause in sent.split("|"):
                if "SLR" in clause:
                    if self.reclaim.search(clause):
                        neutral = neutral or "reclaimed"
                    elif self._countered(sent, start + clause.find("SLR"), clause_quoted):
                        neutral = "counter"
                    elif STRENGTH["slur"] > hate:
                        hate, kind = STRENGTH["slur"], "slur"
                        target = target or (groups[0] if groups else None)
                start += len(clause) + 1
        plain = " ".join(toks)
        for m in self.insult.finditer(plain):
            if not clause_quoted[plain.count("|", 0, m.start())]:
                insult = STRENGTH["insult"]
                break
        return Finding(hate, kind, target, insult, neutral if not hate else None)

    def _tokens_of(self, text: str) -> tuple[list[str], list[bool], list[bool]]:
        """Canonical tokens with ``|`` between clauses, which are slurs, and per clause
        whether it lies inside quotation marks."""
        toks: list[str] = []
        slurs: list[bool] = []
        quoted = [False]
        inside = False
        for piece in _PIECES.findall(text):
            if piece[0].isalnum() or piece[0] == "_":
                if piece not in _BREAK_WORDS:
                    canon, slur = self.token(piece)
                    toks.append(canon)
                    slurs.append(slur)
                    continue
            elif len(_QUOTE.findall(piece)) % 2:
                inside = not inside
            if toks and toks[-1] != "|":
                toks.append("|")
                slurs.append(False)
                quoted.append(inside)
            else:
                quoted[-1] = inside
        return toks, slurs, quoted

    def _mark(self, toks: list[str], slurs: list[bool]) -> tuple[list[str], list[str]]:
        """Tokens with identity mentions as ``GRP`` and slurs as ``SLR``; the groups in order."""
        spans = sorted(self.ident.find(toks), key=lambda s: (s[0], -s[1]))
        out, groups, i = [], [], 0
        for start, end, term in spans:
            if start < i:
                continue
            out += ["SLR" if slur else t for t, slur in zip(toks[i:start], slurs[i:start])]
            if out and out[-1] == "GRP":  # "gay men", "black women": one group mention
                groups[-1] = f"{term.axis}/{term.group}" if term.axis != "gender" else groups[-1]
            else:
                out.append("GRP")
                groups.append(f"{term.axis}/{term.group}")
            i = end
        out += ["SLR" if slur else t for t, slur in zip(toks[i:], slurs[i:])]
        return out, groups

    def _countered(self, sent: str, pos: int, clause_quoted: list[bool]) -> bool:
        """The attack at ``pos`` is someone else's words (a reporting verb whose subject is
        not the writer), reported and rejected, quoted, or a negated belief."""
        start = sent.rfind("|", 0, pos) + 1
        end = sent.find("|", pos)
        before, after = sent[start:pos], sent[pos:end if end >= 0 else len(sent)]
        quoted = clause_quoted[sent.count("|", 0, pos)]
        if self.negated_report.search(before):
            return True
        reported = quoted
        for m in self.report.finditer(before):
            subject = before[:m.start()].split()[-1:]
            if subject and subject[0] not in _FIRST_PERSON:
                return True
            reported = True
        return reported and bool(self.counter.search(after) or self.counter.search(before)
                                 or quoted)


def _group_at(marked: list[str], m: re.Match) -> int:
    """Index (among the GRP marks) of the group the match names."""
    prefix = " ".join(marked)[:m.end()]
    return max(prefix.count("GRP") - 1, 0)


def _fuzzy_index(vocab: set[str]) -> dict[str, str]:
    """Each word with one letter missing or two neighbours swapped → the word."""
    out: dict[str, str] = {}
    for w in sorted(vocab):
        for i in range(len(w)):
            out.setdefault(w[:i] + w[i + 1:], w)
        for i in range(len(w) - 1):
            out.setdefault(w[:i] + w[i + 1] + w[i] + w[i + 2:], w)
    for w in vocab:
        out.pop(w, None)
    return out


def deobfuscate(text: str) -> str:
    """Lower case, with the usual disguises of a word undone (see the module's docstring)."""
    s = text.lower().replace("’", "'")
    if _LEET_CHARS.search(s):
        s = _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET).replace("*", ""), s)
        s = s.replace("*", "")
    s = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), s)
    s = _REPEAT.sub(r"\1\1", s)
    return _NOT.sub(" not", s) if "'" in s or "’" in s else s


@functools.lru_cache(maxsize=1)
def detector() -> AttackDetector:
    return AttackDetector()
