"""The bias screen: hate, insult, profanity, PII and identity signals per document, and the
policy's verdict.

Signals are tags; only the policy drops, and by default it drops three things: PII overload
(more than 5 spans, Dolma's rule), URLs on a blocklist the user gives, and hate far above the
tagging threshold. Word lists never drop by default. C4's bad-word filter removed 42% of
African-American English documents against 6% of white-aligned English (Dodge et al., 2021),
and most of the text about sexual orientation it removed was harmless: a list cannot tell a
slur from a mention. So the screen separates what a list can see (``profanity``: rude words,
any target, never a reason to drop) from what needs a target: ``insult`` (aimed at a person)
and ``hate`` (an attack on people for who they are), read by ``attacks`` from the group named
and what is said of it, combined with the classifier. An attack that is negated, reported and
rejected (counter-speech) or a slur used of oneself (reclaimed) is never dropped; a document
flagged only by word lists that names a group, and the uncertain middle of the hate score, are
tagged ``review``.

Columns added (all computed on the PII-masked text, which replaces ``text``):

* ``toxicity`` float: the larger of ``hate`` and ``insult`` (SPEC's meaning, kept for readers).
* ``hate``, ``insult`` floats: the classifier's highest P(toxic) over the document's paragraph
  pieces, raised where the detector finds an attack (1 - (1-rule)(1-classifier)), capped below
  the tag threshold where it finds the attack neutralised; ``hate_target`` the identity group
  attacked ("axis/group"), null when none is known.
* ``profanity`` float: 1 - 0.5^n for n profane or sexual word-list matches.
* ``toxic_share`` float: share of the classifier's pieces at or above the tag threshold.
* ``tox_lexicon`` map category → count of offensive-lexicon matches (sexual, slur, profanity,
  violence; only categories found), ``tox_lexicon_density`` float: matches per word.
* ``pii_count`` int, ``pii`` map kind → count (pipeline.screen.pii's kinds).
* ``identity_terms`` map axis → count, ``identity_groups`` map "axis/group" → count,
  ``pronouns`` map he/she/they → count (only those found).
* ``flags`` array: ``toxic`` (hate or insult ≥ the tag threshold), ``profanity``,
  ``lexicon:<category>``, ``review``, ``pii``, ``url:blocklist``.
* ``reason``: null, ``url:blocklist``, ``pii:too_many``, ``hate:high``, or
  ``lexicon:<category>`` when a policy chooses to drop by word lists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

from core.errors import UsageError
from pipeline.screen.lexicons import (
    OFFENSIVE_CATEGORIES,
    identity_lexicon,
    offensive_lexicon,
    words,
)
from pipeline.screen.attacks import detector
from pipeline.screen.pii import mask_pii
from pipeline.screen.toxicity import MODEL_PATH, load_model
from pipeline.stage.config import load_config
from pipeline.stage.schema import REASON, TEXT, URL, stage_batch

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.yaml"

TOXICITY, TOX_LEXICON, TOX_DENSITY = "toxicity", "tox_lexicon", "tox_lexicon_density"
HATE, INSULT, PROFANITY, HATE_TARGET = "hate", "insult", "profanity", "hate_target"
TOXIC_SHARE = "toxic_share"
PII_COUNT, PII = "pii_count", "pii"
IDENTITY_TERMS, IDENTITY_GROUPS, PRONOUNS = "identity_terms", "identity_groups", "pronouns"
FLAGS = "flags"

_COUNTS = pa.map_(pa.string(), pa.int32())
ADDED_FIELDS = [
    pa.field(TOXICITY, pa.float32()),
    pa.field(HATE, pa.float32()),
    pa.field(INSULT, pa.float32()),
    pa.field(PROFANITY, pa.float32()),
    pa.field(HATE_TARGET, pa.string()),
    pa.field(TOXIC_SHARE, pa.float32()),
    pa.field(TOX_LEXICON, _COUNTS),
    pa.field(TOX_DENSITY, pa.float32()),
    pa.field(PII_COUNT, pa.int32()),
    pa.field(PII, _COUNTS),
    pa.field(IDENTITY_TERMS, _COUNTS),
    pa.field(IDENTITY_GROUPS, _COUNTS),
    pa.field(PRONOUNS, _COUNTS),
    pa.field(FLAGS, pa.list_(pa.string())),
]

TOXIC, REVIEW, PII_FLAG, PROFANITY_FLAG = "toxic", "review", "pii", "profanity"
R_URL, R_PII, R_HATE = "url:blocklist", "pii:too_many", "hate:high"
# A hate score where the detector found the attack reported, rejected or reclaimed: the
# classifier's score, but never above this (below the tag threshold: such text goes to review).
NEUTRALISED_CAP = 0.5
# A rule's attack tags a document of up to this many words even when the classifier's share
# of toxic pieces is small: one attack in a post is the post's point, not one window of a book.
RULE_MAX_WORDS = 1000

@dataclass
class ScreenPolicy:
    """What the screen drops. Tags are always written; these settings only decide removal."""

    # Dolma's PII rule: a document with more than this many PII spans is rejected (pii:too_many).
    pii_max_spans: int = 5
    # Replace PII spans with |||KIND||| placeholders in the text that is kept.
    mask_pii: bool = True
    # File of domains, one a line ('#' comments); a URL on one of them or a subdomain is dropped.
    url_blocklist: str | None = None
    # The `toxic` tag threshold; null = the one chosen on held-out data, saved beside the model.
    toxicity_tag_threshold: float | None = None
    # Drop (hate:high) a hate score at or above this: far above the tag threshold (0.72, odds 13x
    # higher), so that only text the classifier is near-certain about goes: on held-out data,
    # no benign sentence about a group, no window of a held-out book, 2 of 2,000 benign tweets
    # and forum sentences, and a sixth to a third of the hateful and offensive tweets.
    toxicity_drop_threshold: float = 0.97
    # A document is tagged `toxic` (and can be dropped for toxicity) only when at least this
    # share of its paragraph pieces score at or above the tag threshold. A short text is one
    # or a few pieces, so one toxic piece suffices; a book of a thousand pieces needs fifty,
    # not the one or two windows a 0.2% false-positive rate gives any long text.
    toxic_min_share: float = 0.05
    # Word-list categories that drop a document (sexual, slur, profanity, violence); default none.
    lexicon_drop_categories: list[str] = field(default_factory=list)
    # Matches of those categories needed to drop.
    lexicon_drop_min_count: int = 1
    # A document flagged only by word lists that names an identity group is tagged `review` and
    # never dropped by the word-list rule. Turning this off brings back C4's harm.
    protect_identity: bool = True
    # Toxicity model (.npz with its .json beside it); null = the shipped one.
    toxicity_model: str | None = None
    # Read who is attacked and how (pipeline/screen/attacks.py); off: the classifier alone, as
    # the screen was before (the benchmark's baseline).
    detect_attacks: bool = True
    # The policy file these settings were read over (--policy); null: the default one. Set
    # by load_policy, recorded in the bias report with its sha256.
    policy_file: str | None = None


def load_policy(path: str | Path | None = None, overrides=None) -> ScreenPolicy:
    """The policy file (default: policies/default.yaml) with ``key=value`` overrides, checked."""
    policy = load_config(ScreenPolicy, path or DEFAULT_POLICY, overrides)
    if path:
        policy.policy_file = str(path)
    check_policy(policy)
    return policy


def check_policy(policy: ScreenPolicy) -> None:
    unknown = sorted(set(policy.lexicon_drop_categories) - set(OFFENSIVE_CATEGORIES))
    if unknown:
        raise UsageError(f"policy: unknown lexicon category {unknown[0]!r} "
                         f"(known: {', '.join(OFFENSIVE_CATEGORIES)})")
    if policy.pii_max_spans < 0 or policy.lexicon_drop_min_count < 1:
        raise UsageError("policy: pii_max_spans must be >= 0 and lexicon_drop_min_count >= 1")
    for name in ("toxicity_tag_threshold", "toxicity_drop_threshold"):
        value = getattr(policy, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise UsageError(f"policy: {name} must be within [0, 1], got {value}")


def read_blocklist(path: str | Path) -> frozenset[str]:
    """Domains from a file: one a line, ``#`` comments, ``*.`` and ``www.`` prefixes ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read URL blocklist {path}: {e.strerror or e}") from None
    domains = set()
    for line in lines:
        entry = line.split("#", 1)[0].strip().lower().rstrip(".")
        if not entry:
            continue
        if "://" in entry:
            entry = urlsplit(entry).hostname or ""
        entry = entry.removeprefix("*.").removeprefix("www.")
        if entry:
            domains.add(entry)
    return frozenset(domains)


