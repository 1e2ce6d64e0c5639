"""Short statements we wrote ourselves, by family, to measure whether the screen tags attacks
on people rather than rude words.

Each family has its own templates, filled with identity groups (and, for slur families, with
slurs read from the offensive lexicon at run time, so none is spelt out here). The templates of
each family are split in two by their position: even ones form ``dev``, odd ones ``test``. The
detector's word lists and patterns were written and adjusted while reading ``dev`` only; the
``test`` phrasings were written at the same time, before any run, and never looked at while
tuning, so the test figures measure phrasings the rules were not fitted to.

No public hate-speech test suite was read or used to write these.
"""
from __future__ import annotations

import random

GROUPS = ["women", "trans people", "gay people", "black people", "Muslims", "Jews",
          "immigrants", "disabled people", "Mexicans", "Asians", "lesbians", "Hindus"]

HATEFUL = {
    "derogation": [
        "{g} are disgusting.", "All {g} are lazy and stupid.",
        "{g} are a burden on everyone else.", "Honestly, {g} are just inferior.",
        "I really can't stand {g}.", "{g} make me sick.",
        "Typical {g}, always so dishonest.", "{g} are completely worthless to society.",
    ],
    "dehumanisation": [
        "{g} are vermin.", "{g} are nothing but animals.",
        "{g} are a plague on this country.", "{g} are parasites, all of them.",
        "{g} are rats.", "Those {g} are just filthy pigs.",
        "{g} are a cancer on our society.", "{g} are less than human.",
    ],
    "threat": [
        "{g} should be shot.", "We should kill all {g}.",
        "I want to see {g} hanged.", "{g} deserve to die.",
        "Deport all {g} now.", "{g} should be locked up, every single one.",
        "Death to {g}.", "Someone needs to get rid of {g} for good.",
    ],
    "opinion_question": [
        "Why are {g} so violent?", "I think {g} are a threat to our way of life.",
        "Is it just me or are {g} always so dirty?", "In my opinion {g} are criminals.",
        "Don't you agree that {g} are stupid?", "I just feel like {g} are dangerous.",
        "Aren't {g} basically parasites?", "Let's be honest, {g} are the problem.",
    ],
    "exclusion": [
        "{g} don't belong here.", "No {g} allowed in this neighbourhood.",
        "{g} should go back where they came from.", "{g} should not be allowed to vote.",
        "We don't want {g} in our town.", "{g} are not welcome here.",
        "Ban {g} from our schools.", "{g} have no place in this country.",
    ],
}
SLUR_HATEFUL = [
    "Those {s} should all die.", "I hate {s}.", "Get those {s} out of here.",
    "{s} are disgusting.", "Kill the {s}.", "Nobody wants {s} around.",
]
OBFUSCATE_FROM = ("derogation", "dehumanisation", "threat")

NON_HATEFUL = {
    "counter_speech": [
        "Saying that {g} are vermin is disgusting.", "It's wrong to claim {g} are criminals.",
        "People who say {g} are a plague are bigots.", "Stop calling {g} animals.",
        "I can't believe anyone still thinks {g} are inferior.",
        "When he said {g} should be shot, everyone left the room.",
        "\"{g} are disgusting\" is a hateful thing to say.",
        "No one should say that {g} deserve to die.",
    ],
    "negated": [
        "{g} are not disgusting.", "{g} are not a burden on anyone.",
        "I don't hate {g}.", "{g} are never the problem.",
        "{g} are not criminals.", "I don't think {g} are dangerous.",
        "{g} do not deserve any of this hatred.", "Nobody believes {g} are inferior.",
    ],
    "neutral": [
        "Many {g} live in this city.", "I met some {g} at the conference.",
        "The report looks at how {g} use public transport.", "{g} were interviewed for the study.",
        "My neighbours are {g}.", "There is a new museum exhibit about {g}.",
        "The survey asked {g} about their jobs.", "Several {g} joined the club this year.",
    ],
    "positive": [
        "{g} are wonderful.", "I love working with {g}.",
        "{g} have made this country better.", "So proud of the {g} in our community.",
        "{g} are brilliant and kind.", "We should celebrate {g}.",
        "{g} deserve respect.", "{g} are welcome here.",
    ],
    "profanity_untargeted": [
        "Fuck, I missed the bus again.", "This shit is amazing.",
        "Holy shit, what a game!", "Damn, that concert was fucking great.",
        "Well, shit happens.", "What the fuck is wrong with my laptop today?",
        "I'm so fucking tired.", "That was a damn good burger.",
    ],
}
RECLAIMED = [
    "I'm a proud {s}.", "As a {s} myself, I love this parade.", "We {s} have to stick together.",
    "Me and my fellow {s} are going out tonight.",
]
# The slurs that communities use of themselves; the rest appear only in hateful statements.
RECLAIMABLE = ("dyke", "dykes", "nigga", "fag", "tranny")


def obfuscate(text: str, rng: random.Random) -> str:
    """One disguise: leet digits, a letter swapped, dropped or doubled, or letters spaced."""
    words = text.split()
    long = [i for i, w in enumerate(words) if len(w.strip(".,!?")) >= 5]
    if not long:
        return text
    i = rng.choice(long)
    w = words[i]
    kind = rng.randrange(4)
    if kind == 0:
        w = w.translate(str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "$"}))
    elif kind == 1:
        j = rng.randrange(1, len(w) - 2)
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    elif kind == 2:
        j = rng.randrange(1, len(w) - 1)
        w = w[:j] + w[j + 1:]
    else:
        w = " ".join(w)
    words[i] = w
    return " ".join(words)


def statements(split: str, slurs: list[str]) -> list[dict]:
    """Every statement of ``split`` ("dev" or "test"): text, label, family, group."""
    parity = 0 if split == "dev" else 1
    rng = random.Random(f"statements:{split}")
    out = []

    def add(text, label, family, group):
        out.append({"text": text, "label": label, "family": family, "group": group})

    for family, templates in HATEFUL.items():
        for t in templates[parity::2]:
            for g in GROUPS:
                add(t.format(g=g), "hate", family, g)
                if family in OBFUSCATE_FROM:
                    add(obfuscate(t.format(g=g), rng), "hate", "obfuscated", g)
    hateful_slurs = [s for s in slurs if s not in RECLAIMABLE]
    for t in SLUR_HATEFUL[parity::2]:
        for s in hateful_slurs:
            add(t.format(s=s), "hate", "slur", None)
    for family, templates in NON_HATEFUL.items():
        for t in templates[parity::2]:
            if "{g}" in t:
                for g in GROUPS:
                    add(t.format(g=g), "benign", family, g)
            else:
                add(t, "benign", family, None)
    for t in RECLAIMED[parity::2]:
        for s in RECLAIMABLE:
            add(t.format(s=s), "benign", "reclaimed", None)
    return out


def lexicon_slurs() -> list[str]:
    """Plain slur words of the English offensive lexicon (no wildcards, one word)."""
    from pipeline.screen.lexicons import offensive_lexicon

    terms = offensive_lexicon().terms["en"]["slur"]
    return sorted({t.rstrip("*") for t in terms if " " not in t and len(t.rstrip("*")) >= 3})
