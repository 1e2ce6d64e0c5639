"""The corpus datasheet: what happened to the data, stage by stage, as one HTML file.

    python -m pipeline.report.datasheet --corpus OUT [--tokens DIR] [--out FILE]

It reads what the stages left behind, never reruns them: each stage folder's ``stats.json``
(the exact counts: the funnel and removals by reason come from there), a bounded sample of
its Parquet files (distributions and example documents), ``bias_screen/bias_report.json``,
and the token folder's ``manifest.json``. Only pyarrow reads the data: a report must not need
a Spark session, and it must run on a laptop over a corpus that did not fit one.

The page is self-contained (CSS inline, plots as base64 PNG, no script, a Content-Security-
Policy that forbids any outside load) so it can be mailed, archived beside the corpus and
opened offline years later. Everything that comes from documents or configs is HTML-escaped.
"""
from __future__ import annotations

import base64
import heapq
import html
import json
import os
import platform
import re
import subprocess
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import ArgumentParser, UsageError
from core.files import atomic_write_text
from core.render import package_versions, png
from pipeline.stage.contract import STAGES

DEFAULT_STAGES = list(STAGES)
# Distributions read at most this many rows per side (row groups sampled by a seeded RNG),
# so the report's memory and time stay bounded however large the corpus is.
MAX_ROWS = 200_000
SAMPLES_KEPT = 6
SAMPLES_PER_REASON = 3
SAMPLE_CHARS = 1200
TOP_LANGS = 25
MAX_TABLE_ROWS = 200  # of a table found in bias_report.json
READ_BATCH = 4096
# Columns a sample shows when the stage has them: what a reader needs to judge the verdict.
SAMPLE_COLUMNS = ["lang", "lang_score", "dup_cluster_size", "duplicate_of", "toxicity",
                  "pii_count", "flags", "boilerplate_lines"]
TOKEN_DIR_NAMES = ["tokens", "shards", "encode"]


# --------------------------------------------------------------------------- reading Parquet


@dataclass(frozen=True)
class Part:
    """One row group of one Parquet file: the unit sampled and read."""

    path: Path
    row_group: int
    rows: int
    columns: tuple[str, ...]
    partition: tuple[tuple[str, str], ...]  # hive ``key=value`` folders above the file


def _partition_of(path: Path, root: Path) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in path.relative_to(root).parts[:-1]:
        if "=" in part:
            key, _, value = part.partition("=")
            pairs.append((key, value))
    return tuple(pairs)


def list_parts(folder: Path) -> list[Part]:
    """Row groups of every ``*.parquet`` under ``folder``, in sorted file order."""
    if not folder.is_dir():
        return []
    parts = []
    for path in sorted(folder.rglob("*.parquet")):
        if any(p.startswith((".", "_")) for p in path.relative_to(folder).parts):
            continue
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException):
            continue
        names = tuple(pf.schema_arrow.names)
        for rg in range(pf.metadata.num_row_groups):
            parts.append(Part(path, rg, pf.metadata.row_group(rg).num_rows, names,
                              _partition_of(path, folder)))
    return parts


def sample_parts(parts: list[Part], max_rows: int, seed: int) -> list[Part]:
    """All parts, or a seeded subset of about ``max_rows`` rows in file order."""
    if sum(p.rows for p in parts) <= max_rows:
        return parts
    order = list(range(len(parts)))
    np.random.default_rng(seed).shuffle(order)
    chosen, rows = [], 0
    for i in order:
        if rows >= max_rows:
            break
        chosen.append(i)
        rows += parts[i].rows
    return [parts[i] for i in sorted(chosen)]


def columns_of(parts: list[Part]) -> set[str]:
    names: set[str] = set()
    for p in parts:
        names.update(p.columns)
        names.update(k for k, _ in p.partition)
    return names


def iter_batches(part: Part, columns: list[str]):
    """The part's requested columns in batches; partition columns filled from the path."""
    present = [c for c in columns if c in part.columns]
    consts = {k: v for k, v in part.partition if k in columns and k not in present}
    pf = pq.ParquetFile(part.path)
    if not present:
        yield pa.table({k: pa.array([v] * part.rows, pa.string()) for k, v in consts.items()})
        return
    for batch in pf.iter_batches(batch_size=READ_BATCH, row_groups=[part.row_group],
                                 columns=present):
        table = pa.Table.from_batches([batch])
        for k, v in consts.items():
            table = table.append_column(k, pa.array([v] * table.num_rows, pa.string()))
        yield table


def text_bytes(table: pa.Table) -> np.ndarray:
    if "text" not in table.column_names:
        return np.zeros(0, dtype=np.int64)
    return pc.fill_null(pc.binary_length(table["text"]), 0).to_numpy(zero_copy_only=False)


# --------------------------------------------------------------------------- the stages


@dataclass
class Stage:
    name: str
    folder: Path
    stats: dict[str, Any] | None
    complete: bool
    data: list[Part] = field(default_factory=list)
    rejected: list[Part] = field(default_factory=list)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def find_stages(corpus: Path) -> tuple[list[Stage], dict[str, Any]]:
    """Stages in pipeline order: ``corpus.json``'s order when it exists, else the known order
    followed by any other folder that holds a ``stats.json``."""
    manifest = _read_json(corpus / "corpus.json") or {}
    folders = manifest.get("folders") if isinstance(manifest.get("folders"), dict) else {}
    names = manifest.get("stages") if isinstance(manifest.get("stages"), list) else None
    if names is None:
        names = [s for s in DEFAULT_STAGES if (corpus / s).is_dir()]
        names += sorted(p.name for p in corpus.iterdir()
                        if p.is_dir() and p.name not in names and (p / "stats.json").is_file())
    stages = []
    for name in names:
        folder = Path(folders.get(name, name))
        folder = folder if folder.is_absolute() else corpus / folder
        if not folder.is_dir():
            continue
        stats = _read_json(folder / "stats.json")
        stages.append(Stage(str(name), folder, stats if isinstance(stats, dict) else None,
                            (folder / "_SUCCESS").exists(), list_parts(folder / "data"),
                            list_parts(folder / "rejected")))
    return stages, manifest