def url_host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url if "://" in url else f"//{url}").hostname
    except ValueError:
        return None
    return host.rstrip(".") if host else None


def host_blocked(host: str | None, blocklist: frozenset[str]) -> bool:
    """The host or any parent domain of it is listed ("a.b.example.com" under "example.com")."""
    if not host or not blocklist:
        return False
    parts = host.split(".")
    return any(".".join(parts[i:]) in blocklist for i in range(len(parts)))


@dataclass(frozen=True)
class Screener:
    """Everything the executors need, decided once on the driver (picklable, small).

    The blocklist is read here, not on the executors, because on a cluster the user's file
    exists only where the job was submitted.
    """

    policy: ScreenPolicy
    blocklist: frozenset[str]
    tag_threshold: float
    model_path: str
    blocklist_file: str | None = None

    @classmethod
    def build(cls, policy: ScreenPolicy, url_blocklist: str | None = None) -> Screener:
        check_policy(policy)
        model_path = policy.toxicity_model or str(MODEL_PATH)
        model = load_model(model_path)
        tag = policy.toxicity_tag_threshold
        tag = model.threshold if tag is None else tag
        if policy.toxicity_drop_threshold <= tag:
            raise UsageError(
                f"policy: toxicity_drop_threshold {policy.toxicity_drop_threshold} must be above "
                f"the tag threshold {tag}: the screen drops only what is far above it")
        blocklist_file = url_blocklist or policy.url_blocklist
        blocklist = read_blocklist(blocklist_file) if blocklist_file else frozenset()
        return cls(policy, blocklist, float(tag), model_path, blocklist_file)


