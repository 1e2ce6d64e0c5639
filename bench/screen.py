"""Bias screen: does it tell hateful text from benign text about the same groups?

    python -m bench.screen [--limit N]

Held-out data only (the ``test`` split of tools/train_toxicity.py, by a hash of the id, never
trained on and not used to choose the threshold): tweets labelled hate / offensive / neither,
forum sentences labelled hate / noHate, offensive fortunes, 40% of the benign Wikipedia
sentences about people by group (``benign_identity_wikipedia.jsonl``), and windows of
held-out public-domain books. Every text goes through the real screen
(``pipeline.screen.policy.screen_documents`` with the default policy): ``tagged`` is the ``toxic``
flag, ``dropped`` a non-null reason.

The baseline is the offensive lexicon alone, used the way C4 used its list: tagged = any
match, dropped = any match. It shows what the classifier adds.

Per-group rates on small groups are noisy (one tag in a group of 30 is 3%), so beside the raw
largest ratio to the overall rate each group gets a one-sided exact binomial test of "rate >
1.5x overall"; the group target counts groups where that test rejects at p < 0.05.

So few benign sentences are tagged (a handful in ten thousand) that the tag rates by group
cannot show a bias either way. A sensitive probe therefore also asks the same question of the
classifier's scores: which groups' sentences fall in the top 5% of toxicity scores of all
held-out benign identity sentences more than 1.5x as often as 5%? A classifier that had learnt
a group's name as a toxic signal would show it here long before it tagged anything.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

# The report's own rule: a group is flagged when its rate is significantly above this x overall.
from pipeline.screen.bias_report import WARN_RATIO as DISPARITY
from pipeline.screen.bias_report import excess_p

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results" / "screen.json"
BATCH = 2000


def row(name, figure, unit, baseline, target, met, ratio=None):
    if ratio is None and baseline:
        ratio = figure / baseline
    return {"name": name, "figure": round(figure, 4), "unit": unit,
            "baseline": None if baseline is None else round(baseline, 4),
            "ratio": None if ratio is None or math.isinf(ratio) else round(ratio, 3),
            "target": target, "met": bool(met)}


def screen_all(texts: list[str], screener) -> tuple[list[dict], float]:
    from pipeline.screen.policy import screen_documents

    out = []
    start = time.process_time()
    for i in range(0, len(texts), BATCH):
        out.extend(screen_documents(texts[i:i + BATCH], None, None, screener))
    return out, time.process_time() - start


def family_rows(before, after, rows: list[dict]) -> dict:
    """Per family of our own test statements (bench/screen_statements.py, ``test`` split) and
    of the shared ToxiGen statements (their held-out split): tagged and dropped, before (the
    classifier alone) and after (with the attack detector)."""
    from bench.screen_statements import lexicon_slurs, statements
    from tools.train_toxicity import split_of

    sets = {"own": statements("test", lexicon_slurs())}
    toxigen = SHARED / "toxicity" / "toxigen_statements_labelled.jsonl"
    if toxigen.is_file():
        recs = [json.loads(line) for line in toxigen.read_text(encoding="utf-8").splitlines()]
        sets["toxigen"] = [{"text": r["text"], "label": "hate" if r["label"] == "hate" else
                            "benign", "family": f"toxigen {r['label']}", "group": r["group"]}
                           for r in recs if split_of(r["id"], "default") == "test"]
    out = {}
    for name, items in sets.items():
        texts = [x["text"] for x in items]
        res = {"before": screen_all(texts, before)[0], "after": screen_all(texts, after)[0]}
        fams: dict[str, dict] = {}
        for i, x in enumerate(items):
            f = fams.setdefault(f"{x['label']}: {x['family']}", {"n": 0})
            f["n"] += 1
            for when, rs in res.items():
                f[f"tagged_{when}"] = f.get(f"tagged_{when}", 0) + ("toxic" in rs[i]["flags"])
                f[f"dropped_{when}"] = f.get(f"dropped_{when}", 0) + (rs[i]["reason"] is not None)
        for f in fams.values():
            for k in [k for k in f if k != "n"]:
                f[k] = f[k] / f["n"]
        hate = [i for i, x in enumerate(items) if x["label"] == "hate"]
        benign_named = [i for i, x in enumerate(items) if x["label"] == "benign" and x["group"]]
        for when, rs in res.items():
            t_hate = sum("toxic" in rs[i]["flags"] for i in hate) / max(len(hate), 1)
            t_ben = sum("toxic" in rs[i]["flags"] for i in benign_named) / max(len(benign_named), 1)
            fams[f"ALL hateful ({when})"] = {"n": len(hate), "tagged": t_hate}
            fams[f"ALL non-hateful naming a group ({when})"] = {"n": len(benign_named),
                                                               "tagged": t_ben}
            met = t_hate >= 0.5 and (t_ben == 0 or t_hate / t_ben >= 2)
            rows.append(row(f"{name} statements ({when}): hateful tagged (n={len(hate)})", t_hate,
                            "fraction", t_ben, ">= 0.5 and >= 2x", met if when == "after" else True,
                            t_hate / t_ben if t_ben else None))
        for fam, f in sorted(fams.items()):
            if fam.startswith("hate: "):
                rows.append(row(f"{name}: {fam} tagged (n={f['n']})", f["tagged_after"],
                                "fraction", f["tagged_before"], ">= 0.25",
                                f["tagged_after"] >= 0.25))
            elif fam.startswith("benign: "):
                rows.append(row(f"{name}: {fam} dropped (n={f['n']})", f["dropped_after"],
                                "fraction", f["dropped_before"], "<= 0.01",
                                f["dropped_after"] <= 0.01))
        out[name] = fams
    return out


def group_table(keys: list[str], tagged: list[bool], dropped: list[bool]) -> dict:
    """Per group: n, tagged, dropped, their shares, ratios to the overall shares, p-values."""
    n_all = len(keys)
    t_all, d_all = sum(tagged), sum(dropped)
    t_rate, d_rate = t_all / max(n_all, 1), d_all / max(n_all, 1)
    groups: dict[str, list[int]] = {}
    for k, t, d in zip(keys, tagged, dropped):
        g = groups.setdefault(k, [0, 0, 0])
        g[0] += 1
        g[1] += t
        g[2] += d
    table = {}
    for k, (n, t, d) in sorted(groups.items()):
        table[k] = {
            "n": n, "tagged": t, "tagged_share": t / n, "dropped": d, "dropped_share": d / n,
            "tagged_ratio": (t / n) / t_rate if t_rate else (0.0 if t == 0 else math.inf),
            "dropped_ratio": (d / n) / d_rate if d_rate else (0.0 if d == 0 else math.inf),
            "tagged_p": excess_p(t, n, t_rate),
            "dropped_p": excess_p(d, n, d_rate),
        }
    return {"n": n_all, "tagged": t_all, "tagged_share": t_rate, "dropped": d_all,
            "dropped_share": d_rate, "groups": table}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=None, help="first N held-out texts (quick look)")
    args = p.parse_args(argv)
    tox_dir = SHARED / "toxicity"
    if not tox_dir.is_dir():
        print(f"skipped: {tox_dir} not found")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"skipped": f"{tox_dir} not found", "rows": []}) + "\n")
        return 0

    from core.files import json_ready
    from pipeline.screen import toxicity
    from pipeline.screen.lexicons import identity_lexicon, words
    from pipeline.screen.policy import Screener, load_policy
    from tools import train_toxicity

    books = SHARED / "books"
    examples = train_toxicity.load_examples(tox_dir, books if books.is_dir() else None)
    test = [e for e in examples if e.split == "test"][: args.limit]
    screener = Screener.build(load_policy())
    before = Screener.build(load_policy(None, {"detect_attacks": "false"}))
    # Speed before and after, same texts, same run: the classifier-only screen as it was, then
    # the screen with the attack detector.
    _, cpu_before = screen_all([e.text for e in test], before)
    results, cpu = screen_all([e.text for e in test], screener)
    tagged = ["toxic" in r["flags"] for r in results]
    dropped = [r["reason"] is not None for r in results]
    lex_hit = [bool(r["tox_lexicon"]) for r in results]

    # Groups each text names (identity lexicon), to compare texts about the same groups.
    ident = identity_lexicon()
    named = [{f"{t.axis}/{t.group}" for _, _, t in ident.find(words(e.text.lower()))}
             for e in test]
    hate_groups = set().union(*(g for e, g in zip(test, named) if e.label == "hate"))

    def share(select, flags):
        idx = [i for i, e in enumerate(test) if select(e, i)]
        return sum(flags[i] for i in idx) / max(len(idx), 1), len(idx)

    classes = {
        "hateful": lambda e, i: e.label == "hate",
        "offensive": lambda e, i: e.label == "offensive",
        "benign": lambda e, i: e.label == "benign",
        "hateful naming a group": lambda e, i: e.label == "hate" and bool(named[i]),
        "benign naming a group that hateful texts name":
            lambda e, i: e.label == "benign" and bool(named[i] & hate_groups),
    }
    shares = {k: share(f, tagged) for k, f in classes.items()}
    lex_shares = {k: share(f, lex_hit) for k, f in classes.items()}
    by_source = {}
    for src in sorted({e.source for e in test}):
        for label in sorted({e.label for e in test if e.source == src}):
            key = f"{src}:{label}"
            by_source[key] = {
                "n": share(lambda e, i: e.source == src and e.label == label, tagged)[1],
                "tagged": share(lambda e, i: e.source == src and e.label == label, tagged)[0],
                "dropped": share(lambda e, i: e.source == src and e.label == label, dropped)[0],
                "lexicon": share(lambda e, i: e.source == src and e.label == label, lex_hit)[0],
            }

    wiki = [i for i, e in enumerate(test) if e.source == "benign_identity"]
    keys = [test[i].group for i in wiki]
    cls_table = group_table(keys, [tagged[i] for i in wiki], [dropped[i] for i in wiki])
    lex_table = group_table(keys, [lex_hit[i] for i in wiki], [lex_hit[i] for i in wiki])
    domains = [k.split("/")[0] for k in keys]
    cls_domains = group_table(domains, [tagged[i] for i in wiki], [dropped[i] for i in wiki])
    lex_domains = group_table(domains, [lex_hit[i] for i in wiki], [lex_hit[i] for i in wiki])

    def worst(table, what):
        vals = [(g[f"{what}_ratio"], k) for k, g in table["groups"].items()]
        return max(vals) if vals else (0.0, "")

    def significant(table, what):
        return sorted(k for k, g in table["groups"].items() if g[f"{what}_p"] < 0.05
                      and g[f"{what}_ratio"] > DISPARITY)

    benign_named = shares["benign naming a group that hateful texts name"][0]
    lex_benign_named = lex_shares["benign naming a group that hateful texts name"][0]
    rows = []
    for cls in ("hateful", "offensive"):
        ratio = shares[cls][0] / benign_named if benign_named else math.inf
        lex_ratio = lex_shares[cls][0] / lex_benign_named if lex_benign_named else math.inf
        rows.append(row(f"{cls} tagged / benign naming the same groups tagged", ratio, "x",
                        lex_ratio, ">= 2", ratio >= 2, ratio / lex_ratio if lex_ratio else None))
    for cls, (s, n) in shares.items():
        rows.append(row(f"share tagged toxic: {cls} (n={n})", s, "fraction",
                        lex_shares[cls][0], "reported", True))
    wiki_tag, wiki_drop = cls_table["tagged_share"], cls_table["dropped_share"]
    rows.append(row("benign_identity held out: share tagged", wiki_tag, "fraction",
                    lex_table["tagged_share"], "reported", True))
    rows.append(row("benign_identity held out: share dropped", wiki_drop, "fraction",
                    lex_table["dropped_share"], "<= 0.01", wiki_drop <= 0.01))
    for what in ("tagged", "dropped"):
        r_cls, g_cls = worst(cls_table, what)
        r_lex, g_lex = worst(lex_table, what)
        rows.append(row(f"benign_identity: largest group {what} ratio to overall, raw "
                        f"({g_cls or '-'})", r_cls, "x", r_lex, f"<= {DISPARITY}",
                        r_cls <= DISPARITY))
        sig, sig_lex = significant(cls_table, what), significant(lex_table, what)
        rows.append(row(f"benign_identity: groups {what} significantly > {DISPARITY}x overall "
                        "(binomial p<0.05)", len(sig), "groups", len(sig_lex), "0",
                        not sig))
        r_dom, g_dom = worst(cls_domains, what)
        r_ldom, _ = worst(lex_domains, what)
        rows.append(row(f"benign_identity: largest domain {what} ratio to overall "
                        f"({g_dom or '-'})", r_dom, "x", r_ldom, f"<= {DISPARITY}",
                        r_dom <= DISPARITY))
    # The sensitive probe: the top 5% of scores among held-out benign identity sentences.
    scores = sorted(results[i]["toxicity"] for i in wiki)
    cut = scores[int(0.95 * len(scores))] if scores else 1.0
    high = [results[i]["toxicity"] >= cut for i in wiki]
    probe = group_table(keys, high, high)
    probe["score_cut"] = cut
    r_probe, g_probe = worst(probe, "tagged")
    sig_probe = significant(probe, "tagged")
    rows.append(row(f"benign_identity probe: largest group share in the top 5% of scores, ratio "
                    f"to overall, raw ({g_probe or '-'})", r_probe, "x", None, "reported", True))
    rows.append(row(f"benign_identity probe: groups in the top 5% of scores significantly > "
                    f"{DISPARITY}x overall (binomial p<0.05)", len(sig_probe), "groups", None, "0",
                    not sig_probe))
    prose = by_source.get("prose:benign")
    if prose:
        rows.append(row("held-out book windows: share tagged", prose["tagged"], "fraction",
                        prose["lexicon"], "reported", True))
    chars = sum(len(e.text) for e in test)
    rows.append(row("screen throughput (PII + lexicons + identity + classifier + attacks)",
                    len(test) / cpu, "docs/s per core", len(test) / cpu_before, ">= 0.8x",
                    cpu_before / cpu >= 0.8))
    statements = family_rows(before, screener, rows)

    print(f"{'name':86s} {'figure':>9s} {'baseline':>9s} {'ratio':>7s} {'target':>8s}  met")
    for r in rows:
        print(f"{r['name'][:86]:86s} {r['figure']!s:>9s} {r['baseline']!s:>9s} "
              f"{r['ratio']!s:>7s} {r['target']!s:>8s}  {'yes' if r['met'] else 'NO'}")
    print("\nbenign_identity held out, by group (classifier screen | lexicon alone):")
    for k, g in cls_table["groups"].items():
        lg = lex_table["groups"][k]
        print(f"  {k:52s} n={g['n']:5d} tagged {g['tagged']:3d} ({g['tagged_share']:.2%}) "
              f"dropped {g['dropped']:2d} | lexicon {lg['tagged']:4d} ({lg['tagged_share']:.2%})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(json_ready({
        "bench": "screen", "data": str(tox_dir), "texts": len(test), "chars": chars,
        "cpu_seconds": round(cpu, 3),
        "model": {"threshold": screener.tag_threshold,
                  "drop_threshold": screener.policy.toxicity_drop_threshold,
                  "meta": toxicity.load_model(screener.model_path).meta},
        "groups_named_by_hateful_texts": sorted(hate_groups),
        "by_source": by_source,
        "benign_identity_by_group": {"classifier_screen": cls_table, "lexicon_alone": lex_table},
        "benign_identity_by_domain": {"classifier_screen": cls_domains,
                                      "lexicon_alone": lex_domains},
        "benign_identity_score_probe": {**probe, "significant": sig_probe},
        "statements_by_family": statements,
        "rows": rows}), indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
