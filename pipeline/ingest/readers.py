"""Ingest: raw files in, one record per document out, with a reason for every bad record.

Plain Python (no Spark): the driver only lists files (``list_inputs``); executors open them
(``read_file`` / ``read_file_batches``), so the data never passes through the driver. A reader
never raises on bad bytes: a broken record or a broken file becomes a rejected record whose
``reason`` starts with ``ingest:``, and the records before the break are kept.
"""
from __future__ import annotations

import glob
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa

from core.errors import UsageError
from pipeline.stage.schema import INGEST_SCHEMA
from pipeline.stage.stagedir import glob_root

# A single record above this is quarantined, not loaded: a 100 MB line must not take an
# executor's memory with it. 16 MiB is ~8x the longest Gutenberg book here.
DEFAULT_MAX_RECORD_BYTES = 16 << 20
# How much of a quarantined record is kept in `rejected/` so a person can see what it was.
PREVIEW_CHARS = 2000
# Arrow batches handed back to Spark: bounded by rows and by text size.
BATCH_ROWS = 2000
BATCH_BYTES = 32 << 20

_FORMATS = [
    # (suffix, format, compression), longest suffixes first.
    (".warc.wet.gz", "warc", None),
    (".warc.wat.gz", "warc", None),
    (".jsonl.zst", "jsonl", "zst"),
    (".json.zst", "jsonl", "zst"),
    (".jsonl.gz", "jsonl", "gz"),
    (".json.gz", "jsonl", "gz"),
    (".ndjson.gz", "jsonl", "gz"),
    (".warc.gz", "warc", None),
    (".wet.gz", "warc", None),
    (".arc.gz", "warc", None),
    (".txt.gz", "text", "gz"),
    (".txt.zst", "text", "zst"),
    (".parquet", "parquet", None),
    (".ndjson", "jsonl", None),
    (".jsonl", "jsonl", None),
    (".json", "jsonl", None),
    (".warc", "warc", None),
    (".wet", "warc", None),
    (".arc", "warc", None),
    (".txt", "text", None),
    (".text", "text", None),
    (".md", "text", None),
    (".html", "html", None),
    (".htm", "html", None),
]


def detect_format(path: str) -> tuple[str, str | None] | None:
    """(format, compression) from the file name, or None when we do not read it."""
    name = os.path.basename(path).lower()
    for suffix, fmt, comp in _FORMATS:
        if name.endswith(suffix):
            return fmt, comp
    return None


@dataclass(frozen=True)
class InputFile:
    path: str
    key: str  # stable name used in ids: the path relative to the argument it came from
    format: str
    compression: str | None


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_")


def list_inputs(paths: list[str]) -> tuple[list[InputFile], list[str]]:
    """Expand files, folders and globs into the files to read, sorted for determinism.

    Returns the files and the paths skipped inside folders because their format is unknown
    (reported, never silently dropped). A named file of unknown format, or a path matching
    nothing, is a usage error.
    """
    files: dict[str, InputFile] = {}
    skipped: list[str] = []
    if not paths:
        raise UsageError("no --input given")
    for arg in paths:
        if "://" in arg and not arg.startswith("file://"):
            raise UsageError(
                f"remote input {arg!r}: copy it locally or mount it; only local paths are "
                "listed by this version"
            )
        arg_local = arg[len("file://"):] if arg.startswith("file://") else arg
        matches = sorted(glob.glob(arg_local, recursive=True)) if glob.has_magic(arg_local) else (
            [arg_local] if os.path.exists(arg_local) else []
        )
        if not matches:
            raise UsageError(f"input not found: {arg}")
        for match in matches:
            if os.path.isdir(match):
                for root, dirs, names in os.walk(match):
                    dirs[:] = sorted(d for d in dirs if not _hidden(d))
                    for name in sorted(names):
                        if _hidden(name):
                            continue
                        full = os.path.join(root, name)
                        found = detect_format(full)
                        if found is None:
                            skipped.append(full)
                            continue
                        key = os.path.relpath(full, match)
                        files.setdefault(full, InputFile(full, key, *found))
            else:
                found = detect_format(match)
                if found is None:
                    raise UsageError(f"unknown input format (by file name): {match}")
                base = os.path.dirname(arg_local) if glob.has_magic(arg_local) else None
                key = os.path.relpath(match, glob_root(arg_local)) if base is not None else (
                    os.path.basename(match)
                )
                files.setdefault(match, InputFile(match, key, *found))
    ordered = sorted(files.values(), key=lambda f: (f.key, f.path))
    keys = [f.key for f in ordered]
    if len(set(keys)) != len(keys):
        # Two inputs named alike (same file name in two folders): fall back to full paths so
        # ids stay unique.
        ordered = [InputFile(f.path, os.path.abspath(f.path), f.format, f.compression)
                   for f in ordered]
    return ordered, skipped


# --------------------------------------------------------------------------- records