def find_tokens(corpus: Path, tokens: str | None, manifest: dict) -> Path | None:
    candidates = [Path(tokens)] if tokens else []
    for key in ("tokens", "shards"):
        value = manifest.get(key) or (manifest.get("folders") or {}).get(key)
        if isinstance(value, str):
            candidates.append(Path(value) if Path(value).is_absolute() else corpus / value)
    candidates += [corpus / name for name in TOKEN_DIR_NAMES]
    for c in candidates:
        if (c / "manifest.json").is_file():
            return c
    if tokens:
        raise UsageError(f"no manifest.json in --tokens {tokens}")
    return None


# --------------------------------------------------------------------------- measurements


@dataclass
class Sampled:
    """Rows a distribution was computed from, and how many the folders hold."""

    read: int = 0
    total: int = 0

    @property
    def note(self) -> str:
        if self.read >= self.total:
            return f"all {self.total:,} documents"
        return f"a sample of {self.read:,} of {self.total:,} documents (whole row groups, seeded)"


def lengths(parts: list[Part], max_rows: int, seed: int) -> tuple[np.ndarray, Sampled]:
    chosen = sample_parts(parts, max_rows, seed)
    out = [text_bytes(t) for p in chosen for t in iter_batches(p, ["text"])]
    arr = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    return arr, Sampled(len(arr), sum(p.rows for p in parts))


def column_values(parts: list[Part], column: str, max_rows: int, seed: int) -> tuple[list, Sampled]:
    chosen = sample_parts(parts, max_rows, seed)
    values: list = []
    for p in chosen:
        for t in iter_batches(p, [column]):
            if column in t.column_names:
                values.extend(t[column].to_pylist())
    return values, Sampled(len(values), sum(p.rows for p in parts))


def _rank(seed: int, key: str) -> int:
    """A stable pseudo-random rank: the same documents are sampled on every run."""
    return zlib.crc32(key.encode("utf-8", "replace"), seed & 0xFFFFFFFF)


def pick_rows(parts: list[Part], k: int, seed: int, group_col: str | None = None,
              max_rows: int = MAX_ROWS, score_col: str | None = None) -> dict[str, list]:
    """Up to ``k`` rows per value of ``group_col`` (or one group ""), chosen by a seeded hash
    of the id, or the ``k`` highest ``score_col``; then read their full rows.

    Two passes keep memory bounded: ids and the group column first, texts only for the rows
    chosen.
    """
    chosen = sample_parts(parts, max_rows, seed)
    have = columns_of(chosen)
    if group_col and group_col not in have:
        return {}
    if score_col and score_col not in have:
        return {}
    cols = [c for c in ("id", group_col, score_col) if c and c in have]
    heaps: dict[str, list] = defaultdict(list)
    for pi, p in enumerate(chosen):
        offset = 0
        for t in iter_batches(p, cols):
            ids = t["id"].to_pylist() if "id" in t.column_names else [None] * t.num_rows
            groups = t[group_col].to_pylist() if group_col else [""] * t.num_rows
            scores = t[score_col].to_pylist() if score_col else None
            for i, (id_, g) in enumerate(zip(ids, groups)):
                row = offset + i
                if score_col:
                    rank = -(scores[i] or 0)
                else:
                    rank = _rank(seed, f"{id_}:{pi}:{row}" if id_ is None else str(id_))
                # A max-heap of the k smallest ranks: heap[0] is the first to give way.
                item = (-rank, str(id_), pi, row)
                heap = heaps[str(g)]
                if len(heap) < k:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
            offset += t.num_rows
    wanted: dict[int, list[tuple[int, str, tuple]]] = defaultdict(list)
    for g, heap in heaps.items():
        for neg_rank, id_, pi, row in heap:
            wanted[pi].append((row, g, (-neg_rank, id_)))
    rows: dict[str, list] = defaultdict(list)
    for pi, items in sorted(wanted.items()):
        p = chosen[pi]
        table = pa.concat_tables(list(iter_batches(p, sorted(columns_of([p])))))
        picked = table.take(pa.array([r for r, _, _ in items], pa.int64())).to_pylist()
        for (_, g, order), rec in zip(items, picked):
            rows[g].append((order, rec))
    return {g: [rec for _, rec in sorted(v, key=lambda x: x[0])] for g, v in sorted(rows.items())}


# --------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "svg.hashsalt": "report"})
    return plt


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n):,} B"


