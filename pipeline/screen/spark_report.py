"""The bias report's numbers, computed by Spark over a complete bias_screen folder, and the
stage's side output that writes the report beside it (``bias_report`` renders it).

Every count is a DataFrame aggregation: nothing but the report's own rows reaches the driver.
"""
from __future__ import annotations

from pyspark.sql import Window
from pyspark.sql import functions as F

from pipeline.screen.bias_report import (
    PMI_MAX_WORDS_PER_DOC,
    PMI_MIN_GROUP_DOCS,
    PMI_MIN_PAIR_DOCS,
    PMI_MIN_WORD_DOCS,
    PMI_TOP,
    TOP_DOMAINS,
    TOXICITY_BINS,
    _rate,
    disparity_rows,
    provenance,
    too_few_to_tell,
    warnings,
    write,
)
from pipeline.screen.lexicons import identity_lexicon, words
from pipeline.stage import stagedir


def write_report(spark, output: str, settings, stats: dict) -> None:
    """The bias_screen stage's side output: bias_report.json and .html in its folder."""
    from pipeline.screen.policy import Screener
    from pipeline.spark.runner import versions

    screener = Screener.build(settings)
    write(output, compute(spark, output, provenance(screener, settings.policy_file, versions())))


def compute(spark, out_dir: str, provenance: dict) -> dict:
    """Every number of the report, from the complete stage folder ``out_dir``."""
    from pipeline.screen.policy import (
        FLAGS,
        HATE,
        HATE_TARGET,
        IDENTITY_GROUPS,
        INSULT,
        PROFANITY_FLAG,
        IDENTITY_TERMS,
        PII,
        PII_COUNT,
        PRONOUNS,
        REVIEW,
        TOX_LEXICON,
        TOXIC,
        TOXICITY,
    )
    from pipeline.stage.schema import REASON

    cols = ["id", "url", "text", TOXICITY, HATE, INSULT, HATE_TARGET, TOX_LEXICON, PII,
            PII_COUNT, IDENTITY_TERMS, IDENTITY_GROUPS, PRONOUNS, FLAGS]
    kept = spark.read.parquet(stagedir.data_dir(out_dir)).select(*cols).withColumn(
        REASON, F.lit(None).cast("string"))
    rejected = spark.read.parquet(stagedir.rejected_dir(out_dir)).select(*cols, REASON)
    docs = kept.withColumn("removed", F.lit(0)).unionByName(
        rejected.withColumn("removed", F.lit(1)))
    tag = float(provenance.get("tag_threshold") or 0.5)
    docs = docs.withColumns({
        "is_toxic": F.array_contains(FLAGS, TOXIC).cast("int"),
        "is_review": F.array_contains(FLAGS, REVIEW).cast("int"),
        "is_hate": (F.array_contains(FLAGS, TOXIC) & (F.col(HATE) >= tag)).cast("int"),
        "is_insult": (F.array_contains(FLAGS, TOXIC) & (F.col(INSULT) >= tag)).cast("int"),
        "is_profane": F.array_contains(FLAGS, PROFANITY_FLAG).cast("int"),
    })

    tot = docs.agg(F.count(F.lit(1)).alias("docs"), F.sum("removed").alias("removed"),
                   F.sum("is_toxic").alias("toxic"), F.sum("is_review").alias("review"),
                   F.sum(PII_COUNT).alias("pii_spans")).first()
    n_docs, n_removed = int(tot["docs"]), int(tot["removed"] or 0)
    n_toxic, n_review = int(tot["toxic"] or 0), int(tot["review"] or 0)
    overall = {
        "docs": n_docs, "removed": n_removed, "removal_rate": _rate(n_removed, n_docs),
        "toxic": n_toxic, "toxic_rate": _rate(n_toxic, n_docs),
        "review": n_review, "review_rate": _rate(n_review, n_docs),
        "removed_by_reason": {r[REASON]: int(r["n"]) for r in rejected.groupBy(REASON).agg(
            F.count(F.lit(1)).alias("n")).orderBy(REASON).collect()},
        "flags": {r["flag"]: {"docs": int(r["n"]), "removed": int(r["removed"])}
                  for r in docs.select(F.explode(FLAGS).alias("flag"), "removed").groupBy(
                      "flag").agg(F.count(F.lit(1)).alias("n"),
                                  F.sum("removed").alias("removed")).orderBy("flag").collect()},
    }

    def by_key(map_col: str) -> list[dict]:
        rows = docs.select("removed", "is_toxic", "is_review",
                           F.explode(map_col).alias("key", "n")).groupBy("key").agg(
            F.count(F.lit(1)).alias("docs"), F.sum("n").alias("mentions"),
            F.sum("removed").alias("removed"), F.sum("is_toxic").alias("toxic"),
            F.sum("is_review").alias("review")).orderBy("key").collect()
        return [{k: (int(r[k]) if k != "key" else r[k]) for k in
                 ("key", "docs", "mentions", "removed", "toxic", "review")} for r in rows]

    identity = {
        "axes": disparity_rows(by_key(IDENTITY_TERMS), overall["removal_rate"],
                               overall["toxic_rate"]),
        "groups": disparity_rows(by_key(IDENTITY_GROUPS), overall["removal_rate"],
                                 overall["toxic_rate"]),
        "pronouns": by_key(PRONOUNS),
        "docs_naming_any_group": int(docs.filter(F.size(IDENTITY_TERMS) > 0).count()),
    }
    # Each signal by identity group: a screen that tags people for who they are shows here.
    signals = [
        {"key": r["key"], **{k: int(r[k] or 0) for k in ("docs", "hate", "targeted", "insult",
                                                          "profanity", "review", "removed")}}
        for r in docs.select("is_hate", "is_insult", "is_profane", "is_review", "removed",
                             HATE_TARGET, F.explode(IDENTITY_GROUPS).alias("key", "n"))
        .groupBy("key").agg(F.count(F.lit(1)).alias("docs"), F.sum("is_hate").alias("hate"),
                            F.sum("is_insult").alias("insult"),
                            F.sum("is_profane").alias("profanity"),
                            F.sum("is_review").alias("review"),
                            F.sum("removed").alias("removed"),
                            F.sum((F.col(HATE_TARGET) == F.col("key")).cast("int"))
                            .alias("targeted"))
        .orderBy("key").collect()
    ]
    identity["signals_by_group"] = signals
    lexicon = by_key(TOX_LEXICON)
    for r in lexicon:
        r["share_of_docs"] = _rate(r["docs"], n_docs)
    pii = by_key(PII)
    hist = {int(r["b"]): int(r["n"]) for r in docs.select(
        F.least(F.floor(F.col(TOXICITY) * TOXICITY_BINS), F.lit(TOXICITY_BINS - 1)).alias("b")
    ).groupBy("b").agg(F.count(F.lit(1)).alias("n")).collect() if r["b"] is not None}

    domains = [
        {"domain": r["host"], "docs": int(r["docs"]), "removed": int(r["removed"]),
         "removal_rate": _rate(int(r["removed"]), int(r["docs"]))}
        for r in docs.withColumn("host", F.lower(F.expr("parse_url(url, 'HOST')")))
        .filter(F.col("host").isNotNull()).groupBy("host")
        .agg(F.count(F.lit(1)).alias("docs"), F.sum("removed").alias("removed"))
        .filter(F.col("removed") > 0).orderBy(F.desc("removed"), "host")
        .limit(TOP_DOMAINS).collect()
    ]

    report = {
        "overall": overall,
        "identity": identity,
        "toxicity": {
            "tag_threshold": provenance.get("tag_threshold"),
            "drop_threshold": provenance.get("drop_threshold"),
            "histogram": {"bins": TOXICITY_BINS,
                          "counts": [hist.get(i, 0) for i in range(TOXICITY_BINS)]},
            "lexicon_by_category": lexicon,
        },
        "pii": {"spans": int(tot["pii_spans"] or 0), "by_kind": pii},
        "pmi": _pmi(docs, F, Window, n_docs),
        "top_removed_domains": domains,
        "provenance": provenance,
    }
    report["warnings"] = warnings(report)
    report["too_few_to_tell"] = too_few_to_tell(report)
    return report


