"""The demo corpus builder on a small fake machine: man pages, /usr/share/doc and a stdlib
made up in a temporary folder, so the test depends on none of this machine's files (only on
groff/man for the man-page part, which is checked when one of them is installed)."""
from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from core.errors import UsageError
from pipeline.ingest import readers
from tools import demo_corpus

MAN_PAGE = """.TH {name} 1 "2024" "fake 1.0" "User Commands"
.SH {section}
{name} \\- {blurb}
.SH DESCRIPTION
.B {name}
{body}
"""
GPL = "This package is free software; you can redistribute it and/or modify it under the terms " \
      "of the GNU General Public License.\n" * 20


def _man(folder: Path, name: str, section: str, blurb: str, body: str, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = MAN_PAGE.format(name=name, section=section, blurb=blurb, body=body).encode()
    if gz:
        (folder / f"{name}.1.gz").write_bytes(gzip.compress(text, mtime=0))
    else:
        (folder / f"{name}.1").write_bytes(text)


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("machine")
    man, doc, stdlib = root / "man", root / "doc", root / "stdlib"
    for i in range(6):
        _man(man / "man1", f"tool{i}", "NAME", f"does thing {i}",
             f"The tool number {i} reads files and writes them again. " * 12)
    (man / "man1" / "alias.1").write_text(".so man1/tool0.1\n")   # an alias page
    (man / "man1" / "link.1.gz").symlink_to(man / "man1" / "tool1.1.gz")
    _man(man / "de" / "man1", "werkzeug", "BEZEICHNUNG", "macht etwas",
         "Das Werkzeug liest Dateien und schreibt sie wieder. " * 12)
    _man(man / "fr.UTF-8" / "man8", "outil", "NOM", "fait une chose",
         "L'outil lit des fichiers et les écrit à nouveau. " * 12, gz=False)
    _man(man / "pt_BR" / "man1", "ferramenta", "NOME", "faz algo",
         "A ferramenta lê arquivos e os escreve novamente. " * 12)
    (man / "not-a-locale").mkdir()
    for pkg in ("liba", "libb", "libc"):
        (doc / pkg).mkdir(parents=True)
        (doc / pkg / "copyright").write_text(f"Upstream: {pkg}\n\n" + GPL)
        (doc / pkg / "changelog.Debian.gz").write_bytes(
            gzip.compress(f"{pkg} (1.0-1) unstable; urgency=low\n\n  * Initial release.\n".encode()
                          * 30, mtime=0))
    (doc / "liba" / "README.md").write_text("# liba\n\nA library that does things.\n" * 10)
    (doc / "liba" / "README.md.gz").write_bytes(gzip.compress(b"# liba (packed)\n" * 10, mtime=0))
    (doc / "libb" / "NOTES.rst").write_text("Notes\n=====\n\nSome notes.\n" * 10)
    (doc / "libb" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (doc / "libc" / "binary.txt").write_bytes(b"\x00\x01\x02" * 10)
    (stdlib / "json").mkdir(parents=True)
    (stdlib / "json" / "__init__.py").write_text('"""JSON encoder and decoder."""\n')
    (stdlib / "json" / "decoder.py").write_text(
        '"""Implementation of JSONDecoder."""\n\nclass JSONDecoder:\n    """Simple JSON decoder.'
        '"""\n\n    def decode(self, s):\n        """Return the Python object for s."""\n')
    (stdlib / "broken.py").write_text("def f(:\n")
    (stdlib / "nodoc.py").write_text("x = 1\n")
    (stdlib / "test").mkdir()
    (stdlib / "test" / "test_x.py").write_text('"""Tests are left out."""\n')
    (stdlib / "site-packages" / "pkg").mkdir(parents=True)
    (stdlib / "site-packages" / "pkg" / "__init__.py").write_text('"""Third-party."""\n')
    (stdlib / "pydoc_data").mkdir()
    (stdlib / "pydoc_data" / "topics.py").write_text(
        "topics = {'assert': 'The assert statement\\n**********\\n',\n"
        "          'if': 'The if statement\\n'}\n")
    return {"man_root": man, "doc_root": doc, "stdlib": stdlib}


def _build(out: Path, machine: dict, **kw) -> demo_corpus.Summary:
    return demo_corpus.build_corpus(out, progress=False, jobs=2, **{**machine, **kw})


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "_demo_corpus.json"}


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_builds_every_kind_and_format(machine, tmp_path):
    out = tmp_path / "raw"
    summary = _build(out, machine)
    names = set(summary.files)
    assert "python_docs.jsonl.gz" in names
    assert {"copyright/liba.txt", "copyright/libb.txt", "copyright/libc.txt",
            "usr_share_doc.jsonl"} <= names
    docs = {r["title"]: r for r in _jsonl(out / "usr_share_doc.jsonl")}
    assert set(docs) == {"liba/changelog.Debian.gz", "libb/changelog.Debian.gz",
                         "libc/changelog.Debian.gz", "liba/README.md", "liba/README.md.gz",
                         "libb/NOTES.rst"}  # no image, no binary file
    assert docs["liba/README.md.gz"]["text"].startswith("# liba (packed)")
    assert "Initial release" in docs["libc/changelog.Debian.gz"]["text"]
    py = _jsonl(out / "python_docs.jsonl.gz")
    titles = {r["title"] for r in py}
    assert titles == {"json", "json.decoder", "topic:assert", "topic:if"}
    decoder = next(r for r in py if r["title"] == "json.decoder")
    assert "json.decoder.JSONDecoder.decode\n\nReturn the Python object for s." in decoder["text"]
    assert decoder["url"].startswith("file://") and decoder["lang_hint"] == "en"
    # Copyright files repeat the same licence: the exact duplicates dedup is there to find.
    texts = [(out / n).read_text() for n in names if n.endswith("copyright.txt")]
    assert all(GPL in t for t in texts)
    # The ingest reader takes every file written and skips the summary.
    files, skipped = readers.list_inputs([str(out)])
    assert skipped == [] and len(files) == len(summary.files)
    meta = json.loads((out / "_demo_corpus.json").read_text())
    assert meta["total_docs"] == sum(summary.docs.values())


@pytest.mark.skipif(demo_corpus.find_renderer() is None, reason="neither groff nor man installed")
def test_man_pages_in_every_language_rendered_to_text(machine, tmp_path):
    out = tmp_path / "raw"
    summary = _build(out, machine)
    langs = {p.name for p in (out / "man").iterdir()}
    assert langs == {"en.jsonl", "de.jsonl", "fr.jsonl", "pt.jsonl"}
    en = _jsonl(out / "man" / "en.jsonl")
    assert sorted(r["title"] for r in en) == [f"tool{i}(1)" for i in range(6)]  # no alias, link
    de = _jsonl(out / "man" / "de.jsonl")[0]
    assert de["lang_hint"] == "de" and "Das Werkzeug liest Dateien" in de["text"]
    assert ".TH" not in de["text"] and "\x08" not in de["text"] and "\x1b" not in de["text"]
    fr = _jsonl(out / "man" / "fr.jsonl")[0]
    assert "à nouveau" in fr["text"] and fr["url"].endswith("/man/fr.UTF-8/man8/outil.1")
    assert summary.render_failures["alias"] == 1
    assert "3 languages (de, fr, pt)" in summary.found["man:translated"]


def test_same_machine_same_corpus_and_seed_changes_the_sample(machine, tmp_path):
    for name in ("a", "b"):
        _build(tmp_path / name, machine, max_mb=0.004)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    summaries = [_build(tmp_path / f"s{seed}", machine, max_mb=0.004, seed=seed)
                 for seed in range(4)]
    assert len({tuple(_digest(tmp_path / f"s{seed}").items()) for seed in range(4)}) > 1
    assert all(sum(s.bytes.values()) <= 4000 for s in summaries)


def test_budget_is_shared_and_refilled(machine, tmp_path):
    s = _build(tmp_path / "raw", machine, max_mb=0.02)
    total = sum(s.bytes.values())
    assert 0.5 * 20_000 < total <= 20_000
    assert len(s.docs) >= 3  # no kind takes the whole budget


def test_degrades_gracefully_when_sources_are_missing(machine, tmp_path):
    s = _build(tmp_path / "raw", machine, man_root=tmp_path / "nothing", renderer=None)
    assert s.found["man:en"].startswith("none under")
    assert "python" in s.docs and "doc:copyright" in s.docs
    s2 = _build(tmp_path / "raw2", machine, renderer=None)
    assert "skipped: neither groff nor man" in s2.found["man:en"]
    assert not any(k.startswith("man") for k in s2.docs)


def test_refuses_a_non_empty_output(machine, tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        _build(out, machine)
    _build(out, machine, overwrite=True)
    assert not (out / "keep.txt").exists()
    proc = subprocess.run([sys.executable, "-m", "tools.demo_corpus", "--output", str(out),
                           "--no-progress"], capture_output=True, text=True,
                          cwd=Path(demo_corpus.__file__).parents[1])
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


def test_make_demo_keeps_the_languages_of_the_demo_config():
    """`make demo` passes --languages, which overrides the config: the two must agree (a comma
    list inside make's $(or ...) once cut it to "en" and the demo lost 40% of its corpus)."""
    import shutil

    import yaml

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    repo = REPO
    dry = subprocess.run(["make", "-n", "--no-print-directory", "demo"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    passed = dry.split("--languages ", 1)[1].split()[0].split(",")
    config = yaml.safe_load((repo / "configs" / "demo.yaml").read_text())
    assert passed == config["langfilter"]["languages"]
