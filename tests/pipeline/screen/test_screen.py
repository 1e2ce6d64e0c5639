"""The bias screen's rules on strings: lexicons, identity terms, the policy, the batch function."""
from __future__ import annotations

import pyarrow as pa
import pytest

from core.errors import UsageError
from pipeline.screen.lexicons import (
    IdentityLexicon,
    OffensiveLexicon,
    all_files,
    identity_lexicon,
    offensive_lexicon,
    words,
)
from pipeline.screen.policy import (
    ADDED_FIELDS,
    Screener,
    ScreenPolicy,
    Signals,
    decide,
    host_blocked,
    load_policy,
    measure,
    read_blocklist,
    screen_batch,
    screen_documents,
    url_host,
)
from pipeline.stage.schema import BASE_SCHEMA, REASON

TAG = 0.6


def lex(text, lang=None):
    return {c: n for c, n in offensive_lexicon().count(words(text.lower()), lang).items() if n}


def groups(text):
    return [f"{t.axis}/{t.group}" for _, _, t in identity_lexicon().find(words(text.lower()))]


# --- lexicons --------------------------------------------------------------------------------


def test_lexicon_counts_by_category_whole_words_only():
    assert lex("What the fuck, you fucking bitch.") == {"profanity": 3}
    assert lex("I will kill you") == {"violence": 1}
    # Substrings of ordinary words never match: class, Scunthorpe, assess, cocktail, shitake.
    assert lex("The class went to Scunthorpe to assess cocktails and grapes.") == {}


def test_lexicon_multiword_terms_span_spaces_and_hyphens():
    assert lex("he is a son of a   bitch") == {"profanity": 1}
    assert lex("a blow-job") == {"sexual": 1}


def test_lexicon_leaves_out_identity_words_and_everyday_words():
    text = ("Gay and lesbian Jews, Muslims and Black women met; Dick Cheney's cock crowed, "
            "the pipe burst, she ate con carne.")
    assert lex(text) == {}


def test_lexicon_language_follows_the_document():
    german = "scheiße, du arschloch"
    assert lex(german, "de") == {"profanity": 2}
    assert lex(german, "en") == {}
    assert lex(german, None) == {"profanity": 2}  # language unknown: every list
    assert lex("fuck", "de") == {"profanity": 1}  # English is always included


def test_lexicon_files_carry_provenance_and_parse():
    files = all_files()
    assert {f.name for f in files} >= {"offensive_en.tsv", "offensive_de.tsv",
                                       "identity_en.tsv"}
    for f in files:
        head = f.path.read_text(encoding="utf-8").split("\n", 12)
        assert any(line.startswith("# provenance:") for line in head), f.name
        assert any(line.startswith("# licence:") for line in head), f.name
        assert len(f.sha256) == 64 and f.version == "1"
    assert len(OffensiveLexicon().languages) >= 5


def test_bad_lexicon_file_is_a_usage_error(tmp_path):
    (tmp_path / "offensive_xx.tsv").write_text("nastiness\tword\n", encoding="utf-8")
    with pytest.raises(UsageError, match="unknown category"):
        OffensiveLexicon(tmp_path)
    bad = tmp_path / "identity_en.tsv"
    bad.write_text("gender\twomen\tadj\n", encoding="utf-8")
    with pytest.raises(UsageError, match="4 tab-separated"):
        IdentityLexicon(bad)


def test_identity_terms_by_axis_and_group():
    assert groups("Muslims and Jews; an African-American woman") == [
        "religion/muslim", "religion/jewish", "race_ethnicity/black", "gender/women"]
    # An everyday adjective names a group only before a word for people.
    assert groups("the black cat in the old house") == []
    assert groups("black people and old men") == [
        "race_ethnicity/black", "age/old", "gender/men"]


def test_pronoun_counts():
    toks = words("She said he told them; her book, his pen, their house.".lower())
    assert identity_lexicon().pronoun_counts(toks) == {"he": 2, "she": 2, "they": 2}


# --- measure and the policy ----------------------------------------------------------------


