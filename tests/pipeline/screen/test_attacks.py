"""The attack detector (pipeline/screen/attacks.py): who is attacked, and how, on strings."""
from __future__ import annotations

import pytest

from pipeline.screen.attacks import deobfuscate, detector
from pipeline.screen.policy import Screener, load_policy, screen_documents


@pytest.fixture(scope="module")
def find():
    return detector().find


@pytest.mark.parametrize("text,kind,target", [
    ("Muslims are vermin.", "dehumanising", "religion/muslim"),
    ("Immigrants are all lazy criminals", "derogation", "nationality/immigrant"),
    ("Why are women always so stupid?", "derogation", "gender/women"),
    ("I really hate Jews", "contempt", "religion/jewish"),
    ("Black people should be deported", "threat", "race_ethnicity/black"),
    ("kill all the gay people", "threat", "sexual_orientation/gay"),
    ("Disabled people don't belong here", "exclusion", "disability/disabled"),
])
def test_attacks_on_a_group_are_hate_with_their_target(find, text, kind, target):
    f = find(text)
    assert (f.hate_kind, f.target) == (kind, target) and f.hate > 0.8


@pytest.mark.parametrize("text", ["k1ll all mu$lims", "Muslims are v e r m i n",
                                  "muslims are vremin", "Muuuuslims are vermiin"])
def test_disguised_spellings_are_read(find, text):
    assert find(text).hate > 0.8


@pytest.mark.parametrize("text", [
    "Muslims are not vermin.", "I don't hate Jews.", "Women are wonderful.",
    "Many immigrants live in this city.", "Fuck, I missed the bus again.",
])
def test_negation_praise_mentions_and_untargeted_profanity_are_not_hate(find, text):
    assert find(text).hate == 0.0


@pytest.mark.parametrize("text", [
    "Saying that Muslims are vermin is disgusting.",
    "People who claim immigrants are criminals are bigots.",
    "He said gay people should be shot, and everyone left.",
    "I don't think women are stupid.",
])
def test_counter_speech_and_reported_hate_are_neutralised(find, text):
    f = find(text)
    assert f.hate == 0.0 and f.neutralised == "counter"


def test_in_group_use_of_a_slur_is_reclaimed_not_hate(find):
    f = find("I'm a proud dyke and I love this parade")
    assert f.hate == 0.0 and f.neutralised == "reclaimed"
    assert find("those dykes should die").hate > 0.8


def test_insults_are_aimed_at_a_person(find):
    assert find("you are a fucking idiot").insult > 0.8
    assert find("this weather is fucking awful").insult == 0.0


def test_deobfuscate_undoes_common_disguises():
    assert deobfuscate("K1ll   a l l j3ws!!!") == "kill   all jews!!!"
    assert deobfuscate("f*ck they can't") == "fck they ca not"


def test_screen_columns_and_policy_drop_only_sure_hate():
    screener = Screener.build(load_policy())
    texts = ["Muslims are vermin.", "I'm a proud dyke.", "you are a fucking idiot",
             "Saying that Muslims are vermin is disgusting.", "Fuck, what a game."]
    rows = screen_documents(texts, None, None, screener)
    vermin, reclaimed, insult, counter, profane = rows
    assert vermin["hate_target"] == "religion/muslim" and "toxic" in vermin["flags"]
    assert vermin["toxicity"] == max(vermin["hate"], vermin["insult"])
    assert reclaimed["reason"] is None and "toxic" not in reclaimed["flags"]
    assert "toxic" in insult["flags"] and insult["reason"] is None
    assert insult["insult"] > insult["hate"] and insult["hate_target"] is None
    assert counter["reason"] is None and "review" in counter["flags"]
    assert profane["profanity"] > 0 and "profanity" in profane["flags"]
    assert profane["reason"] is None
    off = Screener.build(load_policy(None, {"detect_attacks": "false"}))
    before = screen_documents(texts, None, None, off)
    assert "toxic" not in before[0]["flags"]  # the classifier alone misses it
