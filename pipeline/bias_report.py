"""The bias report of a screened stage folder: who was removed, who was tagged, and by what.

``compute`` runs Spark aggregations over the folder's ``data/`` and ``rejected/`` (nothing is
collected but the aggregates, so it scales with the corpus); ``render_html`` and ``write`` are
plain Python over the resulting dict. The numbers answer the question blocklist filtering got
wrong: is text that names a group removed more often than text in general? The removal rate
of documents naming each identity axis and group is set against the overall rate; a ratio
above ``WARN_RATIO`` (1.5) is listed under ``warnings`` when it is more than chance: a group of
four documents with one removed is 3x a 10% rate by luck alone, and a report that cries wolf on
every small group gets ignored. Such ratios stay in the tables, marked as too few to tell.

Pyspark is imported inside ``compute`` only: this module is Spark's caller, not a stage.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from pipeline import stagedir
from pipeline.lexicons import identity_lexicon, words

WARN_RATIO = 1.5
# A ratio warns only when "this key's rate is at most WARN_RATIO x overall" is rejected at
# this level by a one-sided exact binomial test.
WARN_P = 0.05
TOP_DOMAINS = 20
PMI_TOP = 10
PMI_MIN_GROUP_DOCS = 5
PMI_MIN_WORD_DOCS = 5
PMI_MIN_PAIR_DOCS = 3
PMI_MAX_WORDS_PER_DOC = 2000
TOXICITY_BINS = 20


def _rate(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _ratio(rate: float | None, overall: float | None) -> float | None:
    if rate is None or overall is None:
        return None
    if overall == 0:
        return 0.0 if rate == 0 else math.inf
    return rate / overall


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the p-value of k events in n against a rate p."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p))


def excess_p(k: int, n: int, overall: float | None) -> float | None:
    """One-sided p-value of "k of n is at most WARN_RATIO x the overall rate"."""
    if overall is None or not n:
        return None
    return binom_sf(k, n, min(1.0, WARN_RATIO * overall))


def disparity_rows(counts: list[dict], overall_removed: float | None,
                   overall_toxic: float | None) -> list[dict]:
    """Removal and ``toxic`` rates of each identity key against the overall rates.

    ``warn`` needs both a ratio above WARN_RATIO and a p-value below WARN_P; ``too_few`` marks
    a ratio above WARN_RATIO on too few documents to tell it from chance.
    """
    rows = []
    for c in counts:
        removed_rate = _rate(c["removed"], c["docs"])
        toxic_rate = _rate(c["toxic"], c["docs"])
        ratio = _ratio(removed_rate, overall_removed)
        p = excess_p(c["removed"], c["docs"], overall_removed)
        high = ratio is not None and ratio > WARN_RATIO
        significant = p is not None and p < WARN_P
        rows.append({
            **c,
            "removal_rate": removed_rate,
            "disparity_ratio": ratio,
            "p_value": p,
            "toxic_rate": toxic_rate,
            "toxic_ratio": _ratio(toxic_rate, overall_toxic),
            "warn": high and significant,
            "too_few": high and not significant,
        })
    return sorted(rows, key=lambda r: r["key"])


def warnings(report: dict) -> list[str]:
    out = []
    for level, word in (("axes", "axis"), ("groups", "group")):
        for r in report["identity"][level]:
            if r["warn"]:
                ratio = "inf" if r["disparity_ratio"] == math.inf else f"{r['disparity_ratio']:.2f}"
                out.append(
                    f"{word} {r['key']}: {r['removed']}/{r['docs']} removed "
                    f"({r['removal_rate']:.2%}), {ratio}x the overall rate "
                    f"{report['overall']['removal_rate']:.2%} (p={r['p_value']:.2g})")
    return out


def too_few_to_tell(report: dict) -> list[str]:
    """Keys above WARN_RATIO whose excess could be chance, so a reader knows they were seen."""
    return [f"{word} {r['key']} ({r['removed']}/{r['docs']})"
            for level, word in (("axes", "axis"), ("groups", "group"))
            for r in report["identity"][level] if r["too_few"]]


def run_screen(spark, df, out_dir: str, screener, *, policy_file: str | None = None,
               overwrite: bool = False, inputs: list[str] | None = None) -> tuple[dict, dict]:
    """The bias_screen stage on ``df`` then its report: (stats, report).

    One call for jobs/bias_screen.py and for a job that runs every corpus stage.
    """
    from functools import partial

    from pipeline import spark_stage
    from pipeline.screen import ADDED_FIELDS, screen_batch

    reports: list[dict] = []

    def write_report(_stats: dict) -> None:
        report = compute(spark, out_dir, provenance(screener, policy_file,
                                                    spark_stage.versions()))
        write(out_dir, report)
        reports.append(report)

    stats = spark_stage.map_stage(
        spark, df, partial(screen_batch, screener=screener), out_dir, stage="bias_screen",
        config=screener.policy, add_fields=ADDED_FIELDS, overwrite=overwrite, inputs=inputs,
        before_complete=write_report)
    return stats, reports[0]


def provenance(screener, policy_file: str | None, versions: dict[str, str]) -> dict:
    """What decided the numbers: each lexicon, the policy, the model and the blocklist, by
    version and sha256, so that two reports can be compared knowing what changed."""
    from pipeline.config import config_dict
    from pipeline.lexicons import all_files
    from pipeline.screen import DEFAULT_POLICY, file_sha256

    model = Path(screener.model_path)
    policy_path = Path(policy_file) if policy_file else DEFAULT_POLICY
    out = {
        "lexicons": [{"file": f.name, "version": f.version, "sha256": f.sha256}
                     for f in all_files()],
        "policy": {"file": str(policy_path), "sha256": file_sha256(policy_path),
                   "settings": config_dict(screener.policy)},
        "model": {"file": str(model), "sha256": file_sha256(model),
                  "meta_sha256": file_sha256(model.with_suffix(".json"))},
        "url_blocklist": None,
        "tag_threshold": screener.tag_threshold,
        "drop_threshold": screener.policy.toxicity_drop_threshold,
        "versions": versions,
    }
    if screener.blocklist_file:
        out["url_blocklist"] = {"file": screener.blocklist_file,
                                "sha256": file_sha256(screener.blocklist_file),
                                "domains": len(screener.blocklist)}
    return out


def compute(spark, out_dir: str, provenance: dict) -> dict:
    """Every number of the report, from the complete stage folder ``out_dir``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from pipeline.schema import REASON
    from pipeline.screen import (FLAGS, IDENTITY_GROUPS, IDENTITY_TERMS, PII, PII_COUNT,
                                 PRONOUNS, REVIEW, TOX_LEXICON, TOXIC, TOXICITY)

    cols = ["id", "url", "text", TOXICITY, TOX_LEXICON, PII, PII_COUNT, IDENTITY_TERMS,
            IDENTITY_GROUPS, PRONOUNS, FLAGS]
    kept = spark.read.parquet(stagedir.data_dir(out_dir)).select(*cols).withColumn(
        REASON, F.lit(None).cast("string"))
    rejected = spark.read.parquet(stagedir.rejected_dir(out_dir)).select(*cols, REASON)
    docs = kept.withColumn("removed", F.lit(0)).unionByName(
        rejected.withColumn("removed", F.lit(1)))
    docs = docs.withColumns({
        "is_toxic": F.array_contains(FLAGS, TOXIC).cast("int"),
        "is_review": F.array_contains(FLAGS, REVIEW).cast("int"),
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
    from pipeline.screen import IDENTITY_GROUPS

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


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "inf" if v == math.inf else f"{v:.4g}"
    return html.escape(str(v))


def _table(headers: list[str], rows: list[list[Any]], warn_col: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cls = ' class="warn"' if warn_col is not None and row[warn_col] == "yes" else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return ('<img alt="plot" src="data:image/png;base64,'
            + base64.b64encode(buf.getvalue()).decode("ascii") + '">')


def _bars(labels: list[str], values: list[float], title: str, xlabel: str,
          line: float | None = None, line_label: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not labels:
        return ""
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(labels) + 1.2))
    ax.barh(range(len(labels)), values, color="#4c72b0")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    if line is not None:
        ax.axvline(line, color="#c44e52", linestyle="--", label=line_label)
        ax.legend(loc="lower right")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _png(fig)


def plots(report: dict) -> list[str]:
    """The report's figures as inline PNG ``<img>`` tags."""
    o = report["overall"]
    axes = report["identity"]["axes"]
    groups = [g for g in report["identity"]["groups"] if g["docs"]]
    out = [
        _bars([a["key"] for a in axes], [a["removal_rate"] or 0 for a in axes],
              "Removal rate by identity axis", "share of documents removed",
              o["removal_rate"], "overall"),
        _bars([g["key"] for g in groups], [g["removal_rate"] or 0 for g in groups],
              "Removal rate by identity group", "share of documents removed",
              o["removal_rate"], "overall"),
        _bars([a["key"] for a in axes], [a["docs"] for a in axes],
              "Documents naming each axis", "documents"),
        _bars([p["key"] for p in report["identity"]["pronouns"]],
              [p["mentions"] for p in report["identity"]["pronouns"]],
              "Pronouns", "occurrences"),
        _bars([c["key"] for c in report["toxicity"]["lexicon_by_category"]],
              [c["share_of_docs"] or 0 for c in report["toxicity"]["lexicon_by_category"]],
              "Offensive-lexicon matches by category", "share of documents"),
        _bars([k["key"] for k in report["pii"]["by_kind"]],
              [k["mentions"] for k in report["pii"]["by_kind"]], "PII spans by kind", "spans"),
    ]
    counts = report["toxicity"]["histogram"]["counts"]
    if sum(counts):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 2.5))
        n = len(counts)
        ax.bar([(i + 0.5) / n for i in range(n)], counts, width=1 / n, color="#55a868")
        ax.set_yscale("log")
        ax.set_xlabel("toxicity (highest paragraph score)")
        ax.set_ylabel("documents")
        t = report["toxicity"]
        for x, label, color in ((t["tag_threshold"], "toxic tag", "#dd8452"),
                                (t["drop_threshold"], "drop", "#c44e52")):
            if x is not None:
                ax.axvline(x, linestyle="--", color=color, label=label)
        ax.legend()
        ax.set_title("Toxicity")
        out.append(_png(fig))
    return [p for p in out if p]