def test_measure_masks_pii_and_counts_everything():
    masked, sig = measure("Write to jane.doe@example.com, you bitch. She is a gay teacher.")
    assert "jane.doe@example.com" not in masked and "|||EMAIL_ADDRESS|||" in masked
    assert sig.pii == {"EMAIL_ADDRESS": 1} and sig.pii_count == 1
    assert sig.lexicon == {"profanity": 1}
    assert sig.identity_terms == {"sexual_orientation": 1}
    assert sig.identity_groups == {"sexual_orientation/gay": 1}
    assert sig.pronouns == {"she": 1}


def test_default_drops_pii_overload_over_five_spans():
    policy = ScreenPolicy()
    assert decide(Signals(pii={"EMAIL_ADDRESS": 5}), policy, TAG) == (["pii"], None)
    assert decide(Signals(pii={"EMAIL_ADDRESS": 4, "IP_ADDRESS": 2}), policy, TAG) == (
        ["pii"], "pii:too_many")


def test_blocklisted_url_is_dropped():
    assert decide(Signals(url_blocked=True), ScreenPolicy(), TAG) == (
        ["url:blocklist"], "url:blocklist")


def test_toxicity_tags_above_threshold_and_only_hate_drops_far_above():
    policy = ScreenPolicy(toxicity_drop_threshold=0.97)
    assert decide(Signals(toxicity=0.3, hate=0.3), policy, TAG) == ([], None)
    assert decide(Signals(toxicity=0.8, hate=0.8), policy, TAG) == (["toxic"], None)
    assert decide(Signals(toxicity=0.98, hate=0.98), policy, TAG) == (["toxic"], "hate:high")
    # An insult is tagged, never dropped, however sure.
    assert decide(Signals(toxicity=0.99, insult=0.99), policy, TAG) == (["toxic"], None)
    # Hate the detector found reported or reclaimed is never dropped.
    assert decide(Signals(toxicity=0.98, hate=0.98, neutralised=True), policy, TAG)[1] is None
    # One toxic window in a long document (a share under toxic_min_share) is not a toxic
    # document: neither tagged nor dropped.
    assert decide(Signals(toxicity=0.98, hate=0.98, toxic_share=0.002), policy, TAG) == (
        [], None)
    assert decide(Signals(toxicity=0.8, hate=0.8, toxic_share=0.2), policy, TAG) == (
        ["toxic"], None)
    # The uncertain middle goes to review.
    assert decide(Signals(toxicity=0.55, hate=0.55), policy, TAG) == (["review"], None)


def test_word_lists_never_drop_by_default():
    sig = Signals(lexicon={"slur": 3, "profanity": 2})
    assert decide(sig, ScreenPolicy(), TAG) == (
        ["lexicon:slur", "lexicon:profanity", "profanity"], None)


def test_protected_rule_lexicon_only_naming_a_group_is_review_never_dropped():
    policy = ScreenPolicy(lexicon_drop_categories=["slur"])
    named = Signals(toxicity=0.1, lexicon={"slur": 1}, identity_terms={"religion": 1})
    assert decide(named, policy, TAG) == (["lexicon:slur", "review"], None)
    # Without a group, the same word-list hit drops under this policy.
    plain = Signals(toxicity=0.1, lexicon={"slur": 1})
    assert decide(plain, policy, TAG) == (["lexicon:slur"], "lexicon:slur")
    # The classifier agreeing makes it more than a word-list flag: no review, dropped.
    both = Signals(toxicity=0.9, lexicon={"slur": 1}, identity_terms={"religion": 1})
    assert decide(both, policy, TAG) == (["toxic", "lexicon:slur"], "lexicon:slur")
    # Only by turning the protection off does the word list drop text about a group.
    off = ScreenPolicy(lexicon_drop_categories=["slur"], protect_identity=False)
    assert decide(named, off, TAG)[1] == "lexicon:slur"


def test_reason_order_url_then_pii_then_toxicity():
    sig = Signals(toxicity=0.99, hate=0.99, pii={"PHONE_NUMBER": 9}, url_blocked=True)
    assert decide(sig, ScreenPolicy(), TAG)[1] == "url:blocklist"
    sig.url_blocked = False
    assert decide(sig, ScreenPolicy(), TAG)[1] == "pii:too_many"


