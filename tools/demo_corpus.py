"""A raw demo corpus from text every Debian/Ubuntu machine already has: ``make demo``'s input.

    python -m tools.demo_corpus --output demo/raw [--max-mb 25] [--seed 0]

Three kinds of text, each written in a format ``jobs/clean.py`` reads, so one run exercises
several readers:

- man pages in every installed language (``/usr/share/man/<lang>/man?``), rendered to plain
  text by ``groff`` (or ``man``), one JSONL file per language under ``man/``;
- package documentation (``/usr/share/doc``): copyright files as plain ``.txt`` files under
  ``copyright/`` (one per package), READMEs, ``.txt``/``.md``/``.rst`` and ``changelog*.gz`` in
  ``usr_share_doc.jsonl``. Hundreds of packages ship the same GPL/Apache copyright text and the
  same README boilerplate: the real exact and near duplicates the dedup stage is there to find;
- Python's own documentation: the standard library's docstrings (read with ``ast``; no module
  is imported, so nothing in the stdlib runs) and ``pydoc_data``'s help topics, in
  ``python_docs.jsonl.gz``.

JSONL records carry ``text``, ``url`` (the ``file://`` URI of the original), ``lang_hint`` (the
language the folder claims; the language filter decides), ``kind`` and ``title``.

The corpus is the same on the same machine: walks are sorted, samples are drawn by a seeded
RNG, and a byte budget (``--max-mb``) is shared among the kinds by fixed fractions, never by
time. What a machine lacks (no groff, no translated man pages, no ``/usr/share/doc``) is
reported and the other kinds fill the budget.
"""
from __future__ import annotations

import ast
import bz2
import gzip
import json
import lzma
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from pathlib import Path

from core.errors import ArgumentParser, UsageError

# Fractions of --max-mb each kind may take in the first pass. Man pages get over half: they are
# the multilingual part (translations first) and the costly one to render. A kind that finds
# less leaves its share to the second pass, which refills from the cheap kinds first.
SHARES = {
    "python": 0.12,
    "doc:copyright": 0.13,
    "doc:text": 0.13,
    "doc:changelog": 0.08,
    "man:translated": 0.34,
    "man:en": 0.20,
}
REFILL_ORDER = ["doc:text", "doc:changelog", "doc:copyright", "python", "man:translated",
                "man:en"]
# One changelog can be megabytes; a cap keeps one package from taking a kind's whole share.
MAX_DOC_BYTES = 256 << 10
# Translations are rendered in full up to this many pages per language; English has ~20k
# pages here, so it is sampled (and stops at its byte share long before this cap).
MAN_PAGES_PER_LANG = 400
MAN_EN_MAX_PAGES = 3000
RENDER_TIMEOUT_S = 20.0
MAN_SECTION = re.compile(r"^man[1-9][a-z]*$")
OVERSTRIKE = re.compile(".\x08")
# Locale folder → ISO 639-1, the code fastText uses (pt_BR → pt, zh_TW → zh, de.UTF-8 → de).
LOCALE = re.compile(r"^([a-z]{2,3})(?:_[A-Z]{2})?(?:\.[\w-]+)?(?:@\w+)?$")
# What the stdlib walk leaves out: third-party code, and test suites whose docstrings are
# mostly "Test that …" one-liners.
SKIP_STDLIB_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests",
                    "idle_test", "lib2to3"}


@dataclass(frozen=True)
class Doc:
    kind: str           # a key of SHARES
    title: str          # "ls(1)", "zstd/README.md", "json.decoder"
    text: str
    url: str            # file:// URI of the original, with a fragment for sub-documents
    lang_hint: str | None
    out_name: str       # where it goes in the output folder, relative
    truncated: bool = False

    @cached_property
    def nbytes(self) -> int:
        return len(self.text.encode("utf-8"))


@dataclass
class Summary:
    found: dict[str, str] = field(default_factory=dict)       # what each source had, in words
    docs: Counter = field(default_factory=Counter)             # by kind
    bytes: Counter = field(default_factory=Counter)            # by kind
    lang_bytes: Counter = field(default_factory=Counter)       # by lang_hint ("?" = none)
    lang_docs: Counter = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)
    render_failures: Counter = field(default_factory=Counter)  # by cause
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"found": self.found, "docs_by_kind": dict(sorted(self.docs.items())),
                "bytes_by_kind": dict(sorted(self.bytes.items())),
                "docs_by_lang": dict(sorted(self.lang_docs.items())),
                "bytes_by_lang": dict(sorted(self.lang_bytes.items())),
                "render_failures": dict(sorted(self.render_failures.items())),
                "files": self.files, "total_docs": sum(self.docs.values()),
                "total_bytes": sum(self.bytes.values()), "seconds": round(self.seconds, 1)}


