"""Clean stage: throughput against datatrove's FineWeb chain and a plain-Python loop, the share
of the corpus each rule removes, and keep/drop agreement with datatrove, overall and by rule.

    python -m bench.clean [--sample-mb 2] [--books-mb 0]

Documents: ``../shared/data/books`` cut at blank lines into chunks of at least 2,000 words
(all books, or the first ``--books-mb`` of them), and the web text of ``../shared/data/web``:
the ``text`` of its JSONL files (Dolma, DCLM) and the conversion records of its WET file.
Every document is treated as English, as datatrove's filters do.

Throughput is CPU seconds of this one process (``time.process_time``): docs/s and MB/s per
core on a shared machine; the contenders take turns on chunks of 16 documents, so a change in
load falls on all of them. datatrove (FineWeb's chain as ``examples/fineweb.py`` runs it:
Gopher repetition, Gopher quality, C4 with ``filter_no_terminal_punct=False``, FineWeb
quality) runs on a sample: ``--sample-mb`` of book chunks, every n-th, plus all the web text.
Ours is timed end to end on the raw text (normalisation included); datatrove gets our
normalised text and is timed on its filters only. spaCy loads before the clock starts.

Agreement: each rule runs alone in both implementations, on the inputs it sees in the chain
(FineWeb's rules on the text C4's line rules leave). A document is kept by a chain exactly
when every rule passes it, so the chain agreement follows from the rule table; the chains are
also run, and their keep/drop is checked against that identity. The plain loop
(``bench/clean_baseline.py``: our rules without the shared splits, numpy or skipped ftfy
calls) runs on the same sample; its verdict, reason and text must equal ours everywhere.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: nothing here may fan out to threads

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

from bench import clean_baseline  # noqa: E402
from pipeline.clean.rules import (  # noqa: E402
    RULE_SETTINGS,
    CleanConfig,
    clean_document,
    normalize_text,
    single_rule_config,
)

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results" / "clean.json"
SPEED_TARGET = 30.0  # x datatrove's chain, docs/s and MB/s per core (issue 2)
AGREEMENT_TARGET = 98.0  # % of documents, rules that do not differ on purpose
INF = float("inf")

# Rules whose definition differs from datatrove's on purpose (pipeline/clean/rules.py docstring).
ON_PURPOSE = {
    "gopher_alpha_words": "datatrove's words are spaCy tokens: every comma and full stop is a "
                          "word without a letter",
    "fineweb_line_punct": "ours counts a hard-wrapped paragraph once and accepts a closing "
                          "quote after the stop",
}


# ---------------------------------------------------------------------------------------------
# Documents


def book_chunks(path: Path, min_words: int = 2000) -> list[str]:
    """A book cut at blank lines into chunks of at least ``min_words`` words; a short tail
    joins the chunk before it."""
    text = path.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
    chunks, current, words = [], [], 0
    for paragraph in re.split(r"\n[ \t]*\n", text):
        current.append(paragraph)
        words += len(paragraph.split())
        if words >= min_words:
            chunks.append("\n\n".join(current))
            current, words = [], 0
    if current:
        if chunks:
            chunks[-1] += "\n\n" + "\n\n".join(current)
        else:
            chunks.append("\n\n".join(current))
    return chunks


def load_books(books_mb: float) -> list[str]:
    docs, size = [], 0
    for path in sorted((SHARED / "books").glob("*.txt")):
        docs.extend(book_chunks(path))
        size += path.stat().st_size
        if books_mb and size >= books_mb * 1e6:
            break
    return docs


def load_web() -> list[str]:
    from warcio.archiveiterator import ArchiveIterator

    web = SHARED / "web"
    docs = []
    for path in sorted(web.rglob("*.json*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            docs.extend(json.loads(line)["text"] for line in f if line.strip())
    for path in sorted(web.glob("*.wet.gz")):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):
                if record.rec_type == "conversion":
                    docs.append(record.content_stream().read().decode("utf-8", "replace"))
    return [d for d in docs if d]


def mb(docs: list[str]) -> float:
    return sum(len(d.encode("utf-8")) for d in docs) / 1e6


# ---------------------------------------------------------------------------------------------
# The rules, one at a time

RULES = list(RULE_SETTINGS)

def ours_rule_configs() -> dict[str, CleanConfig]:
    return {rule: single_rule_config(rule) for rule in RULES}


class Datatrove:
    """FineWeb's chain and each of its rules alone, from datatrove's own filters."""

    def __init__(self):
        from datatrove.data import Document
        from datatrove.pipeline.filters import (
            C4QualityFilter,
            FineWebQualityFilter,
            GopherQualityFilter,
            GopherRepetitionFilter,
        )

        self.Document = Document
        self.chain = [GopherRepetitionFilter(), GopherQualityFilter(),
                      C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]
        rep_off = dict(dup_line_frac=None, dup_para_frac=None, dup_line_char_frac=None,
                       dup_para_char_frac=None, top_n_grams=(), dup_n_grams=())
        qual_off = dict(min_doc_words=None, max_doc_words=None, min_avg_word_length=None,
                        max_avg_word_length=None, max_symbol_word_ratio=None,
                        max_bullet_lines_ratio=None, max_ellipsis_lines_ratio=None,
                        max_non_alpha_words_ratio=None, min_stop_words=None)
        c4_off = dict(filter_no_terminal_punct=False, filter_lorem_ipsum=False,
                      filter_curly_bracket=False, min_num_sentences=-1)
        fw_off = dict(line_punct_thr=0.0, short_line_thr=INF, char_duplicates_ratio=INF,
                      new_line_ratio=INF)
        rep = lambda **on: GopherRepetitionFilter(**{**rep_off, **on})  # noqa: E731
        qual = lambda **on: GopherQualityFilter(**{**qual_off, **on})  # noqa: E731
        c4 = lambda **on: C4QualityFilter(**{**c4_off, **on})  # noqa: E731
        fw = lambda **on: FineWebQualityFilter(**{**fw_off, **on})  # noqa: E731
        self.before_c4 = {
            "gopher_dup_paragraphs": rep(dup_para_frac=0.3),
            "gopher_dup_paragraph_chars": rep(dup_para_char_frac=0.2),
            "gopher_dup_lines": rep(dup_line_frac=0.3),
            "gopher_dup_line_chars": rep(dup_line_char_frac=0.2),
            **{f"gopher_top_{n}gram": rep(top_n_grams=((n, f),))
               for n, f in ((2, 0.20), (3, 0.18), (4, 0.16))},
            **{f"gopher_dup_{n}gram": rep(dup_n_grams=((n, (20 - n) / 100),))
               for n in range(5, 11)},
            "gopher_word_count": qual(min_doc_words=50, max_doc_words=100000),
            "gopher_mean_word_length": qual(min_avg_word_length=3, max_avg_word_length=10),
            "gopher_symbol_ratio": qual(max_symbol_word_ratio=0.1),
            "gopher_bullet_lines": qual(max_bullet_lines_ratio=0.9),
            "gopher_ellipsis_lines": qual(max_ellipsis_lines_ratio=0.3),
            "gopher_alpha_words": qual(max_non_alpha_words_ratio=0.8),
            "gopher_stop_words": qual(min_stop_words=2),
            "c4_lorem_ipsum": c4(filter_lorem_ipsum=True),
            "c4_curly_brace": c4(filter_curly_bracket=True),
            "c4_too_few_sentences": c4(min_num_sentences=5),
        }
        self.c4_lines = c4()
        self.after_c4 = {
            "fineweb_line_punct": fw(line_punct_thr=0.12),
            "fineweb_short_lines": fw(short_line_thr=0.67),
            "fineweb_dup_line_chars": fw(char_duplicates_ratio=0.01),
            "fineweb_list_ratio": fw(new_line_ratio=0.3),
        }

    @staticmethod
    def _passes(step, doc) -> bool:
        try:
            result = step.filter(doc)
        except (ZeroDivisionError, ValueError):  # no words left: a failing document
            return False
        return result[0] if isinstance(result, tuple) else bool(result)

    def run_chain(self, text: str) -> bool:
        doc = self.Document(text=text, id="bench")
        return all(self._passes(step, doc) for step in self.chain)

    def rule_fails(self, text: str) -> dict[str, bool]:
        fails = {rule: not self._passes(step, self.Document(text=text, id="bench"))
                 for rule, step in self.before_c4.items()}
        doc = self.Document(text=text, id="bench")
        self._passes(self.c4_lines, doc)
        fails.update({rule: not self._passes(step, self.Document(text=doc.text, id="bench"))
                      for rule, step in self.after_c4.items()})
        return fails


# ---------------------------------------------------------------------------------------------
# Measurements


def paired_cpu_seconds(fns: list, inputs: list[list], chunk: int = 16) -> list:
    """(CPU seconds, outputs) of each ``fns[i]`` over ``inputs[i]``, measured chunk by chunk
    in turn, so that a change in the machine's load falls on every contender alike."""
    seconds = [0.0] * len(fns)
    outputs: list[list] = [[] for _ in fns]
    for lo in range(0, len(inputs[0]), chunk):
        for i, (fn, items) in enumerate(zip(fns, inputs)):
            spent, out = cpu_seconds(fn, items[lo:lo + chunk])
            seconds[i] += spent
            outputs[i] += out
    return list(zip(seconds, outputs))


