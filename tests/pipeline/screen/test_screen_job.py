"""jobs/bias_screen.py on Spark, and the bias report's numbers on a crafted corpus."""
from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_job

from core.errors import UsageError
from pipeline.screen import bias_report
from pipeline.stage import stagedir

# (id, text, url). Four documents name Muslims, two of them on a blocked domain; one is PII
# overload; one is flagged only by a word list and names a group (review); the rest are plain.
DOCS = [
    ("d0", "Muslims pray together at the mosque every Friday.", "http://spam.example/a"),
    ("d1", "Muslims and Christians shared the harvest festival.", "http://www.spam.example/b"),
    ("d2", "Muslims opened a new library downtown near the mosque.", "http://news.example/c"),
    ("d3", "Many Muslims volunteer at the food bank.", None),
    ("d4", " ".join(f"user{i}@mail.example.org" for i in range(6)), None),
    ("d5", "The damn gay bar was loud last night.", None),
    ("d6", "She told him the train was late.", None),
    ("d7", "The bridge was painted green.", None),
    ("d8", "They planted tomatoes and beans.", None),
    ("d9", "Rain is expected tomorrow afternoon.", None),
    ("d10", "This damn printer jammed again.", None),
]


def write_input(folder) -> str:
    (folder / "data").mkdir(parents=True)
    n = len(DOCS)
    table = pa.table({"id": [d[0] for d in DOCS], "text": [d[1] for d in DOCS],
                      "source": ["test"] * n, "url": pa.array([d[2] for d in DOCS], pa.string()),
                      "metadata": ["{}"] * n})
    pq.write_table(table, folder / "data" / "part-00000.parquet")
    (folder / stagedir.SUCCESS).write_text("")
    return str(folder)


@pytest.fixture(scope="module")
def screened(spark, tmp_path_factory):
    """The job run once with the default policy and a blocklist; PMI floors lowered to 1."""
    root = tmp_path_factory.mktemp("screen")
    src = write_input(root / "in")
    block = root / "block.txt"
    block.write_text("spam.example\n")
    out = str(root / "out")
    mp = pytest.MonkeyPatch()
    for name in ("PMI_MIN_GROUP_DOCS", "PMI_MIN_WORD_DOCS", "PMI_MIN_PAIR_DOCS"):
        mp.setattr(bias_report, name, 1)
    try:
        load_job("bias_screen")(["--input", src, "--output", out,
                                 "--url-blocklist", str(block)])
    finally:
        mp.undo()
    kept = {r["id"]: r for r in pq.read_table(stagedir.data_dir(out)).to_pylist()}
    rejected = {r["id"]: r for r in pq.read_table(stagedir.rejected_dir(out)).to_pylist()}
    report = json.loads((root / "out" / "bias_report.json").read_text())
    return root, src, out, kept, rejected, report


@pytest.mark.slow
def test_job_writes_a_complete_stage_folder(screened):
    root, _, out, kept, rejected, _ = screened
    stats = stagedir.read_stats(out)
    assert stagedir.is_complete(out)
    assert stats["docs_in"] == len(DOCS) == stats["docs_kept"] + stats["docs_rejected"]
    assert stats["rejected_by_reason"] == {"url:blocklist": 2, "pii:too_many": 1}
    assert {r["id"]: r["reason"] for r in rejected.values()} == {
        "d0": "url:blocklist", "d1": "url:blocklist", "d4": "pii:too_many"}
    # Word lists alone never drop by default; the group-naming one is tagged review.
    assert "d10" in kept and "review" not in kept["d10"]["flags"]
    assert "review" in kept["d5"]["flags"] and "lexicon:profanity" in kept["d5"]["flags"]
    assert "@" not in rejected["d4"]["text"] and rejected["d4"]["pii_count"] == 6
    assert dict(kept["d3"]["identity_groups"]) == {"religion/muslim": 1}
    assert dict(kept["d6"]["pronouns"]) == {"she": 1, "he": 1}
    assert all(0.0 <= r["toxicity"] < 1.0 for r in kept.values())
    assert (root / "out" / "bias_report.html").read_text().count("data:image/png;base64") >= 4