def _auto_log_y(ax, counts) -> None:
    """A log y-axis only when the counts span orders of magnitude (long-tailed clusters)."""
    from matplotlib.ticker import MaxNLocator

    nonzero = [c for c in np.ravel(counts) if c > 0]
    if nonzero and max(nonzero) > 50 * min(nonzero):
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def plot_funnel(stages: list[Stage]) -> str:
    plt = _plt()
    rows = [(s.name, s.stats) for s in stages if s.stats]
    labels = ["input"] + [n for n, _ in rows]
    docs = [rows[0][1].get("docs_in") or 0] + [st.get("docs_kept") or 0 for _, st in rows]
    nbytes = [rows[0][1].get("bytes_in") or 0] + [st.get("bytes_kept") or 0 for _, st in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
    for ax, values, title, fmt in ((axes[0], docs, "documents", lambda v: f"{v:,.0f}"),
                                   (axes[1], nbytes, "bytes of text", human_bytes)):
        bars = ax.bar(labels, values, color=["#9aa5b1"] + ["#3b6ea5"] * len(rows))
        ax.set_title(f"{title} after each stage")
        for b, v in zip(bars, values):
            ax.annotate(fmt(v), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                        va="bottom", fontsize=8)
        ax.tick_params(axis="x", rotation=20)
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
    return png(fig)


def plot_reasons(reasons: list[tuple[str, str, int]]) -> str:
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    reasons = sorted(reasons, key=lambda r: r[2])[-30:]
    stages = list(dict.fromkeys(s for s, _, _ in reasons))
    colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(stages)}
    fig, ax = plt.subplots(figsize=(10, 0.8 + 0.28 * len(reasons)))
    ax.barh([f"{s}: {r}" for s, r, _ in reasons], [n for _, _, n in reasons],
            color=[colors[s] for s, _, _ in reasons])
    ax.set_xlabel("documents removed")
    counts = [n for *_, n in reasons]
    if max(counts) > 50 * max(1, min(counts)):
        ax.set_xscale("log")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return png(fig)


def plot_hbar(labels: list[str], series: dict[str, list[float]], xlabel: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 0.8 + 0.26 * len(labels)))
    left = np.zeros(len(labels))
    for i, (name, values) in enumerate(series.items()):
        ax.barh(labels, values, left=left, label=name, color=plt.cm.tab10(i % 10))
        left += np.asarray(values, dtype=float)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if len(series) > 1:
        ax.legend(loc="lower right")
    return png(fig)


def plot_hist(series: dict[str, np.ndarray], xlabel: str, *, log_x: bool = False,
              bins: int = 40, range_: tuple | None = None) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3))
    nonempty = {k: np.asarray(v, dtype=float) for k, v in series.items() if len(v)}
    values = np.concatenate(list(nonempty.values()))
    if log_x:
        lo, hi = max(1.0, values.min()), max(2.0, values.max())
        edges = np.logspace(np.log10(lo), np.log10(hi) + 1e-9, bins + 1)
        ax.set_xscale("log")
    else:
        edges = np.linspace(*(range_ or (values.min(), values.max() + 1e-9)), bins + 1)
    counts = []
    for i, (name, v) in enumerate(nonempty.items()):
        c, _, _ = ax.hist(np.clip(v, edges[0], edges[-1]), bins=edges, alpha=0.55,
                          label=f"{name} ({len(v):,})", color=plt.cm.tab10(i % 10))
        counts.append(c)
    _auto_log_y(ax, counts)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("documents")
    ax.legend()
    return png(fig)


def plot_counts(counts: dict[int, int], xlabel: str, ylabel: str) -> str:
    """Counts by a small integer (cluster sizes): one bar per value, or log bins when many."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 2.8))
    keys = sorted(counts)
    if len(keys) <= 30:
        ax.bar([str(k) for k in keys], [counts[k] for k in keys], color="#3b6ea5")
    else:
        edges = np.unique(np.logspace(0, np.log10(keys[-1] + 1), 30).astype(int))
        ax.hist(keys, bins=edges, weights=[counts[k] for k in keys], color="#3b6ea5")
        ax.set_xscale("log")
    _auto_log_y(ax, list(counts.values()))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return png(fig)


def plot_columns(labels: list[str], columns: dict[str, list[float]]) -> str:
    """One small bar chart per numeric column, side by side."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(columns), figsize=(min(10, 3.4 * len(columns) + 0.2 *
                                                          len(labels)), 2.8), squeeze=False)
    from matplotlib.ticker import FuncFormatter

    for ax, (name, values) in zip(axes[0], columns.items()):
        ax.bar(labels, values, color="#3b6ea5")
        if max(values, default=0) >= 1e4:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_title(name)
        ax.tick_params(axis="x", rotation=30 if len(labels) > 3 else 0, labelsize=8)
    return png(fig)


# --------------------------------------------------------------------------- HTML pieces


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 0) -> str:
    """A right-aligned cell; ``data-v`` keeps the exact value for machines (and tests)."""
    if value is None:
        return '<td class="num">–</td>'
    if isinstance(value, float) and not value.is_integer() or digits:
        shown = f"{value:,.{digits or 2}f}"
    else:
        shown = f"{int(value):,}"
    return f'<td class="num" data-v="{esc(value)}">{shown}</td>'


def size(value: Any) -> str:
    """A byte count shown as kB/MB/GB; ``data-v`` keeps the exact count."""
    if not isinstance(value, (int, float)):
        return '<td class="num">–</td>'
    return f'<td class="num" data-v="{esc(value)}">{human_bytes(value)}</td>'


def pct(part: float, whole: float) -> str:
    if not whole:
        return '<td class="num">–</td>'
    value = round(100 * part / whole, 1)
    return f'<td class="num" data-v="{value}">{value:.1f}%</td>'