def cpu_seconds(fn, items) -> tuple[float, list]:
    t0 = time.process_time()
    out = [fn(item) for item in items]
    return time.process_time() - t0, out


def run_ours(docs: list[str], cfg: CleanConfig) -> tuple[float, list, Counter]:
    """Our chain over ``docs``: CPU seconds, (text, reason) per document, line-rule counts."""
    line_stats: Counter = Counter()
    seconds, results = cpu_seconds(lambda d: clean_document(d, "en", cfg, line_stats), docs)
    return seconds, results, line_stats


def removal_shares(docs: list[str], results: list, line_stats: Counter) -> dict:
    """Per reason, the share of documents and bytes it removes; per line rule, the share of
    input characters it removes."""
    n_docs, n_bytes, n_chars = len(docs), mb(docs) * 1e6, sum(map(len, docs))
    by_reason: dict[str, list] = {}
    for doc, (_, reason) in zip(docs, results):
        entry = by_reason.setdefault(reason or "kept", [0, 0])
        entry[0] += 1
        entry[1] += len(doc.encode("utf-8"))
    shares = {
        reason: {"docs": count, "docs_pct": round(100 * count / n_docs, 2),
                 "bytes_pct": round(100 * size / n_bytes, 2)}
        for reason, (count, size) in sorted(by_reason.items(), key=lambda kv: -kv[1][0])
    }
    rules = sorted({key.rsplit(".", 1)[0] for key in line_stats})
    lines = {rule: {"lines": line_stats[rule + ".lines"],
                    "chars_pct": round(100 * line_stats[rule + ".chars"] / n_chars, 3)}
             for rule in rules}
    return {"docs": n_docs, "mb": round(n_bytes / 1e6, 2), "documents": shares,
            "line_rules": lines}