def _record(id_: str, text: str | None, source: str, url: str | None = None,
            metadata: dict[str, Any] | None = None, reason: str | None = None) -> dict:
    meta = _json_text(metadata) if metadata else None
    if text is not None and not _encodable(text):
        # Lone surrogates (from JSON "\ud800" escapes) cannot be written as UTF-8.
        text = text.encode("utf-8", "replace").decode("utf-8")
        reason = reason or "ingest:invalid_unicode"
    if reason is None and (text is None or not text.strip()):
        reason = "ingest:empty_text"
    return {"id": id_, "text": text if text is not None else "", "source": source,
            "url": url, "metadata": meta, "reason": reason}


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _json_text(value: dict[str, Any]) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if _encodable(text) else json.dumps(value, sort_keys=True, default=str)


def _file_reject(f: InputFile, reason: str, error: str, **extra: Any) -> dict:
    """One record standing for a whole file (or its unreadable tail)."""
    meta = {"error": error[:500], "format": f.format, **extra}
    return _record(f"{f.key}:{reason.split(':', 1)[1]}", "", f.key, None, meta, reason)


def _preview(data: bytes) -> str:
    return data[: PREVIEW_CHARS * 4].decode("utf-8", "replace")[:PREVIEW_CHARS]


def _open(f: InputFile) -> BinaryIO:
    raw = open(f.path, "rb")
    if f.compression == "gz":
        return io.BufferedReader(gzip.GzipFile(fileobj=raw))  # type: ignore[arg-type]
    if f.compression == "zst":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
    return raw


# Errors a broken compressed stream raises; anything else is a bug and should surface.
_STREAM_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error, ValueError)
try:  # zstandard is optional until a .zst file is read
    import zstandard as _zstd

    _STREAM_ERRORS = _STREAM_ERRORS + (_zstd.ZstdError,)
except ImportError:  # pragma: no cover
    pass


def _stream_reason(exc: BaseException) -> str:
    return "ingest:truncated" if isinstance(exc, EOFError) else "ingest:corrupt"


def read_jsonl(f: InputFile, max_bytes: int) -> Iterator[dict]:
    lineno = -1
    try:
        with _open(f) as stream:
            while True:
                line = stream.readline(max_bytes + 1)
                if not line:
                    break
                lineno += 1
                id_ = f"{f.key}:{lineno}"
                if len(line) > max_bytes and not line.endswith(b"\n"):
                    size = len(line)
                    while True:  # skip the rest of the line without holding it
                        more = stream.readline(1 << 20)
                        size += len(more)
                        if not more or more.endswith(b"\n"):
                            break
                    yield _record(id_, _preview(line), f.key, None,
                                  {"bytes": size, "format": "jsonl"}, "ingest:too_large")
                    continue
                if not line.strip():
                    lineno -= 1  # blank lines are separators, not records
                    continue
                yield _parse_json_line(line, id_, f.key)
    except _STREAM_ERRORS as e:
        yield _file_reject(f, _stream_reason(e), f"{type(e).__name__}: {e}",
                           records_before=lineno + 1)


def _parse_json_line(line: bytes, id_: str, source: str) -> dict:
    try:
        text_line = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return _record(id_, _preview(line), source, None, {"error": str(e)}, "ingest:invalid_utf8")
    try:
        obj = json.loads(text_line)
    except (ValueError, RecursionError) as e:
        return _record(id_, text_line[:PREVIEW_CHARS], source, None,
                       {"error": f"{type(e).__name__}: {str(e)[:200]}"}, "ingest:bad_json")
    if not isinstance(obj, dict):
        return _record(id_, text_line[:PREVIEW_CHARS], source, None, None, "ingest:not_object")
    text = obj.pop("text", None)
    if not isinstance(text, str):
        return _record(id_, text_line[:PREVIEW_CHARS], source, None, None, "ingest:no_text")
    url = obj.pop("url", None)
    if not isinstance(url, str):
        if url is not None:
            obj["url"] = url
        url = None
    return _record(id_, text, source, url, obj or None)


def read_text(f: InputFile, max_bytes: int) -> Iterator[dict]:
    try:
        with _open(f) as stream:
            data = stream.read(max_bytes + 1)
            if len(data) > max_bytes:
                yield _record(f.key, _preview(data), f.key, None,
                              {"format": "text"}, "ingest:too_large")
                return
    except _STREAM_ERRORS as e:
        yield _file_reject(f, _stream_reason(e), f"{type(e).__name__}: {e}")
        return
    if not data:
        yield _record(f.key, "", f.key, None, {"format": "text"}, "ingest:empty_file")
        return
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        yield _record(f.key, _preview(data), f.key, None, {"error": str(e)}, "ingest:invalid_utf8")
        return
    yield _record(f.key, text, f.key)