def table(header: list[str], rows: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    head = f"<thead><tr>{head}</tr></thead>" if header else ""
    return f'<table class="{cls}">{head}<tbody>{"".join(rows)}</tbody></table>'


def cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{esc(value)}</td>"
    if isinstance(value, (int, float)):
        return num(value, 4 if isinstance(value, float) and abs(value) < 1 and value else 0)
    if isinstance(value, (dict, list)):
        return f"<td><code>{esc(json.dumps(value, ensure_ascii=False, sort_keys=True))}</code></td>"
    return f"<td>{esc(value)}</td>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def generic(obj: Any, plots: list[str] | None = None, depth: int = 0) -> str:
    """Any JSON as tables: lists of records and dicts of records become tables (plotted when
    they hold numbers), dicts of scalars key/value tables, the rest nested sections."""
    if _scalar(obj):
        return f"<p>{esc(obj)}</p>"
    if isinstance(obj, list):
        if obj and all(isinstance(x, dict) and all(_scalar(v) for v in x.values()) for x in obj):
            shown = obj[:MAX_TABLE_ROWS]
            cols = list(dict.fromkeys(k for x in shown for k in x))
            _plot_records(_row_labels(shown, cols), cols, shown, plots)
            more = (note(f"First {len(shown):,} of {len(obj):,} rows.")
                    if len(obj) > len(shown) else "")
            return table(cols, ["<tr>" + "".join(cell(x.get(c)) for c in cols) + "</tr>"
                                for x in shown]) + more
        if all(_scalar(x) for x in obj):
            return f"<p>{esc(', '.join(map(str, obj)))}</p>"
        return "".join(generic(x, plots, depth + 1) for x in obj)
    if all(_scalar(v) for v in obj.values()):
        return table(["key", "value"], [f"<tr><td>{esc(k)}</td>{cell(v)}</tr>"
                                        for k, v in obj.items()], "kv")
    if all(isinstance(v, dict) and v and all(_scalar(x) for x in v.values())
           for v in obj.values()):
        cols = list(dict.fromkeys(k for v in obj.values() for k in v))
        records = [{"": k, **v} for k, v in obj.items()]
        _plot_records(list(map(str, obj)), cols, records, plots)
        return table([""] + cols, ["<tr>" + cell(k) + "".join(cell(v.get(c)) for c in cols)
                                   + "</tr>" for k, v in obj.items()])
    level = min(4 + depth, 6)
    return "".join(f"<h{level}>{esc(k)}</h{level}>{generic(v, plots, depth + 1)}"
                   for k, v in obj.items())


def _plot_records(labels: list[str], cols: list[str], records: list[dict],
                  plots: list[str] | None) -> None:
    """Bar charts of a table's numeric columns: the disparity-like ones when there are any."""
    if plots is None or len(records) < 2 or len(plots) >= 8:
        return
    numeric = [c for c in cols if all(isinstance(r.get(c), (int, float))
                                      and not isinstance(r.get(c), bool) for r in records)]
    chosen = [c for c in numeric if re.search("dispar|ratio|rate|gap|score|toxic", c)]
    chosen = (chosen or numeric)[:3]
    if chosen:
        plots.append(plot_columns(labels[:40], {c: [float(r[c]) for r in records][:40]
                                                for c in chosen}))


def _row_labels(records: list[dict], cols: list[str]) -> list[str]:
    """Bar labels from a table's text columns, joined when one alone is not unique."""
    text = [c for c in cols if all(isinstance(r.get(c), str) for r in records)] or cols[:1]
    labels = [str(r.get(text[0])) for r in records]
    if len(set(labels)) < len(labels):
        labels = ["/".join(str(r.get(c)) for c in text) for r in records]
    return labels


# --------------------------------------------------------------------------- sections


@dataclass
class Context:
    corpus: Path
    stages: list[Stage]
    manifest: dict
    tokens: Path | None
    seed: int
    max_rows: int
    samples: int


def section_overview(ctx: Context) -> str:
    first = next((s.stats for s in ctx.stages if s.stats), None)
    last = next((s.stats for s in reversed(ctx.stages) if s.stats), None)
    if not first:
        return note("No stage folder with a stats.json was found.")
    rows = [
        f"<tr><td>documents in</td>{num(first.get('docs_in'))}</tr>",
        f"<tr><td>documents kept</td>{num(last.get('docs_kept'))}</tr>",
        f"<tr><td>text in</td>{size(first.get('bytes_in'))}</tr>",
        f"<tr><td>text kept</td>{size(last.get('bytes_kept'))}</tr>",
        f"<tr><td>stages</td><td>{esc(' → '.join(s.name for s in ctx.stages))}</td></tr>",
        f"<tr><td>seconds, all stages</td>"
        f"{num(sum(s.stats.get('seconds') or 0 for s in ctx.stages if s.stats), 1)}</tr>",
    ]
    missing = [s for s in DEFAULT_STAGES if s not in {st.name for st in ctx.stages}]
    out = table([], rows, "kv overview")
    incomplete = [s.name for s in ctx.stages if not s.complete]
    if incomplete:
        out += note(f"Incomplete stage folders (no _SUCCESS): {', '.join(incomplete)}; their "
                    "numbers may be partial.")
    if missing and not ctx.manifest.get("stages"):
        out += note(f"Not found (sections skipped): {', '.join(missing)}.")
    return out


def section_funnel(ctx: Context) -> str:
    rows, reasons = [], []
    for s in ctx.stages:
        st = s.stats
        if not st:
            rows.append(f'<tr data-stage="{esc(s.name)}"><td>{esc(s.name)}</td>'
                        f'<td colspan="8">no stats.json</td></tr>')
            continue
        rows.append(
            f'<tr data-stage="{esc(s.name)}"><td>{esc(s.name)}</td>{num(st.get("docs_in"))}'
            f'{num(st.get("docs_kept"))}{num(st.get("docs_rejected"))}'
            f'{pct(st.get("docs_kept") or 0, st.get("docs_in") or 0)}'
            f'{size(st.get("bytes_in"))}{size(st.get("bytes_kept"))}{size(st.get("bytes_rejected"))}'
            f'{num(st.get("seconds"), 1)}</tr>')
        by_bytes = st.get("rejected_bytes_by_reason") or {}
        by_docs = st.get("rejected_by_reason") or {}
        for reason, n in sorted(by_docs.items(), key=lambda kv: (-kv[1], kv[0])):
            reasons.append((s.name, reason, n, by_bytes.get(reason), st.get("docs_in") or 0))
    out = table(["stage", "docs in", "kept", "rejected", "kept %", "text in", "text kept",
                 "text rejected", "seconds"], rows, "funnel")
    if any(s.stats for s in ctx.stages):
        out += plot_funnel(ctx.stages)
    if reasons:
        out += "<h3>Removals by reason</h3>"
        out += table(["stage", "reason", "documents", "bytes", "% of stage input"], [
            f'<tr data-reason="{esc(st)}/{esc(r)}"><td>{esc(st)}</td><td><code>{esc(r)}</code>'
            f'</td>{num(n)}{size(b)}{pct(n, docs_in)}</tr>'
            for st, r, n, b, docs_in in reasons], "reasons")
        out += plot_reasons([(st, r, n) for st, r, n, _, _ in reasons if n])
    return out


def _lang_stage(ctx: Context) -> Stage | None:
    named = [s for s in ctx.stages if s.name == "langfilter"]
    for s in named + ctx.stages:
        if "lang" in columns_of(s.data[:1] + s.rejected[:1]):
            return s
    return None


def section_languages(ctx: Context) -> str | None:
    s = _lang_stage(ctx)
    if s is None:
        return None
    kept, n_kept = column_values(s.data, "lang", ctx.max_rows, ctx.seed)
    rej, n_rej = column_values(s.rejected, "lang", ctx.max_rows, ctx.seed)
    last = ctx.stages[-1]
    final: list = []
    if last is not s and "lang" in columns_of(last.data[:1]):
        final, _ = column_values(last.data, "lang", ctx.max_rows, ctx.seed)
    ck, cr, cf = Counter(kept), Counter(rej), Counter(final)
    langs = sorted(set(ck) | set(cr), key=lambda lang: (-(ck[lang] + cr[lang]), str(lang)))
    total = sum(ck.values()) + sum(cr.values())
    header = ["lang", f"kept by {s.name}", "rejected", "share of input"]
    if last is not s:
        header.append(f"after {last.name}")
    rows = []
    for lang in langs:
        row = (f'<tr data-lang="{esc(lang)}"><td>{esc(lang)}</td>{num(ck[lang])}{num(cr[lang])}'
               f'{pct(ck[lang] + cr[lang], total)}')
        if last is not s:
            row += num(cf[lang]) if final else "<td>–</td>"
        rows.append(row + "</tr>")
    out = note(f"At the {s.name} stage, from {n_kept.note} kept and {n_rej.note} rejected.")
    out += table(header, rows, "langs")
    top = langs[:TOP_LANGS]
    if top:
        out += plot_hbar([str(x) for x in top], {"kept": [ck[x] for x in top],
                                                 "rejected": [cr[x] for x in top]}, "documents")
    scores_k, _ = column_values(s.data, "lang_score", ctx.max_rows, ctx.seed)
    scores_r, _ = column_values(s.rejected, "lang_score", ctx.max_rows, ctx.seed)
    sk = np.array([x for x in scores_k if x is not None], dtype=float)
    sr = np.array([x for x in scores_r if x is not None], dtype=float)
    if len(sk) + len(sr):
        out += "<h3>Language-identification confidence (lang_score)</h3>"
        out += plot_hist({"kept": sk, "rejected": sr}, "lang_score", range_=(0.0, 1.0))
    return out


def section_lengths(ctx: Context) -> str | None:
    first = next((s for s in ctx.stages if s.data or s.rejected), None)
    last = next((s for s in reversed(ctx.stages) if s.data), None)
    if first is None:
        return None
    before, n_before = lengths(first.data + first.rejected, ctx.max_rows, ctx.seed)
    after, n_after = (lengths(last.data, ctx.max_rows, ctx.seed) if last
                      else (np.zeros(0), Sampled()))
    rows = []
    for name, arr in ((f"before ({first.name} input)", before),
                      (f"after ({last.name if last else '–'} output)", after)):
        if len(arr):
            q = np.percentile(arr, [10, 50, 90])
            rows.append(f"<tr><td>{esc(name)}</td>{num(len(arr))}{num(int(q[0]))}{num(int(q[1]))}"
                        f"{num(int(q[2]))}{num(int(arr.max()))}{num(int(arr.sum()))}</tr>")
        else:
            rows.append(f"<tr><td>{esc(name)}</td><td colspan='6'>no documents</td></tr>")
    out = note(f"Before: {n_before.note}. After: {n_after.note}. Length in UTF-8 bytes.")
    out += table(["", "documents", "p10", "median", "p90", "max", "bytes"], rows, "lengths")
    positive = {k: v[v > 0] for k, v in (("before", before), ("after", after))}
    if any(len(v) for v in positive.values()):
        out += plot_hist(positive, "document length (bytes, log scale)", log_x=True)
    return out


def section_dedup(ctx: Context) -> str | None:
    s = next((s for s in ctx.stages if s.name == "dedup"), None)
    if s is None:
        s = next((s for s in ctx.stages if "dup_cluster_size" in columns_of(s.data[:1])), None)
    if s is None:
        return None
    sizes, n = column_values(s.data, "dup_cluster_size", ctx.max_rows, ctx.seed)
    dups, _ = column_values(s.rejected, "duplicate_of", ctx.max_rows, ctx.seed)
    sizes = [int(x) for x in sizes if x is not None]
    dist = Counter(sizes)
    removed = sum(1 for d in dups if d)
    rows = [f'<tr data-size="{k}"><td>{k}</td>{num(v)}{num(v * k)}</tr>'
            for k, v in sorted(dist.items())]
    multi = sum(v for k, v in dist.items() if k > 1)
    out = note(f"From {n.note} kept by {s.name}. {multi:,} kept documents stand for a cluster "
               f"of more than one; {removed:,} rejected documents name the document kept in "
               "their place (duplicate_of).")
    if not sizes:
        return out + note("No dup_cluster_size column in the kept documents.")
    out += table(["cluster size", "clusters", "documents in them"], rows[:40], "clusters")
    if len(dist) > 1 or multi:
        out += plot_counts(dist, "cluster size (documents)", "clusters")
    top = pick_rows(s.data, 8, ctx.seed, score_col="dup_cluster_size",
                    max_rows=ctx.max_rows).get("", [])
    top = [r for r in top if (r.get("dup_cluster_size") or 0) > 1]
    if top:
        out += "<h3>Largest clusters (the document kept for each)</h3>"
        out += "".join(sample_card(r, ["dup_cluster_size", "dup_cluster"]) for r in top)
    return out


def section_bias(ctx: Context) -> str | None:
    s = next((s for s in ctx.stages if s.name == "bias_screen"), None)
    if s is None:
        return None
    out = ""
    report = _read_json(s.folder / "bias_report.json")
    if report is not None:
        plots: list[str] = []
        out += "<h3>Bias report</h3>" + generic(report, plots)
        out += "".join(plots)
    else:
        out += note("No bias_report.json in the bias_screen folder.")
    for path in sorted(s.folder.glob("*.png")) + sorted(s.folder.glob("plots/*.png")):
        data = path.read_bytes()
        if data.startswith(b"\x89PNG"):
            uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            out += (f'<figure><img alt="{esc(path.name)}" src="{uri}">'
                    f"<figcaption>{esc(path.name)}</figcaption></figure>")
    have = columns_of(s.data[:1] + s.rejected[:1])
    if "toxicity" in have:
        tk, _ = column_values(s.data, "toxicity", ctx.max_rows, ctx.seed)
        tr, _ = column_values(s.rejected, "toxicity", ctx.max_rows, ctx.seed)
        arrays = {k: np.array([x for x in v if x is not None], dtype=float)
                  for k, v in (("kept", tk), ("rejected", tr))}
        if any(len(a) for a in arrays.values()):
            out += "<h3>Toxicity score</h3>"
            top = max(1.0, *(a.max() for a in arrays.values() if len(a)))
            out += plot_hist(arrays, "toxicity", range_=(0.0, top))
    if "flags" in have:
        flags: Counter = Counter()
        for parts, side in ((s.data, "kept"), (s.rejected, "rejected")):
            values, _ = column_values(parts, "flags", ctx.max_rows, ctx.seed)
            for v in values:
                for f in v or []:
                    flags[(f, side)] += 1
        if flags:
            names = sorted({f for f, _ in flags})
            out += "<h3>Flags</h3>" + table(["flag", "kept", "rejected"], [
                f'<tr data-flag="{esc(f)}"><td>{esc(f)}</td>{num(flags[(f, "kept")])}'
                f'{num(flags[(f, "rejected")])}</tr>' for f in names])
    return out or None


def section_tokens(ctx: Context) -> str | None:
    if ctx.tokens is None:
        return None
    m = _read_json(ctx.tokens / "manifest.json")
    if not isinstance(m, dict):
        return note(f"{ctx.tokens}/manifest.json could not be read.")
    splits = m.get("splits") if isinstance(m.get("splits"), dict) else {}
    rows, labels, counts = [], [], []
    totals = Counter()

    def row(name: str, docs: Any, tokens: Any, nbytes: Any, shards: Any) -> str:
        return (f'<tr data-split="{esc(name)}"><td>{esc(name)}</td>{num(docs)}{num(tokens)}'
                f'{num(nbytes)}{num(nbytes / tokens if tokens and nbytes else None, 3)}'
                f'{num(shards)}</tr>')

    for name, info in splits.items():
        info = info if isinstance(info, dict) else {"tokens": info}
        tokens = _first(info, "tokens", "num_tokens", "token_count")
        docs = _first(info, "docs", "documents", "num_docs", "doc_count")
        nbytes = _first(info, "bytes", "num_bytes", "text_bytes")
        shards = info.get("shards")
        shards = len(shards) if isinstance(shards, list) else shards
        rows.append(row(name, docs, tokens, nbytes, shards))
        totals.update({k: v for k, v in (("docs", docs), ("tokens", tokens), ("bytes", nbytes),
                                         ("shards", shards)) if isinstance(v, (int, float))})
        labels.append(str(name))
        counts.append(float(tokens or 0))
    if len(rows) > 1:
        rows.append(row("all", totals.get("docs"), totals.get("tokens"), totals.get("bytes"),
                        totals.get("shards")))
    tok = m.get("tokenizer")
    tok = tok if isinstance(tok, dict) else {"file": tok}
    facts = {k: v for k, v in {
        "folder": str(ctx.tokens), "vocab size": m.get("vocab_size"), "dtype": m.get("dtype"),
        "tokenizer": tok.get("file") or tok.get("path"), "tokenizer sha256": tok.get("sha256"),
        "corpus": m.get("corpus") or m.get("input"), "bos id": m.get("bos_id")}.items()
        if v is not None}
    out = table(["key", "value"], [f"<tr><td>{esc(k)}</td>{cell(v)}</tr>"
                                   for k, v in facts.items()], "kv")
    out += table(["split", "documents", "tokens", "bytes", "bytes / token", "shards"], rows,
                 "tokens")
    if counts and any(counts):
        out += plot_columns(labels, {"tokens per split": counts})
    return out


def _first(info: dict, *keys: str) -> Any:
    for k in keys:
        if isinstance(info.get(k), (int, float)) and not isinstance(info.get(k), bool):
            return info[k]
    return None


def sample_card(rec: dict, extra: list[str] | None = None) -> str:
    text = rec.get("text") or ""
    shown = text[:SAMPLE_CHARS]
    more = f" … ({len(text) - SAMPLE_CHARS:,} more characters)" if len(text) > SAMPLE_CHARS else ""
    fields = {"id": rec.get("id"), "source": rec.get("source"), "url": rec.get("url")}
    for c in SAMPLE_COLUMNS + (extra or []):
        if rec.get(c) is not None:
            fields[c] = rec[c]
    meta = " · ".join(f"<b>{esc(k)}</b> {esc(_short(v))}" for k, v in fields.items()
                      if v is not None)
    size = len(text.encode("utf-8", "replace"))
    return (f'<div class="doc"><div class="meta">{meta} · <b>bytes</b> {size:,}</div>'
            f"<pre>{esc(shown)}{esc(more)}</pre></div>")


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "[]"
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)[:200]