def agreement(ours: list[dict[str, bool]], theirs: list[dict[str, bool]],
              rules: list[str]) -> dict:
    n = len(ours)
    keep_ours = [not any(o[r] for r in rules) for o in ours]
    keep_theirs = [not any(t[r] for r in rules) for t in theirs]
    same = sum(a == b for a, b in zip(keep_ours, keep_theirs))
    return {"docs": n, "agree_pct": round(100 * same / n, 2) if n else None,
            "kept_ours": sum(keep_ours), "kept_datatrove": sum(keep_theirs)}


def rule_table(ours: list[dict[str, bool]], theirs: list[dict[str, bool]]) -> dict:
    table = {}
    n = len(ours)
    for rule in RULES:
        a = [o[rule] for o in ours]
        b = [t[rule] for t in theirs]
        table[rule] = {
            "fails_ours": sum(a), "fails_datatrove": sum(b),
            "both": sum(x and y for x, y in zip(a, b)),
            "agree_pct": round(100 * sum(x == y for x, y in zip(a, b)) / n, 2),
            "on_purpose": rule in ON_PURPOSE,
        }
    return table


def row(name, figure, unit, baseline=None, target=None):
    ratio = figure / baseline if baseline else None
    judged = ratio if baseline is not None else figure
    met = None if target is None else bool(judged is not None and judged >= target)
    return {"name": name, "figure": round(figure, 3), "unit": unit,
            "baseline": None if baseline is None else round(baseline, 4),
            "ratio": None if ratio is None else round(ratio, 2), "target": target, "met": met}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-mb", type=float, default=2.0,
                        help="MB of book chunks for datatrove and the plain loop (default 2)")
    parser.add_argument("--books-mb", type=float, default=0.0,
                        help="read only the first MB of books (default 0: all)")
    args = parser.parse_args(argv)
    if not (SHARED / "books").is_dir():
        print(f"error: shared data not found at {SHARED}", file=sys.stderr)
        return 2

    try:
        datatrove = Datatrove()
    except ImportError as e:
        print(f"error: datatrove is not installed ({e}); pip install -e '.[bench]'",
              file=sys.stderr)
        return 2

    cfg = CleanConfig()
    books, web = load_books(args.books_mb), load_web()
    stride = max(1, round(mb(books) / args.sample_mb)) if args.sample_mb > 0 else len(books)
    sample = {"books": books[::stride], "web": web}
    print(f"corpus: {len(books)} book chunks ({mb(books):.1f} MB), {len(web)} web documents "
          f"({mb(web):.2f} MB); sample: every {stride}th chunk, "
          f"{len(sample['books'])} chunks ({mb(sample['books']):.2f} MB) + all web", flush=True)

    # Ours over everything: speed and the share each rule removes.
    books_seconds, books_results, books_lines = run_ours(books, cfg)
    web_seconds, web_results, web_lines = run_ours(web, cfg)
    full_seconds = books_seconds + web_seconds
    removed = {
        "all": removal_shares(books + web, books_results + web_results, books_lines + web_lines),
        "books": removal_shares(books, books_results, books_lines),
        "web": removal_shares(web, web_results, web_lines),
    }
    print(f"ours, whole corpus: {mb(books + web) / full_seconds:.2f} MB/s", flush=True)

    datatrove.run_chain(normalize_text(books[0]))  # load spaCy before any clock starts
    rule_cfgs = ours_rule_configs()
    rows, speeds, agreements, tables, plain = [], {}, {}, {}, {}
    for name, docs in sample.items():
        normalised = [normalize_text(d, cfg) for d in docs]
        (t_ours, ours), (t_plain, naive), (t_dt, dt_keep) = paired_cpu_seconds(
            [lambda d: clean_document(d, "en", cfg),
             lambda d: clean_baseline.clean_document(d, "en", cfg), datatrove.run_chain],
            [docs, docs, normalised])
        size = mb(docs)
        speeds[name] = {"docs": len(docs), "mb": round(size, 3), "cpu_s_ours": round(t_ours, 3),
                        "cpu_s_plain_loop": round(t_plain, 3), "cpu_s_datatrove": round(t_dt, 3)}
        plain[name] = sum(a == b for a, b in zip(ours, naive)) / len(docs) * 100
        print(f"{name}: ours {size / t_ours:.2f} MB/s, plain loop {size / t_plain:.2f} MB/s, "
              f"datatrove {size / t_dt:.3f} MB/s", flush=True)
        rows += [
            row(f"{name}: docs/s per core vs datatrove FineWeb chain", len(docs) / t_ours,
                "docs/s", len(docs) / t_dt, SPEED_TARGET),
            row(f"{name}: MB/s per core vs datatrove FineWeb chain", size / t_ours, "MB/s",
                size / t_dt, SPEED_TARGET),
            row(f"{name}: MB/s per core vs plain-Python loop of our rules", size / t_ours,
                "MB/s", size / t_plain, 1.0),
        ]
        ours_fails = [{rule: clean_document(d, "en", c)[1] is not None
                       for rule, c in rule_cfgs.items()} for d in docs]
        dt_fails = [datatrove.rule_fails(t) for t in normalised]
        chain_ours = [reason is None for _, reason in ours]
        identity = sum((not any(f.values())) == k for f, k in zip(ours_fails, chain_ours)) + sum(
            (not any(f.values())) == k for f, k in zip(dt_fails, dt_keep))
        tables[name] = rule_table(ours_fails, dt_fails)
        same_rules = [r for r in RULES if r not in ON_PURPOSE]
        agreements[name] = {
            "all_rules": agreement(ours_fails, dt_fails, RULES),
            "rules_not_differing_on_purpose": agreement(ours_fails, dt_fails, same_rules),
            "chain_identity_pct": round(100 * identity / (2 * len(docs)), 2),
        }
        rows += [
            row(f"{name}: keep/drop agreement with datatrove, all rules",
                agreements[name]["all_rules"]["agree_pct"], "%"),
            row(f"{name}: keep/drop agreement, rules not differing on purpose",
                agreements[name]["rules_not_differing_on_purpose"]["agree_pct"], "%",
                target=AGREEMENT_TARGET),
            row(f"{name}: same verdict, reason and text as the plain loop", plain[name], "%",
                target=100.0),
        ]
    rows.append(row("whole corpus (ours): MB/s per core", mb(books + web) / full_seconds,
                    "MB/s"))

    print()
    print(f"{'removed by (ours, whole corpus)':34s} {'books docs%':>11s} {'bytes%':>7s} "
          f"{'web docs%':>10s} {'bytes%':>7s}")
    reasons = list(removed["all"]["documents"])
    for reason in reasons:
        cells = [removed[n]["documents"].get(reason, {"docs_pct": 0.0, "bytes_pct": 0.0})
                 for n in ("books", "web")]
        print(f"{reason:34s} " + " ".join(f"{c['docs_pct']:>10.2f}% {c['bytes_pct']:>6.2f}%"
                                          for c in cells))
    for rule in removed["all"]["line_rules"]:
        cells = [removed[n]["line_rules"].get(rule, {"chars_pct": 0.0}) for n in ("books", "web")]
        print(f"{'line rule ' + rule:34s} " + " ".join(
            f"{'':>11s} {c['chars_pct']:>6.2f}%" for c in cells) + " of characters")
    print()
    print(f"{'rule alone: docs failing':28s} {'books ours/dt/agree%':>24s} "
          f"{'web ours/dt/agree%':>22s}")
    for rule in RULES:
        cells = [tables[n][rule] for n in sample]
        print(f"{rule:28s} " + " ".join(
            f"{c['fails_ours']:>6d}/{c['fails_datatrove']:<5d}{c['agree_pct']:>7.1f}%"
            + (" *" if c["on_purpose"] else "  ") for c in cells))
    print("* differs on purpose: " + "; ".join(f"{k}: {v}" for k, v in ON_PURPOSE.items()))
    print()
    for r in rows:
        ratio = f" = {r['ratio']}x" if r["ratio"] is not None else ""
        base = f" vs {r['baseline']}" if r["baseline"] is not None else ""
        print(f"{r['name']}: {r['figure']} {r['unit']}{base}{ratio}"
              + (f" (target {r['target']}, met: {r['met']})" if r["target"] else ""))

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "bench": "clean",
        "data": str(SHARED),
        "timing": "CPU seconds of one process (time.process_time)",
        "sample": {name: {"docs": len(d), "mb": round(mb(d), 3)} for name, d in sample.items()}
        | {"book_stride": stride},
        "rows": rows,
        "speed": speeds,
        "removed_by_rule": removed,
        "agreement": agreements,
        "agreement_by_rule": tables,
        "on_purpose": ON_PURPOSE,
        "config": CleanConfig().__dict__,
    }, indent=1, default=str) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