# --------------------------------------------------------------------------- reading files


def _decompress(path: Path) -> bytes | None:
    """The file's bytes, decompressed by its suffix; None when it cannot be read."""
    name = path.name
    try:
        if name.endswith(".gz"):
            return gzip.decompress(path.read_bytes())
        if name.endswith(".bz2"):
            return bz2.decompress(path.read_bytes())
        if name.endswith((".xz", ".lzma")):
            return lzma.decompress(path.read_bytes())
        if name.endswith(".zst"):
            import zstandard

            return zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read()
        return path.read_bytes()
    except (OSError, EOFError, ValueError, lzma.LZMAError, ImportError):
        return None


def _decode(data: bytes, encoding_hint: str | None = None) -> str | None:
    """UTF-8 first, then the locale folder's encoding, then Latin-1; None for binary files."""
    if b"\x00" in data[:8192]:
        return None
    for enc in ("utf-8", encoding_hint):
        if enc:
            try:
                return data.decode(enc)
            except (UnicodeDecodeError, LookupError):
                pass
    return data.decode("latin-1")


def _cap(text: str) -> tuple[str, bool]:
    """At most MAX_DOC_BYTES, cut at a line break."""
    raw = text.encode("utf-8")
    if len(raw) <= MAX_DOC_BYTES:
        return text, False
    cut = raw[:MAX_DOC_BYTES].decode("utf-8", "ignore")
    nl = cut.rfind("\n")
    return (cut[:nl + 1] if nl > 0 else cut), True


def _uri(path: Path, fragment: str | None = None) -> str:
    uri = path.absolute().as_uri()
    return f"{uri}#{fragment}" if fragment else uri


def _safe_part(part: str) -> str:
    """A path component the ingest reader does not skip (it hides names starting . or _)."""
    part = re.sub(r"[^\w.+@=-]", "_", part)
    return part if part[:1] not in (".", "_", "") else "x" + part


# --------------------------------------------------------------------------- man pages


def _lang_of(folder: str) -> tuple[str, str | None] | None:
    """(ISO code, encoding) of a locale folder name, or None if it is not one."""
    m = LOCALE.match(folder)
    if not m:
        return None
    encoding = folder.split(".", 1)[1].split("@")[0] if "." in folder else None
    return m.group(1), encoding


def list_man_pages(man_root: Path) -> dict[str, list[tuple[Path, str | None]]]:
    """Man page files by language code, sorted; symlinks (aliases of another page) left out."""
    pages: dict[str, list[tuple[Path, str | None]]] = defaultdict(list)
    if not man_root.is_dir():
        return {}
    for top in sorted(os.listdir(man_root)):
        top_path = man_root / top
        if not top_path.is_dir():
            continue
        if MAN_SECTION.match(top):
            sections, lang, enc = [top_path], "en", None
        else:
            found = _lang_of(top)
            if found is None:
                continue
            lang, enc = found
            sections = [top_path / s for s in sorted(os.listdir(top_path))
                        if MAN_SECTION.match(s) and (top_path / s).is_dir()]
        for section in sections:
            for name in sorted(os.listdir(section)):
                p = section / name
                if p.is_file() and not p.is_symlink():
                    pages[lang].append((p, enc))
    return {lang: sorted(v) for lang, v in sorted(pages.items())}


def find_renderer() -> str | None:
    """``groff`` (fast: one process, no pager) or else ``man``; None when neither exists."""
    if shutil.which("groff"):
        return "groff"
    if shutil.which("man"):
        return "man"
    return None