@pytest.mark.slow
def test_report_numbers_on_the_crafted_corpus(screened):
    report = screened[5]
    o = report["overall"]
    assert (o["docs"], o["removed"], o["review"]) == (11, 3, 1)
    assert o["removal_rate"] == pytest.approx(3 / 11)
    assert o["removed_by_reason"] == {"pii:too_many": 1, "url:blocklist": 2}
    axes = {r["key"]: r for r in report["identity"]["axes"]}
    religion = axes["religion"]
    assert (religion["docs"], religion["mentions"], religion["removed"]) == (4, 5, 2)
    assert religion["disparity_ratio"] == pytest.approx((2 / 4) / (3 / 11))
    # 2 of 4 against 3 of 11 is 1.8x, but four documents cannot tell that from chance.
    assert religion["p_value"] == pytest.approx(1 - (1 - 1.5 * 3 / 11) ** 4
                                                - 4 * (1.5 * 3 / 11) * (1 - 1.5 * 3 / 11) ** 3)
    assert religion["warn"] is False and religion["too_few"] is True
    groups = {r["key"]: r for r in report["identity"]["groups"]}
    assert groups["religion/christian"]["removal_rate"] == 1.0
    assert groups["sexual_orientation/gay"] == {**groups["sexual_orientation/gay"],
                                                "docs": 1, "removed": 0, "review": 1,
                                                "warn": False, "too_few": False}
    assert report["warnings"] == []
    assert "axis religion (2/4)" in report["too_few_to_tell"]
    pronouns = {p["key"]: p["mentions"] for p in report["identity"]["pronouns"]}
    assert pronouns == {"he": 1, "she": 1, "they": 1}
    pii = {k["key"]: (k["docs"], k["mentions"]) for k in report["pii"]["by_kind"]}
    assert pii == {"EMAIL_ADDRESS": (1, 6)} and report["pii"]["spans"] == 6
    lex = {c["key"]: c for c in report["toxicity"]["lexicon_by_category"]}
    assert lex["profanity"]["docs"] == 2 and lex["profanity"]["review"] == 1
    assert sum(report["toxicity"]["histogram"]["counts"]) == 11
    assert report["top_removed_domains"] == [
        {"domain": "spam.example", "docs": 1, "removed": 1, "removal_rate": 1.0},
        {"domain": "www.spam.example", "docs": 1, "removed": 1, "removal_rate": 1.0}]
    # "mosque" is in 2 of the 4 documents naming Muslims and in no other: PMI log(11*2/(4*2)).
    muslim = {w["word"]: w for w in report["pmi"]["religion/muslim"]}
    assert muslim["mosque"]["pmi"] == pytest.approx(math.log(11 / 4), abs=1e-4)
    prov = report["provenance"]
    assert {f["file"] for f in prov["lexicons"]} >= {"offensive_en.tsv", "identity_en.tsv"}
    assert all(len(f["sha256"]) == 64 for f in prov["lexicons"])
    assert len(prov["policy"]["sha256"]) == 64 and len(prov["model"]["sha256"]) == 64
    assert prov["url_blocklist"]["domains"] == 1


@pytest.mark.slow
def test_a_policy_that_drops_by_word_list_still_protects_groups(screened, tmp_path):
    src = screened[1]
    policy = tmp_path / "strict.yaml"
    policy.write_text("lexicon_drop_categories: [profanity]\n")
    out = str(tmp_path / "out")
    load_job("bias_screen")(["--input", src, "--output", out, "--policy", str(policy)])
    rejected = {r["id"]: r["reason"] for r in pq.read_table(stagedir.rejected_dir(out)).to_pylist()}
    assert rejected == {"d4": "pii:too_many", "d10": "lexicon:profanity"}  # d5 names a group
    stats = stagedir.read_stats(out)
    assert stats["config"]["lexicon_drop_categories"] == ["profanity"]


def test_user_mistakes_fail_before_spark(tmp_path):
    main = load_job("bias_screen")
    with pytest.raises(UsageError, match="input not found"):
        main(["--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("toxicity_drop_threshold: 2\n")
    with pytest.raises(UsageError, match="toxicity_drop_threshold must be within"):
        main(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--policy", str(bad)])
    with pytest.raises(UsageError, match="cannot read URL blocklist"):
        main(["--input", str(tmp_path), "--output", str(tmp_path / "o"),
              "--url-blocklist", str(tmp_path / "missing.txt")])


def test_disparity_rows_and_warnings_without_spark():
    rows = bias_report.disparity_rows(
        [{"key": "a", "docs": 100, "removed": 50, "toxic": 1, "mentions": 120, "review": 0},
         {"key": "b", "docs": 10, "removed": 1, "toxic": 0, "mentions": 10, "review": 2},
         {"key": "c", "docs": 0, "removed": 0, "toxic": 0, "mentions": 0, "review": 0},
         {"key": "d", "docs": 10, "removed": 5, "toxic": 0, "mentions": 10, "review": 0}],
        overall_removed=0.2, overall_toxic=0.05)
    a, b, c, d = rows
    assert a["removal_rate"] == 0.5 and a["disparity_ratio"] == pytest.approx(2.5) and a["warn"]
    assert a["p_value"] == pytest.approx(2.206e-5, rel=1e-3)
    assert b["disparity_ratio"] == pytest.approx(0.5) and not b["warn"] and not b["too_few"]
    assert c["removal_rate"] is None and not c["warn"] and c["p_value"] is None
    # The same 2.5x on 10 documents: P(X >= 5 | 10, 0.3) = 0.15, chance cannot be ruled out.
    assert d["p_value"] == pytest.approx(0.1503, abs=1e-4) and not d["warn"] and d["too_few"]
    report = {"identity": {"axes": rows, "groups": []}, "overall": {"removal_rate": 0.2}}
    assert bias_report.warnings(report) == [
        "axis a: 50/100 removed (50.00%), 2.50x the overall rate 20.00% (p=2.2e-05)"]
    assert bias_report.too_few_to_tell(report) == ["axis d (5/10)"]
    none_removed = bias_report.disparity_rows(
        [{"key": "x", "docs": 3, "removed": 1, "toxic": 0, "mentions": 3, "review": 0}],
        overall_removed=0.0, overall_toxic=0.0)
    assert none_removed[0]["disparity_ratio"] == math.inf and none_removed[0]["warn"]
