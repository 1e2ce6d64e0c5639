"""The corpus datasheet on a corpus folder crafted by hand, so every number in it is known.

The page is also opened in a real headless browser (Debian's ``chromium``): a page error, a
blocked outside load or an image that does not decode fails the test.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.report import datasheet as report

EVIL = '<script>alert("x")</script><img src="http://example.invalid/x.png"> & more'


def _doc(i: int, text: str, **extra) -> dict:
    return {"id": f"doc-{i:03d}", "text": text, "source": "raw/a.jsonl",
            "url": f"https://example.org/{i}", "metadata": None, **extra}


def _write_stage(root: Path, name: str, kept: list[dict], rejected: list[dict], *,
                 docs_in: int, config: dict, seconds: float, split_files: bool = False) -> None:
    """A stage folder in the SPEC layout, with stats computed from the rows themselves."""
    folder = root / name
    for sub, rows in (("data", kept), ("rejected", rejected)):
        (folder / sub).mkdir(parents=True)
        chunks = [rows[: len(rows) // 2], rows[len(rows) // 2:]] if split_files else [rows]
        for i, chunk in enumerate(chunks):
            if chunk or i == 0:
                table = pa.Table.from_pylist(chunk) if chunk else pa.table(
                    {"id": pa.array([], pa.string()), "text": pa.array([], pa.string())})
                pq.write_table(table, folder / sub / f"part-{i:05d}.parquet", row_group_size=2)
    nbytes = lambda rows: sum(len(r["text"].encode()) for r in rows)  # noqa: E731
    by_reason, bytes_by_reason = {}, {}
    for r in rejected:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
        bytes_by_reason[r["reason"]] = bytes_by_reason.get(r["reason"], 0) + len(r["text"].encode())
    assert docs_in == len(kept) + len(rejected)
    stats = {"stage": name, "docs_in": docs_in, "bytes_in": nbytes(kept) + nbytes(rejected),
             "docs_kept": len(kept), "bytes_kept": nbytes(kept), "docs_rejected": len(rejected),
             "bytes_rejected": nbytes(rejected), "rejected_by_reason": by_reason,
             "rejected_bytes_by_reason": bytes_by_reason, "seconds": seconds,
             "config": config, "versions": {"python": "3.11.7", "pyspark": "4.0.0"},
             "inputs": ["raw/"], "finished_at": "2026-01-01T00:00:00+00:00"}
    (folder / "stats.json").write_text(json.dumps(stats))
    (folder / "_SUCCESS").write_text("")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    en = [f"English document number {i}. " * (5 + 10 * i) for i in range(5)]
    de = ["Ein deutsches Dokument über Sprache. " * 20, "Noch ein deutscher Text. " * 30]
    # clean: 12 in, 2 rejected
    clean_kept = ([_doc(i, t) for i, t in enumerate(en)]
                  + [_doc(5, de[0]), _doc(6, de[1]), _doc(7, "Un document français. " * 9),
                     _doc(8, "Encore du français ici. " * 12), _doc(9, EVIL + " ?!" * 40)])
    clean_rej = [_doc(10, "too short", reason="quality:too_short"),
                 _doc(11, "{not json", reason="ingest:bad_json")]
    _write_stage(root, "clean", clean_kept, clean_rej, docs_in=12, config={"min_words": 5},
                 seconds=4.5, split_files=True)
    # langfilter: 10 in, 7 kept (5 en, 2 de), 3 rejected
    lang = lambda d, code, score: {**d, "lang": code, "lang_score": score}  # noqa: E731
    lf_kept = [lang(d, "en", 0.9 + 0.01 * i) for i, d in enumerate(clean_kept[:5])] + [
        lang(clean_kept[5], "de", 0.95), lang(clean_kept[6], "de", 0.97)]
    lf_rej = [{**lang(clean_kept[7], "fr", 0.99), "reason": "lang:fr"},
              {**lang(clean_kept[8], "fr", 0.98), "reason": "lang:fr"},
              {**lang(clean_kept[9], "en", 0.31), "reason": "lang:low_score"}]
    _write_stage(root, "langfilter", lf_kept, lf_rej, docs_in=10,
                 config={"languages": ["en", "de"], "min_score": 0.65}, seconds=2.0)
    # dedup: 7 in; doc-000 stands for a cluster of 3 (two removed), the rest unique
    dd = lambda d, size: {**d, "dup_cluster": d["id"], "dup_cluster_size": size,  # noqa: E731
                          "duplicate_of": None}
    dd_kept = [dd(lf_kept[0], 3)] + [dd(d, 1) for d in lf_kept[3:]]
    dd_rej = [{**lf_kept[1], "dup_cluster": "doc-000", "dup_cluster_size": 3,
               "duplicate_of": "doc-000", "reason": "dup:exact"},
              {**lf_kept[2], "dup_cluster": "doc-000", "dup_cluster_size": 3,
               "duplicate_of": "doc-000", "reason": "dup:near"}]
    _write_stage(root, "dedup", dd_kept, dd_rej, docs_in=7,
                 config={"threshold": 0.8, "num_perm": 128}, seconds=3.25)
    # bias_screen: 5 in, 1 rejected for PII
    bs = lambda d, tox, pii, flags: {**d, "toxicity": tox, "pii_count": pii,  # noqa: E731
                                     "flags": flags}
    bs_kept = [bs(dd_kept[0], 0.0, 0, []), bs(dd_kept[1], 0.2, 1, ["review"]),
               bs(dd_kept[2], 0.0, 0, []), bs(dd_kept[3], 0.7, 0, ["toxic"])]
    bs_rej = [{**bs(dd_kept[4], 0.1, 9, []), "reason": "pii:too_many"}]
    _write_stage(root, "bias_screen", bs_kept, bs_rej, docs_in=5, config={"policy": "default"},
                 seconds=1.5)
    (root / "bias_screen" / "bias_report.json").write_text(json.dumps({
        "disparity": [{"axis": "gender", "term": "she", "docs": 12, "toxic_rate": 0.05},
                      {"axis": "gender", "term": "he", "docs": 30, "toxic_rate": 0.02}],
        "axes": {"gender": {"docs": 42, "disparity_ratio": 2.5},
                 "religion": {"docs": 3, "disparity_ratio": 1.0}},
        "policy": {"name": "default", "note": EVIL}}))
    tokens = root / "tokens"
    tokens.mkdir()
    (tokens / "manifest.json").write_text(json.dumps({
        "tokenizer": {"file": "tokenizer.model", "sha256": "ab" * 32}, "vocab_size": 8000,
        "dtype": "uint16", "corpus": str(root / "bias_screen"),
        "splits": {"train": {"docs": 3, "tokens": 1000, "bytes": 4200,
                             "shards": ["train_000000.bin"]},
                   "val": {"docs": 1, "tokens": 250, "bytes": 1000,
                           "shards": ["val_000000.bin"]}}}))
    (root / "corpus.json").write_text(json.dumps({
        "stages": ["clean", "langfilter", "dedup", "bias_screen"],
        "folders": {s: s for s in ["clean", "langfilter", "dedup", "bias_screen"]}}))
    return root


@pytest.fixture(scope="module")
def page(corpus) -> str:
    report.main(["--corpus", str(corpus)])
    return (corpus / "report.html").read_text(encoding="utf-8")


class _Cells(HTMLParser):
    """``data-v`` values of the cells of rows carrying ``attr``, by that attribute's value."""

    def __init__(self, attr: str):
        super().__init__()
        self.attr, self.rows, self._row = attr, {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self._row = a.get(self.attr)
            if self._row is not None:
                self.rows[self._row] = []
        elif tag == "td" and self._row is not None and a.get("class") == "num":
            self.rows[self._row].append(float(a["data-v"]) if "data-v" in a else None)


def cells(page: str, attr: str) -> dict[str, list]:
    parser = _Cells(attr)
    parser.feed(page)
    return parser.rows


def test_funnel_numbers_come_from_stats(page):
    funnel = cells(page, "data-stage")
    assert list(funnel) == ["clean", "langfilter", "dedup", "bias_screen"]
    # docs in, kept, rejected, kept %, bytes in, bytes kept, bytes rejected, seconds
    assert funnel["clean"][:4] == [12, 10, 2, 83.3]
    assert funnel["langfilter"][:3] == [10, 7, 3]
    assert funnel["dedup"][:3] == [7, 5, 2]
    assert funnel["bias_screen"][:3] == [5, 4, 1]
    assert funnel["dedup"][-1] == 3.25
    reasons = cells(page, "data-reason")
    assert reasons["langfilter/lang:fr"][:1] == [2]
    assert reasons["dedup/dup:exact"][:1] == [1]
    assert reasons["bias_screen/pii:too_many"][:1] == [1]


def test_languages_clusters_tokens(page):
    langs = cells(page, "data-lang")
    assert langs["en"][:2] == [5, 1] and langs["de"][:2] == [2, 0] and langs["fr"][:2] == [0, 2]
    assert langs["en"][-1] == 3  # after bias_screen: doc-000, doc-003, doc-004
    sizes = cells(page, "data-size")
    assert sizes == {"1": [4, 4], "3": [1, 3]}
    splits = cells(page, "data-split")
    assert splits["train"][:4] == [3, 1000, 4200, 4.2]
    assert splits["val"][1] == 250
    assert splits["all"][:4] == [4, 1250, 5200, 4.16]
    flags = cells(page, "data-flag")
    assert flags == {"review": [1, 0], "toxic": [1, 0]}


def test_sections_samples_and_provenance(page, corpus):
    for anchor in ("funnel", "languages", "lengths", "dedup", "bias", "tokens", "samples",
                   "provenance"):
        assert f'<section id="{anchor}">' in page
    # Rejected samples for every reason, so a person can judge each filter.
    for reason in ("clean/quality:too_short", "clean/ingest:bad_json", "langfilter/lang:fr",
                   "langfilter/lang:low_score", "dedup/dup:exact", "dedup/dup:near",
                   "bias_screen/pii:too_many"):
        assert f'<details class="rejected" data-reason="{reason}">' in page
    assert "Un document français" in page
    # The bias helper's own keys become tables.
    assert "disparity_ratio" in page and "toxic_rate" in page
    assert "&quot;min_score&quot;: 0.65" in page  # configs, escaped
    assert "pyarrow" in page and "3.11.7" in page  # versions, installed and recorded


def test_everything_from_documents_is_escaped_and_nothing_loads_from_outside(page):
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(" in page
    srcs = re.findall(r'\bsrc="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(h.startswith("#") for h in re.findall(r'\bhref="([^"]*)"', page))
    assert "Content-Security-Policy" in page


def test_report_is_deterministic(corpus, page, tmp_path):
    again = tmp_path / "again.html"
    report.main(["--corpus", str(corpus), "--out", str(again)])
    assert again.read_text(encoding="utf-8") == page


def test_missing_stages_and_tokens_are_skipped(corpus, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(corpus / "clean", partial / "clean")
    shutil.copytree(corpus / "dedup", partial / "dedup")
    html = report.build_report(partial)
    assert list(cells(html, "data-stage")) == ["clean", "dedup"]
    assert '<section id="tokens">' not in html and '<section id="bias">' not in html
    # No language filter: the languages come from the first stage that carries `lang`.
    assert "At the dedup stage" in html
    assert "Not found (sections skipped): langfilter, bias_screen" in html


def test_bounded_sampling_reads_a_subset(corpus):
    html = report.build_report(corpus, max_rows=2)
    assert "a sample of" in html
    assert list(cells(html, "data-stage")) == ["clean", "langfilter", "dedup", "bias_screen"]


def test_bad_input_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["--corpus", str(tmp_path / "missing")], ["--corpus", str(empty)]):
        proc = subprocess.run([sys.executable, "-m", "pipeline.report.datasheet", *args],
                              capture_output=True, text=True, cwd=Path(report.__file__).parents[2])
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


# The checker runs before the report's own Content-Security-Policy meta (a meta policy covers
# only what follows it), so the policy stays in force for the page: an outside load is
# blocked and reported as a violation, and an image that does not decode has naturalWidth 0.
CHECKER = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push('error: ' + (e.message || (e.target && e.target.src) || 'resource'));
}, true);
document.addEventListener('securitypolicyviolation', function (e) {
  window.__errors.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI);
});
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var m = document.createElement('div');
  m.id = 'report-check';
  m.setAttribute('data-images', imgs.length);
  m.setAttribute('data-broken', broken.length);
  m.setAttribute('data-errors', window.__errors.join(' | '));
  m.textContent = (broken.length || window.__errors.length) ? 'FAIL' : 'OK';
  document.body.appendChild(m);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def load_in_browser(html_path: Path, work: Path) -> tuple[str, str]:
    """(dumped DOM, console lines) of ``html_path`` with the checker injected."""
    page = html_path.read_text(encoding="utf-8")
    checked = work / "checked.html"
    checked.write_text(page.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + CHECKER,
                                    1), encoding="utf-8")
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={work / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
         checked.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = "\n".join(line for line in proc.stderr.splitlines()
                        if "CONSOLE" in line or "Uncaught" in line)
    return proc.stdout, console


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (apt-get install -y "
                                                "chromium); CI installs it")
def test_report_loads_in_headless_chromium(corpus, page, tmp_path):
    dom, console = load_in_browser(corpus / "report.html", tmp_path)
    m = re.search(r'<div id="report-check" data-images="(\d+)" data-broken="(\d+)" '
                  r'data-errors="([^"]*)">(\w+)</div>', dom)
    assert m, "the load check never ran: " + dom[-500:]
    images, broken, errors, verdict = int(m[1]), int(m[2]), m[3], m[4]
    assert images == page.count("<img ") and images >= 8
    assert (broken, errors, verdict) == (0, "", "OK")
    assert console == ""
    # The escaped document text stayed text: no element came out of it.
    assert 'src="http://example.invalid' not in dom.split('id="report-check"')[0].replace(
        "&lt;img src=", "")


@pytest.mark.skipif(chromium() is None, reason="chromium not installed")
def test_browser_check_catches_a_broken_image_and_a_page_error(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8">'
                   f'<meta http-equiv="Content-Security-Policy" content="{report.CSP}">'
                   '</head><body><img src="data:image/png;base64,AAAA">'
                   '<img src="http://example.invalid/x.png"></body></html>', encoding="utf-8")
    dom, _ = load_in_browser(bad, tmp_path)
    m = re.search(r'data-broken="(\d+)" data-errors="([^"]*)">(\w+)<', dom)
    assert m and int(m[1]) == 2 and "csp" in m[2] and m[3] == "FAIL"