def render_man_page(path: Path, encoding: str | None, renderer: str,
                    timeout: float = RENDER_TIMEOUT_S) -> tuple[str | None, str]:
    """(text, "") or (None, why): one page to 80-column plain text, no overstrike."""
    data = _decompress(path)
    if data is None:
        return None, "unreadable"
    source = _decode(data, encoding)
    if source is None:
        return None, "binary"
    if source.lstrip().startswith(".so ") and source.count("\n") <= 2:
        return None, "alias"  # a one-line include of another page: that page is rendered
    env = {**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "80", "MAN_DISABLE_SECCOMP": "1"}
    if renderer == "groff":
        # -k -K utf8: the input is UTF-8 (we decoded it); -t: tbl for tables; -P-cbou: plain
        # characters, no SGR escapes or overstrike bold/underline.
        cmd = ["groff", "-k", "-Kutf8", "-t", "-man", "-Tutf8", "-P-cbou", "-rLL=80n",
               "-rLT=80n", "-rHY=0"]
        stdin = source.encode("utf-8")
    else:
        cmd = ["man", "-l", "-E", "UTF-8", "-P", "cat", str(path)]
        stdin = b""
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    except OSError:
        return None, "renderer_failed"
    text = OVERSTRIKE.sub("", proc.stdout.decode("utf-8", "replace"))
    text = "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")
    if proc.returncode != 0 and not text:
        return None, "renderer_failed"
    return (text + "\n", "") if text.strip() else (None, "empty")


def _rendered(items: list[tuple[Path, str | None, str]], renderer: str, jobs: int,
              timeout: float) -> Iterator[tuple[Path, str, str | None, str]]:
    """Render in order with ``jobs`` pages in flight; stops rendering when the caller stops.

    Each render is its own groff process, so a thread pool is a process pool here without
    pickling; results come back in submission order, which keeps the corpus deterministic.
    """
    ex = ThreadPoolExecutor(max_workers=max(1, jobs))
    window: deque = deque()
    it = iter(items)
    try:
        for path, enc, lang in islice(it, 2 * jobs):
            window.append((path, lang, ex.submit(render_man_page, path, enc, renderer, timeout)))
        while window:
            path, lang, fut = window.popleft()
            nxt = next(it, None)
            if nxt is not None:
                window.append((nxt[0], nxt[2],
                               ex.submit(render_man_page, nxt[0], nxt[1], renderer, timeout)))
            text, why = fut.result()
            yield path, lang, text, why
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _man_title(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".bz2", ".xz", ".lzma", ".zst"):
        name = name.removesuffix(suffix)
    stem, _, section = name.rpartition(".")
    return f"{stem}({section})" if stem else name


def man_docs(man_root: Path, kind: str, *, seed: int, renderer: str | None, jobs: int,
             timeout: float, summary: Summary, per_lang: int = MAN_PAGES_PER_LANG,
             en_max: int = MAN_EN_MAX_PAGES) -> Iterator[Doc]:
    """English (``man:en``) or every translation (``man:translated``), in sampled order.

    Translations are interleaved round-robin across languages, so a byte budget that runs
    out part-way still leaves every language in the corpus.
    """
    pages = list_man_pages(man_root)
    if kind == "man:en":
        langs = {"en": pages.get("en", [])}
        cap = en_max
    else:
        langs = {k: v for k, v in pages.items() if k != "en"}
        cap = per_lang
    n_found = sum(len(v) for v in langs.values())
    what = (f"{n_found} pages" + (f" in {len(langs)} languages ({', '.join(langs)})"
                                  if kind == "man:translated" else "") + f" under {man_root}")
    if not n_found:
        summary.found[kind] = f"none under {man_root}"
        return
    if renderer is None:
        summary.found[kind] = f"{what}; skipped: neither groff nor man is installed"
        return
    summary.found[kind] = f"{what}; rendered with {renderer}"
    queues = []
    for lang, items in langs.items():
        items = list(items)
        random.Random(f"{seed}:{kind}:{lang}").shuffle(items)
        queues.append([(p, enc, lang) for p, enc in items[:cap]])
    order = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    for path, lang, text, why in _rendered(order, renderer, jobs, timeout):
        if text is None:
            summary.render_failures[why] += 1
            continue
        text, truncated = _cap(text)
        yield Doc(kind, _man_title(path), text, _uri(path), lang,
                  f"man/{_safe_part(lang)}.jsonl", truncated)


# --------------------------------------------------------------------------- /usr/share/doc