def test_blocklist_file_and_host_matching(tmp_path):
    f = tmp_path / "block.txt"
    f.write_text("# spam farms\nExample.COM\n*.bad.org  # and all below\n"
                 "https://www.x.net/path\n\n")
    block = read_blocklist(f)
    assert block == {"example.com", "bad.org", "x.net"}
    assert host_blocked(url_host("http://a.b.example.com/x?y"), block)
    assert host_blocked(url_host("example.com/page"), block)
    assert not host_blocked(url_host("http://notexample.com/"), block)
    assert not host_blocked(url_host(None), block)
    with pytest.raises(UsageError, match="cannot read URL blocklist"):
        read_blocklist(tmp_path / "missing.txt")


def test_policy_file_and_bad_settings(tmp_path):
    policy = load_policy()
    assert policy.pii_max_spans == 5 and policy.lexicon_drop_categories == []
    assert policy.protect_identity is True
    bad = tmp_path / "p.yaml"
    bad.write_text("pii_max_span: 3\n")
    with pytest.raises(UsageError, match="unknown config key 'pii_max_span'"):
        load_policy(bad)
    with pytest.raises(UsageError, match="unknown lexicon category 'nasty'"):
        load_policy(None, ["lexicon_drop_categories=nasty"])
    with pytest.raises(UsageError, match="must be above the tag threshold"):
        Screener.build(load_policy(None, ["toxicity_drop_threshold=0.5",
                                          "toxicity_tag_threshold=0.6"]))


# --- the batch function --------------------------------------------------------------------


@pytest.fixture(scope="module")
def screener(tmp_path_factory):
    block = tmp_path_factory.mktemp("block") / "block.txt"
    block.write_text("spam.example\n")
    return Screener.build(load_policy(), str(block))


def test_screen_documents_on_strings(screener):
    texts = ["You are a fucking idiot and a bitch, fuck you.",
             "Gay and lesbian couples can marry in many countries.",
             "Muslims gather for prayer at the mosque on Friday.",
             "",
             "A fine recipe.",
             " ".join(f"user{i}@mail.example.org" for i in range(6))]
    urls = [None, None, None, None, "http://www.spam.example/r", None]
    rows = screen_documents(texts, urls, None, screener)
    assert "toxic" in rows[0]["flags"] and rows[0]["toxicity"] > screener.tag_threshold
    for r in rows[1:3]:
        assert r["toxicity"] < screener.tag_threshold and r["reason"] is None
        assert r["identity_terms"]
    assert rows[3]["toxicity"] == 0.0 and rows[3]["flags"] == []
    assert rows[4]["reason"] == "url:blocklist"
    assert rows[5]["reason"] == "pii:too_many" and rows[5]["pii_count"] == 6
    assert "@" not in rows[5]["text"]


def test_screen_batch_keeps_columns_and_rows(screener):
    n = 3
    batch = pa.RecordBatch.from_pydict({
        "id": ["a", "b", "c"], "text": ["hello a@b.example.com", "fuck off", "she is deaf"],
        "source": ["s"] * n, "url": [None] * n, "metadata": ["{}"] * n,
        "lang": ["en", "en", None]}, schema=pa.schema(list(BASE_SCHEMA) + [
            pa.field("lang", pa.string())]))
    out = screen_batch(batch, screener)
    assert out.num_rows == n
    names = out.schema.names
    assert names[:6] == ["id", "text", "source", "url", "metadata", "lang"]
    assert names[6:] == [f.name for f in ADDED_FIELDS] + [REASON]
    rows = out.to_pylist()
    assert rows[0]["text"] == "hello |||EMAIL_ADDRESS|||"
    assert rows[0]["pii"] == [("EMAIL_ADDRESS", 1)] and rows[0]["pii_count"] == 1
    assert rows[1]["tox_lexicon"] == [("profanity", 1)]
    assert rows[2]["identity_groups"] == [("disability/deaf", 1)]
    assert rows[2]["pronouns"] == [("she", 1)]