def _pmi(docs, F, Window, n_docs: int) -> dict[str, list[dict]]:
    """Per identity group, the words whose document frequency rises most where it is named.

    PMI(w, g) = log(P(w | g) / P(w)) over documents, with floors on counts so that a word
    seen once beside a group does not top the list. Stop words and the identity terms
    themselves are left out: they say nothing about how a group is written about.
    """
    from pyspark.ml.feature import StopWordsRemover

    stop = set(StopWordsRemover.loadDefaultStopWords("english"))
    stop |= {w for e in identity_lexicon().entries for w in words(e.term)}
    stop |= {"email_address", "phone_number", "ip_address", "credit_card", "iban"}
    from pipeline.screen.policy import IDENTITY_GROUPS

    tokens = docs.select(
        IDENTITY_GROUPS,
        F.slice(F.array_distinct(F.filter(F.split(F.lower("text"), r"[^\p{L}]+"),
                                          lambda w: F.length(w) >= 3)),
                1, PMI_MAX_WORDS_PER_DOC).alias("words"))
    word_df = tokens.select(F.explode("words").alias("word")).groupBy("word").agg(
        F.count(F.lit(1)).alias("n_w")).filter(F.col("n_w") >= PMI_MIN_WORD_DOCS)
    named = tokens.filter(F.size(IDENTITY_GROUPS) > 0).select(
        F.explode(F.map_keys(IDENTITY_GROUPS)).alias("group"), "words")
    group_df = named.groupBy("group").agg(F.count(F.lit(1)).alias("n_g")).filter(
        F.col("n_g") >= PMI_MIN_GROUP_DOCS)
    pairs = named.select("group", F.explode("words").alias("word")).groupBy("group", "word").agg(
        F.count(F.lit(1)).alias("n_gw")).filter(F.col("n_gw") >= PMI_MIN_PAIR_DOCS)
    scored = (pairs.join(group_df, "group").join(word_df, "word")
              .filter(~F.col("word").isin(sorted(stop)))
              .withColumn("pmi", F.log(F.col("n_gw") * F.lit(float(n_docs))
                                       / (F.col("n_g") * F.col("n_w")))))
    top = scored.withColumn("rank", F.row_number().over(
        Window.partitionBy("group").orderBy(F.desc("pmi"), "word"))).filter(
        F.col("rank") <= PMI_TOP).orderBy("group", "rank").collect()
    out: dict[str, list[dict]] = {}
    for r in top:
        out.setdefault(r["group"], []).append(
            {"word": r["word"], "pmi": round(float(r["pmi"]), 4), "docs": int(r["n_gw"])})
    return out


# --- rendering (plain Python) ---------------------------------------------------------------