def _doc_kind(name: str) -> str | None:
    low = name.lower()
    if low == "copyright":
        return "doc:copyright"
    if low.startswith("changelog") and low.endswith(".gz"):
        return "doc:changelog"
    base = low.removesuffix(".gz")
    if base.startswith("readme") or base.endswith((".txt", ".md", ".rst")):
        return "doc:text"
    return None


def list_doc_files(doc_root: Path) -> dict[str, list[Path]]:
    """Documentation files by kind, from a sorted walk that follows no symlink."""
    found: dict[str, list[Path]] = defaultdict(list)
    if not doc_root.is_dir():
        return {}
    for root, dirs, names in os.walk(doc_root):
        dirs.sort()
        for name in sorted(names):
            p = Path(root) / name
            kind = _doc_kind(name)
            if kind and not p.is_symlink() and p.is_file():
                found[kind].append(p)
    return dict(found)


def doc_docs(doc_root: Path, kind: str, *, seed: int, summary: Summary) -> Iterator[Doc]:
    files = list(list_doc_files(doc_root).get(kind, []))
    summary.found[kind] = f"{len(files)} files under {doc_root}" if files else (
        f"none under {doc_root}")
    random.Random(f"{seed}:{kind}").shuffle(files)
    for p in files:
        data = _decompress(p)
        text = _decode(data) if data is not None else None
        if text is None or not text.strip():
            continue
        text, truncated = _cap(text)
        rel = p.relative_to(doc_root)
        if kind == "doc:copyright":
            out = "copyright/" + "__".join(_safe_part(x) for x in rel.parent.parts) + ".txt"
        else:
            out = "usr_share_doc.jsonl"
        yield Doc(kind, str(rel), text, _uri(p), None, out, truncated)


# --------------------------------------------------------------------------- Python docs


def module_docstrings(path: str, module: str) -> str | None:
    """One document for a module: its docstring, then each class's and function's, by name.

    Parsed with ``ast``, never imported, so building the corpus runs no stdlib code.
    """
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=path)
    except (SyntaxError, ValueError, OSError, RecursionError):
        return None
    parts: list[str] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}.{child.name}"
                doc = ast.get_docstring(child)
                if doc:
                    parts.append(f"{name}\n\n{doc.strip()}")
                visit(child, name)

    head = ast.get_docstring(tree)
    visit(tree, module)
    if not head and not parts:
        return None
    return "\n\n\n".join([f"{module}\n\n{head.strip()}" if head else module] + parts) + "\n"


def _module_task(args: tuple[str, str]) -> tuple[str, str, str | None]:
    path, module = args
    return path, module, module_docstrings(path, module)


def pydoc_topics(stdlib: Path) -> list[tuple[str, str]]:
    """``pydoc_data/topics.py``'s help topics (the language reference text ``help()`` shows)."""
    path = stdlib / "pydoc_data" / "topics.py"
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            try:
                topics = ast.literal_eval(node.value)
            except ValueError:
                return []
            return sorted((k, v) for k, v in topics.items()
                          if isinstance(k, str) and isinstance(v, str) and v.strip())
    return []


def list_stdlib_modules(stdlib: Path) -> list[tuple[str, str]]:
    """(path, dotted module name) of the stdlib's .py files, sorted."""
    out = []
    if not stdlib.is_dir():
        return out
    for root, dirs, names in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_STDLIB_DIRS and "." not in d
                         and not d.startswith("config-"))
        for name in sorted(names):
            if not name.endswith(".py") or name.startswith("."):
                continue
            rel = Path(root, name).relative_to(stdlib).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts and parts[0] != "pydoc_data":
                out.append((str(Path(root, name)), ".".join(parts)))
    return out


def python_docs(stdlib: Path, *, seed: int, jobs: int, summary: Summary,
                progress: bool) -> Iterator[Doc]:
    modules = list_stdlib_modules(stdlib)
    topics = pydoc_topics(stdlib)
    if not modules and not topics:
        summary.found["python"] = f"no Python sources under {stdlib}"
        return
    docs: list[Doc] = []
    out = "python_docs.jsonl.gz"
    with _maybe_pool(jobs, len(modules)) as pool:
        results = pool.map(_module_task, modules, chunksize=16)
        for path, module, text in _progress(results, progress, total=len(modules),
                                            desc="stdlib docstrings", unit="mod"):
            if text:
                text, truncated = _cap(text)
                docs.append(Doc("python", module, text, _uri(Path(path)), "en", out, truncated))
    for name, text in topics:
        docs.append(Doc("python", f"topic:{name}", text, _uri(stdlib / "pydoc_data" / "topics.py",
                                                              f"topic={name}"), "en", out))
    summary.found["python"] = (f"{sum(d.title[:6] != 'topic:' for d in docs)} modules with "
                               f"docstrings of {len(modules)}, {len(topics)} help topics "
                               f"under {stdlib}")
    random.Random(f"{seed}:python").shuffle(docs)
    yield from docs