def render_html(report: dict) -> str:
    o = report["overall"]
    idn = report["identity"]
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Bias report</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}table{border-collapse:"
        "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "td:first-child{text-align:left}tr.warn{background:#fdd}img{max-width:100%}</style>",
        "<h1>Bias report</h1>",
        f"<p>{o['docs']:,} documents screened, {o['removed']:,} removed "
        f"({(o['removal_rate'] or 0):.2%}); {o['toxic']:,} tagged toxic, {o['review']:,} tagged "
        "review (flagged only by word lists and naming a group: never removed by default).</p>",
    ]
    if report["warnings"]:
        parts.append("<h2>Warnings</h2><ul>" + "".join(
            f"<li>{html.escape(w)}</li>" for w in report["warnings"]) + "</ul>")
    else:
        parts.append(f"<p>No identity axis or group is removed more than {WARN_RATIO}x as "
                     f"often as documents overall, beyond chance (one-sided binomial test, "
                     f"p &lt; {WARN_P}).</p>")
    if report.get("too_few_to_tell"):
        parts.append(f"<p>Above {WARN_RATIO}x on too few documents to tell from chance: "
                     + html.escape(", ".join(report["too_few_to_tell"])) + ".</p>")
    parts.append("<h2>Removed by reason</h2>" + _table(
        ["reason", "documents"], [[k, v] for k, v in o["removed_by_reason"].items()]))
    heads = ["key", "documents", "mentions", "removed", "removal rate", "ratio to overall",
             f"p (ratio ≤ {WARN_RATIO}x)", "toxic rate", "toxic ratio", "review"]
    for level in ("axes", "groups"):
        parts.append(f"<h2>Identity {level}</h2>" + _table(
            heads + ["warn"],
            [[r["key"], r["docs"], r["mentions"], r["removed"], r["removal_rate"],
              r["disparity_ratio"], r["p_value"], r["toxic_rate"], r["toxic_ratio"], r["review"],
              "yes" if r["warn"] else ("too few" if r["too_few"] else "")]
             for r in idn[level]], warn_col=10))
    parts.append("<h2>Pronouns</h2>" + _table(
        ["pronoun", "documents", "mentions", "removed"],
        [[p["key"], p["docs"], p["mentions"], p["removed"]] for p in idn["pronouns"]]))
    parts.append("<h2>Offensive lexicon by category</h2>" + _table(
        ["category", "documents", "share", "matches", "removed", "review"],
        [[c["key"], c["docs"], c["share_of_docs"], c["mentions"], c["removed"], c["review"]]
         for c in report["toxicity"]["lexicon_by_category"]]))
    parts.append("<h2>PII by kind</h2>" + _table(
        ["kind", "documents", "spans", "removed"],
        [[k["key"], k["docs"], k["mentions"], k["removed"]] for k in report["pii"]["by_kind"]]))
    parts.append("<h2>Words most associated with each group (PMI)</h2>" + _table(
        ["group", "words (documents)"],
        [[g, ", ".join(f"{w['word']} ({w['docs']})" for w in ws)]
         for g, ws in sorted(report["pmi"].items())]))
    parts.append("<h2>Top removed domains</h2>" + _table(
        ["domain", "documents", "removed", "removal rate"],
        [[d["domain"], d["docs"], d["removed"], d["removal_rate"]]
         for d in report["top_removed_domains"]]))
    parts.append("<h2>Plots</h2>" + "".join(plots(report)))
    parts.append("<h2>Lexicons, policy, model</h2><pre>" + html.escape(
        json.dumps(report["provenance"], indent=2, sort_keys=True)) + "</pre>")
    return "\n".join(parts) + "\n"


def json_safe(value: Any) -> Any:
    """``value`` with infinite ratios (a group removed when nothing else was) as "inf": JSON
    has no infinity, and Python's ``Infinity`` breaks other readers."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def write(out_dir: str, report: dict) -> None:
    """``bias_report.json`` and ``bias_report.html`` in the stage folder."""
    stagedir.atomic_write_text(Path(stagedir.local_path(out_dir)) / "bias_report.json",
                               json.dumps(json_safe(report), indent=2, sort_keys=True) + "\n")
    stagedir.atomic_write_text(Path(stagedir.local_path(out_dir)) / "bias_report.html",
                               render_html(report))