def section_samples(ctx: Context) -> str | None:
    last = next((s for s in reversed(ctx.stages) if s.data), None)
    out = ""
    if last is not None:
        kept = pick_rows(last.data, ctx.samples, ctx.seed, max_rows=ctx.max_rows).get("", [])
        out += f"<h3>Kept (in the {esc(last.name)} output)</h3>"
        out += "".join(sample_card(r) for r in kept) or note("none")
    for s in ctx.stages:
        if not s.rejected:
            continue
        per_reason = pick_rows(s.rejected, max(1, ctx.samples // 2), ctx.seed, group_col="reason",
                               max_rows=ctx.max_rows)
        counts = (s.stats or {}).get("rejected_by_reason") or {}
        for reason, recs in per_reason.items():
            total = counts.get(reason)
            of = f"{len(recs)} of {total:,}" if isinstance(total, int) else f"{len(recs)}"
            out += (f'<details class="rejected" data-reason="{esc(s.name)}/{esc(reason)}">'
                    f"<summary>{esc(s.name)}: <code>{esc(reason)}</code> ({of})</summary>"
                    + "".join(sample_card(r) for r in recs) + "</details>")
    return out or None


def git_commit() -> tuple[str | None, bool]:
    """(HEAD, dirty) of the checkout this module runs from; (None, False) without git."""
    repo = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None, False
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, capture_output=True, text=True, timeout=10)
        return head.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, False


