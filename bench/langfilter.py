"""Language filter: keep/drop accuracy per language and throughput, against fastText alone.

    python -m bench.langfilter [--repeats 3] [--limit N]

Labelled text: ``../shared/data/multilingual/manpages_l10n.jsonl``, 3,839 man pages in 25
locales; the label is the locale of the Debian package the page came from. For each language L
the keep decision of ``--languages L`` (lid.176 says L with score >= 0.65) is compared with the
label, for our ``langid_batch`` and for fastText alone on the whole folded text (how FineWeb calls
it). The decision does not depend on L, so one prediction pass per method gives every L.

Throughput is CPU seconds of this process (``time.process_time``): the machine is shared, and
CPU time of a single-threaded loop is docs/s per core. Ours is timed end to end on Arrow batches
(text out of Arrow, sampling, prediction, reasons, the output batch); the baseline only runs
fastText's ``predict`` on texts folded beforehand. Best of ``--repeats`` for both.

A second pair compares the model alone: our compiled ``lid.176`` (``pipeline/langfilter/lid176.py``) and
fastText's batch ``predict`` on the same samples (``sample_text`` of every page, made
beforehand), with how often the two agree on the label (they should always).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa

from pipeline.langfilter.langid import (
    LangFilterConfig,
    langid_batch,
    lid,
    lid_code,
    model,
    sample_text,
)

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
DATA = SHARED / "multilingual" / "manpages_l10n.jsonl"
RESULTS = REPO / "bench" / "results" / "langfilter.json"

BATCH = 2000  # Spark's arrow batch size in pipeline/spark/runner.py
MIN_SCORE = LangFilterConfig.min_score


def load(limit: int | None) -> tuple[list[str], list[str]]:
    texts, gold = [], []
    with open(DATA, encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            texts.append(doc["text"])
            # Package locales as lid.176 codes: pt_BR -> pt, zh_CN and zh_TW -> zh, nb -> no.
            gold.append(lid_code(doc["lang"]))
            if limit and len(texts) >= limit:
                break
    return texts, gold


def batch_predict(ft, folded: list[str]) -> tuple[list[str], list[float]]:
    """fastText's own list ``predict``; a loop of single predictions where the list form is
    broken (fasttext-predict 0.9.2.4 returns labels without probabilities)."""
    try:
        labels, probs = ft.predict(folded, k=1)
        if len(probs) != len(folded):
            raise ValueError
        return [lab[0][9:] for lab in labels], [float(p[0]) for p in probs]
    except ValueError:
        out = [ft.predict(t, k=1) for t in folded]
        return [lab[0][9:] for lab, _ in out], [float(p[0]) for _, p in out]


def time_best(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.process_time()
        result = fn()
        best = min(best, time.process_time() - t0)
    return best, result


def keep_scores(langs, confident, gold, language):
    """Precision, recall and accuracy of ``--languages <language>`` against the label."""
    kept = [lang == language and ok for lang, ok in zip(langs, confident)]
    truth = [g == language for g in gold]
    tp = sum(k and t for k, t in zip(kept, truth))
    n_kept, n_true = sum(kept), sum(truth)
    return (tp / n_kept if n_kept else 1.0), (tp / n_true if n_true else 1.0), \
        sum(k == t for k, t in zip(kept, truth)) / len(gold)


def row(name, figure, unit, baseline, target, met, ratio=None):
    return {"name": name, "figure": round(figure, 4), "unit": unit,
            "baseline": None if baseline is None else round(baseline, 4),
            "ratio": None if ratio is None else round(ratio, 3), "target": target,
            "met": bool(met)}


def not_worse(name, ours, fasttext):
    """A row whose target is fastText alone's figure on the same pages."""
    return row(name, ours, "fraction", fasttext, round(fasttext, 4), ours >= fasttext - 1e-12,
               ours / fasttext if fasttext else None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--limit", type=int, default=None, help="first N pages only (quick look)")
    args = p.parse_args(argv)
    if not DATA.is_file():
        print(f"langfilter bench skipped: {DATA} not found")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"skipped": f"{DATA} not found", "rows": []}, indent=2))
        return 0

    texts, gold = load(args.limit)
    languages = sorted(set(gold))
    cfg = LangFilterConfig(languages=languages)
    ft = model()
    batches = [pa.RecordBatch.from_pydict({"id": [str(i) for i in range(s, s + len(chunk))],
                                           "text": chunk})
               for s in range(0, len(texts), BATCH) for chunk in [texts[s:s + BATCH]]]
    folded = [t.replace("\n", " ") for t in texts]

    def ours():
        # Filtering for all 24 languages at once: a page is kept under --languages L alone
        # exactly when it is kept here and tagged L.
        return [langid_batch(b, cfg) for b in batches]

    def baseline():
        res = [batch_predict(ft, folded[s:s + BATCH]) for s in range(0, len(folded), BATCH)]
        return [x for r in res for x in r[0]], [x >= MIN_SCORE for r in res for x in r[1]]

    ours()  # warm: model load, numba's compiled code, the character classes
    t_base, (b_langs, b_kept) = time_best(baseline, args.repeats)
    t_ours, out = time_best(ours, args.repeats)
    o_langs = [x for b in out for x in b.column("lang").to_pylist()]
    o_kept = [x is None for b in out for x in b.column("reason").to_pylist()]
    n = len(texts)
    chars = sum(map(len, texts))

    # The model alone, on the same samples: our lid.176 against fastText's batch predict.
    samples = [sample_text(t, cfg.windows, cfg.window_chars) for t in texts]
    sample_batches = [pa.array(samples[s:s + BATCH], pa.string())
                      for s in range(0, n, BATCH)]
    our_model, _ = lid()

    def fasttext_model():
        return [batch_predict(ft, samples[s:s + BATCH]) for s in range(0, n, BATCH)]

    t_ft_model, ft_predicted = time_best(fasttext_model, args.repeats)
    t_our_model, predicted = time_best(
        lambda: [our_model.predict(b) for b in sample_batches], args.repeats)
    f_langs = [lang for langs, _ in ft_predicted for lang in langs]
    m_langs = [our_model.labels[i] for labels, _ in predicted for i in labels]
    agreement = sum(a == b for a, b in zip(m_langs, f_langs)) / n

    per_lang = {}
    for lang in languages:
        po, ro, ao = keep_scores(o_langs, o_kept, gold, lang)
        pb, rb, ab = keep_scores(b_langs, b_kept, gold, lang)
        per_lang[lang] = {"docs": gold.count(lang), "precision": po, "recall": ro,
                          "accuracy": ao, "fasttext_precision": pb, "fasttext_recall": rb,
                          "fasttext_accuracy": ab}
    totals = {}
    # Every page is kept under exactly its predicted language, so these are the sums of the
    # per-language confusion tables.
    for name, langs_, kept_ in (("ours", o_langs, o_kept), ("fasttext", b_langs, b_kept)):
        kept = sum(kept_)
        right = sum(lang == g and k for lang, k, g in zip(langs_, kept_, gold))
        totals[name] = {"kept": kept, "kept_in_its_language": right, "wrong_keeps": kept - right,
                        "missed": n - right,
                        "top1_agreement": sum(a == g for a, g in zip(langs_, gold)) / n}
    errors = {k: v["wrong_keeps"] + v["missed"] for k, v in totals.items()}

    rows = [
        not_worse(f"langfilter keep accuracy, mean of {len(languages)} languages",
                  statistics.mean(d["accuracy"] for d in per_lang.values()),
                  statistics.mean(d["fasttext_accuracy"] for d in per_lang.values())),
        row("langfilter keep errors: wrong keeps + missed (lower is better)", errors["ours"],
            "docs", errors["fasttext"], errors["fasttext"], errors["ours"] <= errors["fasttext"],
            errors["ours"] / errors["fasttext"] if errors["fasttext"] else None),
    ]
    for lang, d in per_lang.items():
        rows.append(not_worse(f"langfilter precision {lang} ({d['docs']} pages)", d["precision"],
                              d["fasttext_precision"]))
        rows.append(not_worse(f"langfilter recall {lang} ({d['docs']} pages)", d["recall"],
                              d["fasttext_recall"]))
    speed, base_speed = n / t_ours, n / t_base
    median_chars = int(statistics.median(map(len, texts)))
    rows += [
        row("langfilter throughput vs fastText batch predict, same pages", speed, "docs/s/core",
            base_speed, 0.8, speed / base_speed >= 0.8, speed / base_speed),
        row(f"langfilter docs/s per core (man pages, median {median_chars} chars)", speed,
            "docs/s/core", base_speed, 20000, speed >= 20000, speed / base_speed),
        row("langfilter characters/s per core (whole documents read from Arrow)",
            chars / t_ours / 1e6, "Mchars/s/core", chars / t_base / 1e6, None, True,
            speed / base_speed),
        row("lid176 model alone vs fastText batch predict, same samples", n / t_our_model,
            "docs/s/core", n / t_ft_model, 0.8, t_ft_model / t_our_model >= 0.8,
            t_ft_model / t_our_model),
        row("lid176 label agreement with fastText predict, same samples", agreement,
            "fraction", 1.0, 1.0, agreement == 1.0, agreement),
    ]

    print(f"{'name':66s} {'figure':>10s} {'baseline':>10s} {'ratio':>7s} {'target':>8s}  met")
    for r in rows:
        print(f"{r['name']:66s} {r['figure']!s:>10s} {r['baseline']!s:>10s} "
              f"{r['ratio']!s:>7s} {r['target']!s:>8s}  {'yes' if r['met'] else 'NO'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "bench": "langfilter", "data": str(DATA), "docs": n, "chars": chars,
        "config": {"min_score": MIN_SCORE, "windows": cfg.windows,
                   "window_chars": cfg.window_chars},
        "cpu_seconds": {"ours": round(t_ours, 3), "fasttext": round(t_base, 3),
                        "lid176_model_on_samples": round(t_our_model, 3),
                        "fasttext_model_on_samples": round(t_ft_model, 3)},
        "totals": totals, "per_language": per_lang, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