class _SerialPool:
    """``ProcessPoolExecutor``'s ``map`` in-process: for one job, or too few files to fork for."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items, chunksize=1):
        return map(fn, items)


def _maybe_pool(jobs: int, n: int):
    return ProcessPoolExecutor(max_workers=jobs) if jobs > 1 and n >= 64 else _SerialPool()


def _progress(it, enabled: bool, **kw):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, **kw)


# --------------------------------------------------------------------------- building


class _Source:
    """A kind's documents in sampled order, with one document of look-ahead.

    The look-ahead is the document that did not fit the first pass's share: it is offered
    again in the refill pass rather than lost.
    """

    def __init__(self, kind: str, docs: Iterator[Doc]):
        self.kind, self._docs, self.pending = kind, docs, None

    def peek(self) -> Doc | None:
        if self.pending is None:
            self.pending = next(self._docs, None)
        return self.pending

    def take(self) -> Doc:
        doc, self.pending = self.pending, None
        return doc

    def close(self) -> None:
        close = getattr(self._docs, "close", None)
        if close:
            close()


def _fill(src: _Source, chosen: list[Doc], used: Counter, limit: int, total_limit: int,
          bar) -> None:
    """Take ``src``'s documents while its kind stays within ``limit`` and the whole within
    ``total_limit``; a document that does not fit ends the pass for this kind."""
    while (doc := src.peek()) is not None:
        n = doc.nbytes
        if used[src.kind] + n > limit or sum(used.values()) + n > total_limit:
            return
        chosen.append(src.take())
        used[src.kind] += n
        if bar is not None:
            bar.update(n)
            bar.set_postfix_str(src.kind, refresh=False)


def select(sources: dict[str, Iterator[Doc]], max_bytes: int, progress: bool) -> list[Doc]:
    """Spend ``max_bytes`` across kinds: each up to its share, then refill what is left."""
    srcs = {kind: _Source(kind, docs) for kind, docs in sources.items()}
    chosen: list[Doc] = []
    used: Counter = Counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=max_bytes, unit="B", unit_scale=True, desc="corpus")
    try:
        for kind, src in srcs.items():
            _fill(src, chosen, used, int(SHARES[kind] * max_bytes), max_bytes, bar)
        for kind in REFILL_ORDER:
            if kind in srcs:
                _fill(srcs[kind], chosen, used, max_bytes, max_bytes, bar)
    finally:
        for src in srcs.values():
            src.close()
        if bar is not None:
            bar.close()
    return chosen


def write_corpus(out: Path, docs: list[Doc], summary: Summary) -> None:
    """JSONL (man pages per language, package docs, Python docs gzipped) and one plain .txt
    per copyright file."""
    by_file: dict[str, list[Doc]] = defaultdict(list)
    for d in docs:
        by_file[d.out_name].append(d)
    for name in sorted(by_file):
        group = sorted(by_file[name], key=lambda d: (d.url, d.title))
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            target.write_text(group[0].text, encoding="utf-8")  # one package, one copyright
        else:
            lines = "".join(json.dumps(_record(d), ensure_ascii=False, sort_keys=True) + "\n"
                            for d in group).encode("utf-8")
            if name.endswith(".gz"):
                # mtime=0: the same corpus gives the same bytes.
                with gzip.GzipFile(target, "wb", mtime=0) as f:
                    f.write(lines)
            else:
                target.write_bytes(lines)
        summary.files.append(name)
        for d in group:
            summary.docs[d.kind] += 1
            summary.bytes[d.kind] += d.nbytes
            summary.lang_docs[d.lang_hint or "?"] += 1
            summary.lang_bytes[d.lang_hint or "?"] += d.nbytes


def _record(d: Doc) -> dict:
    rec = {"text": d.text, "url": d.url, "lang_hint": d.lang_hint, "kind": d.kind.split(":")[0],
           "title": d.title}
    if d.truncated:
        rec["truncated"] = True
    return rec


def prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"output exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(f"output folder {out} exists and is not empty; pass --overwrite "
                             "to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def build_corpus(output: str | os.PathLike, *, max_mb: float = 25.0, seed: int = 0,
                 man_root: str | os.PathLike = "/usr/share/man",
                 doc_root: str | os.PathLike = "/usr/share/doc",
                 stdlib: str | os.PathLike | None = None, jobs: int | None = None,
                 renderer: str | None | Callable[[], str | None] = find_renderer,
                 overwrite: bool = False, progress: bool = True,
                 timeout: float = RENDER_TIMEOUT_S) -> Summary:
    """Write the demo corpus to ``output`` and return what was found and written."""
    if max_mb <= 0:
        raise UsageError(f"--max-mb must be positive, got {max_mb}")
    out = Path(output)
    prepare_output(out, overwrite)
    t0 = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    if callable(renderer):
        renderer = renderer()
    man_root, doc_root = Path(man_root), Path(doc_root)
    stdlib = Path(stdlib or sysconfig.get_paths()["stdlib"])
    summary = Summary()
    common = {"seed": seed, "summary": summary}
    man = {"renderer": renderer, "jobs": jobs, "timeout": timeout, **common}
    sources = {
        "python": python_docs(stdlib, jobs=jobs, progress=progress, **common),
        "doc:copyright": doc_docs(doc_root, "doc:copyright", **common),
        "doc:text": doc_docs(doc_root, "doc:text", **common),
        "doc:changelog": doc_docs(doc_root, "doc:changelog", **common),
        "man:translated": man_docs(man_root, "man:translated", **man),
        "man:en": man_docs(man_root, "man:en", **man),
    }
    docs = select(sources, int(max_mb * 1e6), progress)
    write_corpus(out, docs, summary)
    summary.seconds = time.perf_counter() - t0
    (out / "_demo_corpus.json").write_text(  # "_": the ingest reader skips it
        json.dumps(summary.as_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary


def print_summary(summary: Summary, out: str) -> None:
    s = summary.as_dict()
    print(f"demo corpus: {s['total_docs']} documents, {s['total_bytes'] / 1e6:.1f} MB in "
          f"{len(s['files'])} files → {out} ({s['seconds']:.0f}s)")
    print("found:")
    for kind, what in sorted(s["found"].items()):
        print(f"  {kind:<15} {what}")
    print("by kind:")
    for kind, n in sorted(s["bytes_by_kind"].items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<15} {s['docs_by_kind'][kind]:>6} docs {n / 1e6:>7.2f} MB")
    print("by language hint:")
    for lang, n in sorted(s["bytes_by_lang"].items(), key=lambda kv: -kv[1]):
        print(f"  {lang:<15} {s['docs_by_lang'][lang]:>6} docs {n / 1e6:>7.2f} MB")
    if s["render_failures"]:
        print("man pages not rendered: " + ", ".join(f"{k} {v}" for k, v in
                                                     s["render_failures"].items()))


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(
        prog="python -m tools.demo_corpus",
        description="Build a raw demo corpus from man pages, /usr/share/doc and Python's "
                    "docstrings already on this machine.")
    p.add_argument("--output", required=True, metavar="DIR", help="folder to write")
    p.add_argument("--max-mb", type=float, default=25.0, help="corpus size (default 25)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--man-root", default="/usr/share/man", metavar="DIR")
    p.add_argument("--doc-root", default="/usr/share/doc", metavar="DIR")
    p.add_argument("--stdlib", default=None, metavar="DIR",
                   help="Python stdlib folder (default: the running Python's)")
    p.add_argument("--jobs", type=int, default=None, help="parallel renders (default: cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    summary = build_corpus(args.output, max_mb=args.max_mb, seed=args.seed,
                           man_root=args.man_root, doc_root=args.doc_root, stdlib=args.stdlib,
                           jobs=args.jobs, overwrite=args.overwrite,
                           progress=not args.no_progress)
    print_summary(summary, args.output)
    if not summary.docs:
        print("error: no text found on this machine; point --man-root/--doc-root/--stdlib at "
              "some", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from core.errors import run_command

    run_command(main)
