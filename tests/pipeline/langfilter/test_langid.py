"""Language filter: the sample fastText reads, the keep rule, the batch contract, the job."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO

from core.errors import UsageError
from pipeline.langfilter import langid
from pipeline.langfilter.langid import LangFilterConfig, langid_batch, sample_text
from pipeline.stage import stagedir
from pipeline.stage.schema import BASE_SCHEMA

EN = ("The quick brown fox jumps over the lazy dog while the children watch from the "
      "garden and their parents prepare dinner in the kitchen.")
DE = ("Die Katze schläft auf dem Sofa, während draußen der Regen gegen die Fenster "
      "prasselt und die Kinder in der Schule sitzen.")
FR = ("Le chat dort sur le canapé pendant que la pluie tombe dehors et que les enfants "
      "sont encore à l'école avec leurs amis.")
ZH = "今天天气很好，我们一起去公园散步，然后在湖边的餐厅吃午饭，下午回家休息。"
JA = "今日はとても良い天気なので、私たちは公園に散歩に行き、湖のそばのレストランで昼食を食べました。"
NOISE = "--verbose -x 12 /usr/bin/ls 0x1F {a=b} 3.14"


def batch(texts, **extra):
    cols = {"id": [str(i) for i in range(len(texts))], "text": texts,
            "source": ["t"] * len(texts)}
    cols.update(extra)
    return pa.RecordBatch.from_pydict(cols)


def test_sample_of_a_short_text_is_the_text_folded():
    assert sample_text("one\ntwo\nthree", 3, 300) == "one two three"


def test_sample_drops_language_neutral_tokens():
    got = sample_text("Use --force to overwrite /etc/passwd (see chmod(1)) at 10:30", 3, 300)
    assert got.split() == ["Use", "to", "overwrite", "at"]
    # A bracket inside unspaced CJK drops only the ASCII token, not the sentence.
    assert "封装的机制" in sample_text("封装的机制(scheme)是由核心提供", 3, 300)
    assert "scheme" not in sample_text("封装的机制(scheme)是由核心提供", 3, 300)


def test_sample_of_a_long_text_is_bounded_and_spans_head_to_tail():
    text = "head " + "middle words here " * 2000 + "the tail"
    got = sample_text(text, 3, 300)
    assert len(got) <= 3 * 300 + 3
    assert "\n" not in got
    assert got.startswith("head") and got.endswith("the tail")


@pytest.mark.parametrize("text,code", [(EN, "en"), (DE, "de"), (FR, "fr"), (ZH, "zh"),
                                       (JA, "ja")], ids=["en", "de", "fr", "zh", "ja"])
def test_predicts_common_languages(text, code):
    langs, scores = langid.predict([text], LangFilterConfig())
    assert langs == [code]
    assert 0.65 <= scores[0] <= 1.0


def test_keep_rule_and_reasons():
    cfg = LangFilterConfig(languages=["en", "fr"])
    out = langid_batch(batch([EN, DE, FR, NOISE, None]), cfg)
    assert out.column("lang").to_pylist()[:3] == ["en", "de", "fr"]
    assert out.column("reason").to_pylist() == [None, "lang:de", None, "lang:low_score",
                                                "lang:low_score"]


def test_min_score_moves_documents_to_low_score():
    strict = LangFilterConfig(languages=["en"], min_score=1.0)
    assert langid_batch(batch([EN]), strict).column("reason").to_pylist() == ["lang:low_score"]


def test_all_tags_without_dropping():
    out = langid_batch(batch([EN, DE, NOISE, ""]), LangFilterConfig(languages=["all"]))
    assert out.column("reason").null_count == 4
    assert out.column("lang").to_pylist()[:2] == ["en", "de"]


def test_batch_keeps_every_input_column_and_replaces_old_tags():
    b = batch([DE, EN], url=["u1", None], lang=["xx", "yy"], lang_score=[0.1, 0.2])
    out = langid_batch(b, LangFilterConfig(languages=["de"]))
    assert out.schema.names == ["id", "text", "source", "url", "lang", "lang_score", "reason"]
    assert out.column("url").to_pylist() == ["u1", None]
    assert out.column("lang").to_pylist() == ["de", "en"]
    assert out.schema.field("lang_score").type == pa.float32()
    assert out.num_rows == 2


def test_batch_reads_sliced_and_large_string_columns():
    cfg = LangFilterConfig(languages=["de"])
    want = langid_batch(batch([EN, DE, None, FR]), cfg)
    sliced = langid_batch(batch(["skipped", EN, DE, None, FR]).slice(1), cfg)
    wide = batch([EN, DE, None, FR])
    wide = wide.set_column(1, "text", wide.column(1).cast(pa.large_string()))
    for out in (sliced, langid_batch(wide, cfg)):
        for name in ("lang", "lang_score", "reason"):
            assert out.column(name).equals(want.column(name)), name
    assert want.column("reason").to_pylist() == ["lang:en", None, "lang:low_score", "lang:fr"]


def test_config_checks_codes():
    assert LangFilterConfig(languages="en, de").languages == ["en", "de"]
    # Locales as the man-page packages spell them map to lid.176's labels.
    assert LangFilterConfig(languages="pt_BR,zh_CN,zh-TW,nb,EN").languages == [
        "pt", "zh", "no", "en"]
    with pytest.raises(UsageError, match="unknown language code 'eng'"):
        LangFilterConfig(languages=["eng"])
    with pytest.raises(UsageError, match="cannot be combined"):
        LangFilterConfig(languages=["all", "en"])
    with pytest.raises(UsageError, match="min-score"):
        LangFilterConfig(min_score=1.5)


def test_language_list_matches_the_model():
    ft = langid.model()
    if not hasattr(ft, "get_labels"):
        pytest.skip("fasttext-predict cannot list labels; the full fasttext package can")
    assert {label[len("__label__"):] for label in ft.get_labels()} == langid.LID176_LANGUAGES


def test_not_worse_than_fasttext_alone_on_man_pages(shared_data):
    """On every 10th man page: no more keep errors than fastText on the whole text."""
    path = shared_data / "multilingual" / "manpages_l10n.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    texts, gold = [], []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % 10 == 0:
                doc = json.loads(line)
                texts.append(doc["text"])
                gold.append(langid.lid_code(doc["lang"]))
    ours = langid.predict(texts, LangFilterConfig())
    ft = langid.model()
    alone = [ft.predict(t.replace("\n", " "), k=1) for t in texts]
    alone = ([lab[0][9:] for lab, _ in alone], [float(p[0]) for _, p in alone])

    def errors(langs, scores):
        kept_right = sum(lang == g and s >= 0.65 for lang, s, g in zip(langs, scores, gold))
        kept = sum(s >= 0.65 for s in scores)
        return (kept - kept_right) + (len(gold) - kept_right)

    assert errors(*ours) <= errors(*alone)


def write_stage_folder(path, texts):
    data = path / "data"
    data.mkdir(parents=True)
    n = len(texts)
    table = pa.Table.from_pydict(
        {"id": [f"d{i}" for i in range(n)], "text": texts, "source": ["t"] * n,
         "url": [None] * n, "metadata": ["{}"] * n}, schema=BASE_SCHEMA)
    pq.write_table(table, data / "part-00000.parquet")
    stagedir.atomic_write_text(stagedir.success_path(path), "")


def run_job(argv):
    from conftest import load_job

    return load_job("langfilter")(argv)


def test_job_writes_kept_rejected_and_stats(spark, tmp_path):
    write_stage_folder(tmp_path / "in", [EN, DE, FR, NOISE, EN + " " + EN])
    out = tmp_path / "out"
    run_job(["--input", str(tmp_path / "in"), "--output", str(out), "--languages", "en,fr"])
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["docs_in"], stats["docs_kept"]) == (5, 3)
    assert stats["rejected_by_reason"] == {"lang:de": 1, "lang:low_score": 1}
    assert stats["config"]["languages"] == ["en", "fr"]
    kept = spark.read.parquet(str(out / "data")).select("lang").collect()
    assert sorted(r["lang"] for r in kept) == ["en", "en", "fr"]
    rejected = spark.read.parquet(str(out / "rejected")).select("reason").collect()
    assert {r["reason"] for r in rejected} == {"lang:de", "lang:low_score"}
    with pytest.raises(UsageError, match="already complete"):
        run_job(["--input", str(tmp_path / "in"), "--output", str(out)])


def test_job_partitions_by_language(spark, tmp_path):
    write_stage_folder(tmp_path / "in", [EN, DE, FR])
    out = tmp_path / "out"
    run_job(["--input", str(tmp_path / "in"), "--output", str(out), "--languages", "all",
             "--partition-by-lang"])
    assert sorted(p for p in os.listdir(out / "data") if p.startswith("lang=")) == [
        "lang=de", "lang=en", "lang=fr"]
    assert spark.read.parquet(str(out / "data")).count() == 3


def test_job_usage_errors(tmp_path):
    write_stage_folder(tmp_path / "in", [EN])
    with pytest.raises(UsageError, match="unknown language code"):
        run_job(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"),
                 "--languages", "english"])
    with pytest.raises(UsageError, match="input not found"):
        run_job(["--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o")])


def test_job_bad_usage_is_one_line_and_exit_2(tmp_path):
    write_stage_folder(tmp_path / "in", [EN])
    job = os.path.join(REPO, "jobs",
                       "langfilter.py")
    proc = subprocess.run([sys.executable, job, "--input", str(tmp_path / "in"), "--output",
                           str(tmp_path / "o"), "--min-score", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "min-score" in proc.stderr and "Traceback" not in proc.stderr