def section_provenance(ctx: Context) -> str:
    commit, dirty = git_commit()
    facts = {"corpus folder": str(ctx.corpus),
             "git commit": (commit + (" (with uncommitted changes)" if dirty else "")
                            if commit else "unknown (not a git checkout)"),
             "platform": f"{platform.system()} {platform.machine()}"}
    inputs = ctx.manifest.get("inputs") or next(
        (s.stats.get("inputs") for s in ctx.stages if s.stats and s.stats.get("inputs")), None)
    out = table(["key", "value"], [f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
                                   for k, v in facts.items()], "kv")
    if inputs:
        out += "<h3>Inputs</h3><ul>" + "".join(f"<li><code>{esc(i)}</code></li>"
                                               for i in inputs) + "</ul>"
        out += _raw_corpus_summary(inputs)
    out += "<h3>Stages</h3>"
    rows = []
    for s in ctx.stages:
        st = s.stats or {}
        spark = st.get("spark") if isinstance(st.get("spark"), dict) else {}
        rows.append(f'<tr><td>{esc(s.name)}</td><td><code>{esc(s.folder)}</code></td>'
                    f'<td>{"yes" if s.complete else "no"}</td>{num(st.get("seconds"), 1)}'
                    f'<td>{esc(st.get("finished_at", "–"))}</td>'
                    f'<td>{esc(spark.get("master", "–"))}</td></tr>')
    out += table(["stage", "folder", "complete", "seconds", "finished", "Spark master"], rows)
    for s in ctx.stages:
        if s.stats and s.stats.get("config") is not None:
            out += (f"<details><summary>config of {esc(s.name)}</summary><pre>"
                    f"{esc(json.dumps(s.stats['config'], indent=2, sort_keys=True, default=str))}"
                    "</pre></details>")
    recorded: dict[str, set] = defaultdict(set)
    for s in ctx.stages:
        for k, v in ((s.stats or {}).get("versions") or {}).items():
            recorded[k].add(str(v))
    installed = package_versions()
    names = list(installed) + sorted(set(recorded) - set(installed))
    out += "<h3>Package versions</h3>" + table(
        ["package", "installed (report)", "recorded by the stages"],
        [f"<tr><td>{esc(n)}</td><td>{esc(installed.get(n, '–'))}</td>"
         f"<td>{esc(' / '.join(sorted(recorded[n])) or '–')}</td></tr>" for n in names],
        "versions")
    return out