def read_html(f: InputFile, max_bytes: int) -> Iterator[dict]:
    """A saved web page, one document per file, through the same extractor as WARC."""
    with open(f.path, "rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        yield _record(f.key, _preview(data), f.key, None, {"format": "html"}, "ingest:too_large")
        return
    yield _record(f.key, _html_to_text(data), f.key, None, {"format": "html"})


def read_parquet(f: InputFile, max_bytes: int) -> Iterator[dict]:
    import pyarrow.parquet as pq

    row = 0
    try:
        pf = pq.ParquetFile(f.path)
        if "text" not in pf.schema_arrow.names:
            yield _file_reject(f, "ingest:no_text_column", "parquet file has no 'text' column")
            return
        for batch in pf.iter_batches(batch_size=1024):
            for rec in batch.to_pylist():
                id_ = f"{f.key}:{row}"
                row += 1
                text = rec.pop("text")
                url = rec.pop("url", None)
                if text is not None and not isinstance(text, str):
                    yield _record(id_, "", f.key, None, None, "ingest:no_text")
                    continue
                if text is not None and len(text) > max_bytes:
                    yield _record(id_, text[:PREVIEW_CHARS], f.key, None, None, "ingest:too_large")
                    continue
                yield _record(id_, text, f.key, url if isinstance(url, str) else None, rec or None)
    except (OSError, pa.ArrowException) as e:
        yield _file_reject(f, "ingest:corrupt", f"{type(e).__name__}: {e}", records_before=row)


def read_warc(f: InputFile, max_bytes: int) -> Iterator[dict]:
    """WARC/WET/ARC: WET conversions as text, HTML responses through a main-text extractor."""
    from warcio.archiveiterator import ArchiveIterator

    n = 0
    try:
        with open(f.path, "rb") as raw:
            it = ArchiveIterator(raw, arc2warc=True)
            for rec in it:
                doc = _warc_document(f, rec, it, max_bytes)
                if doc is not None:
                    n += 1
                    yield doc
    except Exception as e:  # noqa: BLE001 - warcio raises many types on broken archives
        yield _file_reject(f, "ingest:truncated" if "EOF" in repr(e) or isinstance(e, EOFError)
                           else "ingest:corrupt", f"{type(e).__name__}: {e}", records_before=n)


def _warc_document(f: InputFile, rec: Any, it: Any, max_bytes: int) -> dict | None:
    rtype = rec.rec_type
    if rtype not in ("response", "resource", "conversion"):
        return None
    headers = rec.rec_headers
    url = headers.get_header("WARC-Target-URI")
    record_id = headers.get_header("WARC-Record-ID")
    content_type = ""
    if rtype == "response" and rec.http_headers is not None:
        if rec.http_headers.get_statuscode() not in ("200", None):
            return None
        content_type = (rec.http_headers.get_header("Content-Type") or "").lower()
    elif rtype in ("resource", "conversion"):
        content_type = (headers.get_header("Content-Type") or "").lower()
    is_html = "html" in content_type
    is_text = rtype == "conversion" or content_type.startswith("text/plain")
    if not (is_html or is_text):
        return None
    meta = {"warc_type": rtype, "content_type": content_type or None}
    date = headers.get_header("WARC-Date")
    if date:
        meta["warc_date"] = date
    stream = rec.content_stream()
    payload = stream.read(max_bytes + 1)
    too_large = len(payload) > max_bytes
    if too_large:
        while stream.read(1 << 20):
            pass
    # After the payload: warcio's offset call reads the record to its end.
    offset = it.get_record_offset()
    # The byte offset, not the WARC-Record-ID: record ids repeat in real crawls (and warcio
    # invents random ones for ARC records); the offset is unique and stable in a file.
    id_ = f"{f.key}@{offset}"
    if record_id:
        meta["warc_record_id"] = record_id.strip("<>")
    if too_large:
        return _record(id_, _preview(payload), f.key, url, meta, "ingest:too_large")
    if is_html:
        text = _html_to_text(payload)
    else:
        text = payload.decode("utf-8", "replace")
    return _record(id_, text, f.key, url, meta)


def _html_to_text(payload: bytes) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    html = bytes_to_str(payload, detect_encoding(payload))
    return extract_plain_text(html, main_content=True, alt_texts=False, links=False,
                              list_bullets=True, preserve_formatting=True)


_READERS = {"jsonl": read_jsonl, "text": read_text, "html": read_html, "parquet": read_parquet, "warc": read_warc}


def read_file(f: InputFile, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[dict]:
    """Every record of one file, each as a dict of INGEST_SCHEMA's columns."""
    try:
        if os.path.getsize(f.path) == 0:
            yield _file_reject(f, "ingest:empty_file", "file is empty")
            return
    except OSError as e:
        yield _file_reject(f, "ingest:unreadable", f"{type(e).__name__}: {e}")
        return
    yield from _READERS[f.format](f, max_bytes)


def read_file_batches(batches: Iterator[pa.RecordBatch], max_bytes: int = DEFAULT_MAX_RECORD_BYTES
                      ) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: batches of (path, key, format, compression) in, records out."""
    rows: list[dict] = []
    size = 0
    for batch in batches:
        for spec in batch.to_pylist():
            for rec in read_file(InputFile(**spec), max_bytes):
                rows.append(rec)
                size += len(rec["text"])
                if len(rows) >= BATCH_ROWS or size >= BATCH_BYTES:
                    yield pa.RecordBatch.from_pylist(rows, schema=INGEST_SCHEMA)
                    rows, size = [], 0
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=INGEST_SCHEMA)