@dataclass
class Signals:
    """One document's measurements, before the policy looks at them."""

    toxicity: float = 0.0
    toxic_share: float = 1.0  # share of pieces at or above the tag threshold
    hate: float = 0.0
    insult: float = 0.0
    hate_target: str | None = None
    attack_rule: bool = False  # the detector found an attack (not only the classifier)
    neutralised: bool = False  # the detector found it reported, rejected or reclaimed
    lexicon: dict[str, int] = field(default_factory=dict)
    word_count: int = 0
    pii: dict[str, int] = field(default_factory=dict)
    identity_terms: dict[str, int] = field(default_factory=dict)
    identity_groups: dict[str, int] = field(default_factory=dict)
    pronouns: dict[str, int] = field(default_factory=dict)
    url_blocked: bool = False

    @property
    def pii_count(self) -> int:
        return sum(self.pii.values())

    @property
    def profane(self) -> int:
        """Word-list matches of rude words, any target: the ``profanity`` signal."""
        return self.lexicon.get("profanity", 0) + self.lexicon.get("sexual", 0)


def measure(text: str, lang: str | None = None) -> tuple[str, Signals]:
    """The masked text and every signal except toxicity (scored in batches by the caller)."""
    masked, pii = mask_pii(text or "")
    toks = words(masked.lower())
    lexicon = {c: n for c, n in offensive_lexicon().count(toks, lang).items() if n}
    ident = identity_lexicon()
    axes: dict[str, int] = {}
    groups: dict[str, int] = {}
    for _, _, term in ident.find(toks):
        axes[term.axis] = axes.get(term.axis, 0) + 1
        key = f"{term.axis}/{term.group}"
        groups[key] = groups.get(key, 0) + 1
    pronouns = {p: n for p, n in ident.pronoun_counts(toks).items() if n}
    return masked, Signals(toxicity=0.0, lexicon=lexicon, word_count=len(toks), pii=pii,
                           identity_terms=axes, identity_groups=groups, pronouns=pronouns)


def decide(sig: Signals, policy: ScreenPolicy,
           tag_threshold: float) -> tuple[list[str], str | None]:
    """Flags and the rejection reason (None = kept) for one document's signals.

    The order of the reasons is the order of certainty: a blocked domain and PII overload are
    facts about the document; a hate score is an opinion; a word list is weakest. Only hate
    drops: never profanity, an insult, a reclaimed slur or counter-speech.
    """
    flags = []
    enough = sig.toxic_share >= policy.toxic_min_share or (
        sig.attack_rule and sig.word_count <= RULE_MAX_WORDS)
    toxic = sig.toxicity >= tag_threshold and enough
    if toxic:
        flags.append(TOXIC)
    hit = [c for c in OFFENSIVE_CATEGORIES if sig.lexicon.get(c, 0) > 0]
    flags += [f"lexicon:{c}" for c in hit]
    if sig.profane:
        flags.append(PROFANITY_FLAG)
    protected = bool(hit) and not toxic and bool(sig.identity_terms)
    uncertain = not toxic and (NEUTRALISED_CAP <= sig.hate < tag_threshold or sig.neutralised)
    if protected or uncertain:
        flags.append(REVIEW)
    if sig.pii_count:
        flags.append(PII_FLAG)
    if sig.url_blocked:
        flags.append(R_URL)

    if sig.url_blocked:
        return flags, R_URL
    if sig.pii_count > policy.pii_max_spans:
        return flags, R_PII
    if toxic and sig.hate >= policy.toxicity_drop_threshold and not sig.neutralised:
        return flags, R_HATE
    if not (protected and policy.protect_identity):
        for c in policy.lexicon_drop_categories:
            if sig.lexicon.get(c, 0) >= policy.lexicon_drop_min_count:
                return flags, f"lexicon:{c}"
    return flags, None