def _raw_corpus_summary(inputs: list) -> str:
    """What ``tools.demo_corpus`` found and wrote, when the input is one of its folders."""
    for i in inputs:
        s = _read_json(Path(str(i)) / "_demo_corpus.json")
        if not isinstance(s, dict):
            continue
        found, docs, nbytes = (s.get(k) or {} for k in ("found", "docs_by_kind", "bytes_by_kind"))
        kinds = table(["kind", "found on the machine", "documents", "text"], [
            f"<tr><td>{esc(k)}</td><td>{esc(found.get(k, '–'))}</td>{num(docs.get(k))}"
            f"{size(nbytes.get(k))}</tr>" for k in sorted(set(found) | set(docs))])
        ldocs, lbytes = s.get("docs_by_lang") or {}, s.get("bytes_by_lang") or {}
        langs = table(["language hint", "documents", "text"], [
            f"<tr><td>{esc(k)}</td>{num(ldocs.get(k))}{size(v)}</tr>"
            for k, v in sorted(lbytes.items(), key=lambda kv: -kv[1])])
        return (f"<h4>Raw demo corpus ({esc(i)}), built in {s.get('seconds', '?')} s</h4>"
                + kinds + "<details><summary>by language hint</summary>" + langs + "</details>")
    return ""


# --------------------------------------------------------------------------- the page

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;
background:#f6f7f9}
header{background:#1f3b5a;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}
nav{padding:8px 32px;background:#e8ecf1;position:sticky;top:0;font-size:13px}
nav a{margin-right:14px;color:#1f3b5a;text-decoration:none}
main{max-width:1100px;margin:0 auto;padding:8px 32px 48px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:6px 20px 16px;
margin:18px 0}
h2{font-size:18px;border-bottom:1px solid #e3e7ec;padding-bottom:4px}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border-bottom:1px solid #e6e9ee;padding:3px 10px;text-align:left;vertical-align:top}
th{background:#f1f3f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv td.num{text-align:left}td.num{white-space:nowrap}
img{max-width:100%;display:block;margin:8px 0}
.note{color:#56606b;font-size:13px}
.doc{border:1px solid #e1e5ea;border-radius:4px;margin:8px 0;background:#fbfcfd}
.doc .meta{font-size:12px;color:#45505c;padding:4px 8px;border-bottom:1px solid #e9edf1;
word-break:break-all}
pre{white-space:pre-wrap;word-wrap:break-word;margin:0;padding:8px;font-size:12px;
max-height:320px;overflow:auto}
details{margin:6px 0}summary{cursor:pointer}
code{font-size:12px;background:#f1f3f6;padding:0 3px;border-radius:3px}
"""
# Nothing may load from outside: images only from data: URIs, no script at all.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

SECTIONS = [
    ("overview", "Overview", section_overview),
    ("funnel", "Funnel: documents and bytes through each stage", section_funnel),
    ("languages", "Languages", section_languages),
    ("lengths", "Document lengths before and after", section_lengths),
    ("dedup", "Duplicate clusters", section_dedup),
    ("bias", "Bias, toxicity and PII screen", section_bias),
    ("tokens", "Tokens", section_tokens),
    ("samples", "Sample documents: kept, and rejected by reason", section_samples),
    ("provenance", "Provenance", section_provenance),
]


def build_report(corpus: str | os.PathLike, *, tokens: str | None = None, seed: int = 0,
                 max_rows: int = MAX_ROWS, samples: int = SAMPLES_KEPT) -> str:
    """The datasheet's HTML for the corpus folder ``corpus``."""
    root = Path(corpus)
    if not root.is_dir():
        raise UsageError(f"corpus folder not found: {corpus}")
    stages, manifest = find_stages(root)
    if not stages:
        raise UsageError(f"no stage folders in {corpus} (expected {', '.join(DEFAULT_STAGES)} "
                         "or a corpus.json naming them)")
    ctx = Context(root, stages, manifest, find_tokens(root, tokens, manifest), seed, max_rows,
                  samples)
    body, links = [], []
    for anchor, title, fn in SECTIONS:
        content = fn(ctx)
        if content is None:
            continue
        links.append(f'<a href="#{anchor}">{esc(title.split(":")[0])}</a>')
        body.append(f'<section id="{anchor}"><h2>{esc(title)}</h2>{content}</section>')
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Corpus datasheet: {esc(root.name)}</title><style>{CSS}</style></head>\n<body>"
        f"<header><h1>Corpus datasheet</h1><p>{esc(root.resolve())}</p></header>"
        f"<nav>{''.join(links)}</nav><main>\n" + "\n".join(body) + "\n</main></body></html>\n")


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m pipeline.report",
                                description="Write the corpus datasheet (one HTML file).")
    p.add_argument("--corpus", required=True, metavar="DIR",
                   help="the corpus folder holding the stage folders (jobs/corpus.py's --output)")
    p.add_argument("--tokens", metavar="DIR",
                   help="token shard folder with manifest.json (default: found in DIR)")
    p.add_argument("--out", metavar="FILE", help="HTML file to write (default DIR/report.html)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--max-rows", type=int, default=MAX_ROWS,
                   help=f"rows read per distribution (default {MAX_ROWS:,})")
    args = p.parse_args(argv)
    page = build_report(args.corpus, tokens=args.tokens, seed=args.seed, max_rows=args.max_rows)
    out = Path(args.out) if args.out else Path(args.corpus) / "report.html"
    if out.is_dir():
        raise UsageError(f"--out is a folder: {out}")
    atomic_write_text(out, page)
    print(f"report: {out.resolve()} ({len(page.encode()) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    from core.errors import run_command

    run_command(main)
