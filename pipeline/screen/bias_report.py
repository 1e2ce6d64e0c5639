"""The bias report of a screened stage folder: who was removed, who was tagged, and by what.

``spark_report.compute`` runs Spark aggregations over the folder's ``data/`` and ``rejected/``
(nothing is collected but the aggregates, so it scales with the corpus); this module is plain
Python over the resulting dict: the statistics, ``render_html`` and ``write``. The numbers answer the question blocklist filtering got
wrong: is text that names a group removed more often than text in general? The removal rate
of documents naming each identity axis and group is set against the overall rate; a ratio
above ``WARN_RATIO`` (1.5) is listed under ``warnings`` when it is more than chance: a group of
four documents with one removed is 3x a 10% rate by luck alone, and a report that cries wolf on
every small group gets ignored. Such ratios stay in the tables, marked as too few to tell.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from core.files import json_ready
from core.render import png
from pipeline.stage import stagedir

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


def provenance(screener, policy_file: str | None, versions: dict[str, str]) -> dict:
    """What decided the numbers: each lexicon, the policy, the model and the blocklist, by
    version and sha256, so that two reports can be compared knowing what changed."""
    from core.files import file_sha256
    from pipeline.screen.lexicons import all_files
    from pipeline.screen.policy import DEFAULT_POLICY
    from pipeline.stage.config import config_dict

    model = Path(screener.model_path)
    policy_path = Path(policy_file) if policy_file else DEFAULT_POLICY
    out = {
        "lexicons": [{"file": f.name, "version": f.version, "sha256": f.sha256}
                     for f in all_files()],
        "policy": {"file": str(policy_path), "sha256": file_sha256(policy_path),
                   "settings": {k: v for k, v in config_dict(screener.policy).items()
                                if k != "policy_file"}},
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
    return png(fig, dpi=90, tight_bbox=True)


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
        out.append(png(fig, dpi=90, tight_bbox=True))
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
    if idn.get("signals_by_group"):
        parts.append("<h2>Signals by identity group</h2><p>Documents naming each group, and "
                     "how many of them are tagged hate, insult or profanity, hate aimed at the "
                     "group itself (targeted), sent to review and removed. Profanity never "
                     "removes a document.</p>" + _table(
                         ["group", "documents", "hate", "targeted", "insult", "profanity",
                          "review", "removed"],
                         [[r["key"], r["docs"], r["hate"], r["targeted"], r["insult"],
                           r["profanity"], r["review"], r["removed"]]
                          for r in idn["signals_by_group"]]))
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


def write(out_dir: str, report: dict) -> None:
    """``bias_report.json`` and ``bias_report.html`` in the stage folder."""
    stagedir.atomic_write_text(Path(stagedir.local_path(out_dir)) / "bias_report.json",
                               json.dumps(json_ready(report), indent=2, sort_keys=True) + "\n")
    stagedir.atomic_write_text(Path(stagedir.local_path(out_dir)) / "bias_report.html",
                               render_html(report))