def combine(sig: Signals, classifier: float, finding) -> None:
    """``hate`` and ``insult`` from the classifier's score and the detector's finding.

    The classifier knows rude words; the detector knows who is attacked. A rule's attack and
    the classifier agreeing make the score higher than either (1 - (1-a)(1-b)); an attack the
    detector found reported or reclaimed keeps the classifier's score but below the tag
    threshold. Where the detector finds nothing, both are the classifier's score: scaling it
    by whether a group is named would move the scores of sentences about the groups the
    identity lexicon knows against those it does not.
    """
    if finding is not None and finding.hate:
        sig.hate = 1.0 - (1.0 - finding.hate) * (1.0 - classifier)
        sig.hate_target, sig.attack_rule = finding.target, True
    elif finding is not None and finding.neutralised:
        sig.hate, sig.neutralised = min(classifier, NEUTRALISED_CAP), True
    else:
        sig.hate = classifier
    if finding is not None and finding.insult:
        sig.insult = 1.0 - (1.0 - finding.insult) * (1.0 - classifier)
        sig.attack_rule = True
    elif sig.neutralised:
        sig.insult = min(classifier, NEUTRALISED_CAP)
    else:
        sig.insult = classifier
    sig.toxicity = max(sig.hate, sig.insult)


def screen_documents(texts: list[str | None], urls: list[str | None] | None,
                     langs: list[str | None] | None, screener: Screener) -> list[dict]:
    """Screen a batch: one dict per document with the masked text, new columns and reason."""
    n = len(texts)
    urls = urls or [None] * n
    langs = langs or [None] * n
    masked, signals = [], []
    for text, url, lang in zip(texts, urls, langs):
        m, sig = measure(text or "", lang)
        sig.url_blocked = host_blocked(url_host(url), screener.blocklist)
        masked.append(m)
        signals.append(sig)
    scores, shares = load_model(screener.model_path).score_documents_share(
        masked, screener.tag_threshold)
    attacks = detector() if screener.policy.detect_attacks else None
    out = []
    for text, m, sig, score, share in zip(texts, masked, signals, scores, shares):
        sig.toxic_share = float(share)
        score = float(score)
        slur = sig.lexicon.get("slur", 0) > 0
        if attacks is None:
            sig.toxicity = sig.hate = sig.insult = score
        else:
            look = attacks.worth_reading(m, bool(sig.identity_terms) or slur)
            finding = attacks.find(m) if look else None
            combine(sig, score, finding)
        flags, reason = decide(sig, screener.policy, screener.tag_threshold)
        out.append({
            TEXT: m if screener.policy.mask_pii else text,
            TOXICITY: sig.toxicity,
            HATE: sig.hate,
            INSULT: sig.insult,
            PROFANITY: 1.0 - 0.5 ** sig.profane,
            HATE_TARGET: sig.hate_target,
            TOXIC_SHARE: sig.toxic_share,
            TOX_LEXICON: sig.lexicon,
            TOX_DENSITY: sum(sig.lexicon.values()) / sig.word_count if sig.word_count else 0.0,
            PII_COUNT: sig.pii_count,
            PII: sig.pii,
            IDENTITY_TERMS: sig.identity_terms,
            IDENTITY_GROUPS: sig.identity_groups,
            PRONOUNS: sig.pronouns,
            FLAGS: flags,
            REASON: reason,
        })
    return out


def screen_batch(batch: pa.RecordBatch, screener: Screener) -> pa.RecordBatch:
    """The Spark stage's function: the input columns (text masked), the new ones, ``reason``."""
    names = batch.schema.names
    texts = batch.column(TEXT).to_pylist()
    urls = batch.column(URL).to_pylist() if URL in names else None
    langs = batch.column("lang").to_pylist() if "lang" in names else None
    rows = screen_documents(texts, urls, langs, screener)
    added = []
    for f in ADDED_FIELDS:
        values = [r[f.name] for r in rows]
        if pa.types.is_map(f.type):
            values = [sorted(v.items()) for v in values]
        added.append((f, pa.array(values, f.type)))
    return stage_batch(batch, added, [r[REASON] for r in rows],
                       replace={TEXT: pa.array([r[TEXT] for r in rows], pa.string())})
