"""The encode step of the tokenizer stage, on Spark: a corpus stage folder into token shards.

    spark-submit jobs/encode.py --input out/corpus --tokenizer out/tokenizer --output out/shards

The shards are the same bytes for any number of partitions or executors:

1. documents are ordered by a seeded hash of their id (a fixed shuffle: a trainer reading the
   shards in sequence does not see one source at a time), by a range shuffle, so partition i
   holds an interval of that order;
2. each executor encodes its partition in that order and writes one token file per split
   (``OUT/_parts/train-000003.bin``), renamed into place when complete; the driver collects
   only their counts;
3. the driver concatenates the part files in partition order, streaming, into shards of
   ``--shard-tokens``, then writes ``manifest.json`` and ``_SUCCESS``.

``OUT`` must be a path the driver and the executors share (any local path in the embedded
default; a shared filesystem on a cluster).
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import time

import pyarrow as pa

from core.errors import ArgumentParser, UsageError
from core.files import atomic_write_text
from pipeline.stage import stagedir

PARTS = "_parts"
# What each task reports to the driver: one row per split, never tokens or text.
PART_SCHEMA = pa.schema(
    [("part", pa.int32()), ("split", pa.string())] + [(k, pa.int64()) for k in ("docs", "tokens", "bytes")]
)


def parse_args(argv):
    p = ArgumentParser(description="Encode a corpus stage folder into token shards.")
    p.add_argument("--input", required=True, metavar="DIR", help="a complete corpus stage folder")
    p.add_argument("--tokenizer", required=True, metavar="DIR", help="a folder written by tokenizer.train")
    p.add_argument("--output", required=True, metavar="DIR", help="the shard folder to write")
    p.add_argument(
        "--val-fraction", type=float, default=0.005, help="share of documents in val (default 0.005)"
    )
    p.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard (default 100M)")
    p.add_argument("--seed", type=int, default=0, help="seeds the val split and the document order")
    p.add_argument(
        "--partitions", type=int, default=0, help="Spark partitions (default: from the input size)"
    )
    p.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an output folder that is already complete"
    )
    args = p.parse_args(argv)
    if not 0 <= args.val_fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.shard_tokens < 1:
        raise UsageError(f"--shard-tokens must be positive, got {args.shard_tokens}")
    return args


def encode_task(batches, *, model, sha256, parts_dir, seed, val_fraction, dtype):
    """Executor side: one partition's documents, in order, to per-split part files."""
    from pyspark import TaskContext

    from tokenizer.encode import cached_processor, encode_partition

    ctx = TaskContext.get()
    sp = cached_processor(model.value, sha256)
    stats = encode_partition(
        batches,
        sp,
        parts_dir,
        ctx.partitionId(),
        seed=seed,
        val_fraction=val_fraction,
        dtype=dtype,
        num_threads=max(1, ctx.cpus()),
    )
    rows = [{"part": ctx.partitionId(), "split": split, **counts} for split, counts in stats.items()]
    yield pa.RecordBatch.from_pylist(rows, schema=PART_SCHEMA)


def default_partitions(spark, input_dir):
    """About 64 MB of Parquet per task (~200 MB of text), and at least two tasks per core:
    partitions hold equal numbers of documents, not bytes, and a few books can unbalance two."""
    data = stagedir.local_path(stagedir.data_dir(input_dir))
    size = sum(f.stat().st_size for f in data.glob("*.parquet"))
    return max(2 * spark.sparkContext.defaultParallelism, -(-size // (64 << 20)))


def encode(spark, args):
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from core.shards import MANIFEST, concatenate, format_of, token_dtype
    from pipeline.spark.runner import read_stage, versions
    from tokenizer.encode import SPLITS, part_file
    from tokenizer.train import read_tokenizer

    started = time.time()
    if stagedir.is_remote(args.output):
        raise UsageError(f"--output must be a local or shared-filesystem path, got {args.output}")
    model_path, tok = read_tokenizer(args.tokenizer)
    stagedir.require_complete(args.input)
    stagedir.prepare_output(args.output, args.overwrite, inputs=[args.input, args.tokenizer])
    out = stagedir.local_path(args.output)
    parts_dir = out / PARTS
    parts_dir.mkdir()

    dtype = token_dtype(tok["vocab_size"])
    model = spark.sparkContext.broadcast(model_path.read_bytes())
    body = functools.partial(
        encode_task,
        model=model,
        sha256=tok["sha256"],
        parts_dir=str(parts_dir.resolve()),
        seed=args.seed,
        val_fraction=args.val_fraction,
        dtype=dtype,
    )
    docs = read_stage(spark, args.input).select("id", "text")
    order = F.xxhash64(F.lit(f"order:{args.seed}"), F.col("id"))
    n = args.partitions or default_partitions(spark, args.input)
    ordered = (
        docs.withColumn("_order", order)
        .repartitionByRange(n, "_order", "id")
        .sortWithinPartitions("_order", "id")
    )
    conf = spark.conf
    batch_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = conf.get(batch_key, None)
    # Arrow batches are counted in rows; a row may be a whole book, so keep them few.
    conf.set(batch_key, "256")
    try:
        rows = ordered.mapInArrow(body, from_arrow_schema(PART_SCHEMA)).collect()
    finally:
        if previous is None:
            conf.unset(batch_key)
        else:
            conf.set(batch_key, previous)
        model.destroy()
    docs_in = docs.count()

    splits = {}
    for split in SPLITS:
        mine = sorted((r for r in rows if r["split"] == split), key=lambda r: r["part"])
        files = [part_file(parts_dir, split, r["part"]) for r in mine if r["tokens"]]
        paths, written = concatenate(files, out, split, args.shard_tokens, dtype)
        counts = {k: sum(r[k] for r in mine) for k in ("docs", "tokens", "bytes")}
        if counts["tokens"] != written:
            raise RuntimeError(
                f"{split}: executors reported {counts['tokens']} tokens, shards hold {written}"
            )
        splits[split] = {
            "shards": [p.name for p in paths],
            **counts,
            # BOS tokens carry no text: bits per byte divides by bytes, not by these tokens
            "bos_tokens": counts["docs"],
            "bytes_per_token": round(counts["bytes"] / counts["tokens"], 4) if counts["tokens"] else None,
        }
    if sum(s["docs"] for s in splits.values()) != docs_in:
        raise RuntimeError(f"documents lost: {docs_in} in, {sum(s['docs'] for s in splits.values())} encoded")
    shutil.rmtree(parts_dir)
    if splits["val"]["docs"] == 0 and args.val_fraction > 0:
        print(f"warning: no document fell in val at --val-fraction {args.val_fraction}", file=sys.stderr)

    magic, version = format_of(dtype)
    manifest = {
        "format": "llm.c",
        "header_int32": 256,
        "magic": magic,
        "version": version,
        "dtype": dtype.name,
        "vocab_size": tok["vocab_size"],
        "bos_id": tok["special_ids"]["bos"],
        "tokenizer": {
            "file": model_path.name,
            "path": str(model_path.resolve()),
            "dir": str(model_path.parent.resolve()),
            "sha256": tok["sha256"],
            "vocab_size": tok["vocab_size"],
            "bos_id": tok["special_ids"]["bos"],
            "special_ids": tok["special_ids"],
        },
        "corpus": str(stagedir.local_path(args.input).resolve()),
        "docs_in": docs_in,
        "splits": splits,
        "settings": {
            "val_fraction": args.val_fraction,
            "shard_tokens": args.shard_tokens,
            "seed": args.seed,
            "order": "xxhash64('order:<seed>', id), then id",
            "split": "val when blake2b(seed, id, person='split') / 2**64 < val_fraction",
        },
        "seconds": round(time.time() - started, 3),
        "partitions": n,
        "versions": versions(),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    stagedir.write_success(out)
    return manifest


def main(argv=None):
    args = parse_args(argv)
    # Checked before Spark starts, so a wrong path fails in a second, not after the JVM.
    from tokenizer.train import read_tokenizer

    read_tokenizer(args.tokenizer)
    stagedir.require_complete(args.input)
    stagedir.check_output(args.output, args.overwrite, inputs=[args.input, args.tokenizer])
    from pipeline.spark.session import get_spark

    manifest = encode(get_spark(args.master, "encode"), args)
    for split, s in manifest["splits"].items():
        print(
            f"encode {split}: {s['docs']} documents, {s['tokens']} tokens, {s['bytes']} bytes "
            f"({s['bytes_per_token']} bytes/token) in {len(s['shards'])} shard(s)"
        )
    print(f"encode: {manifest['seconds']:.1f}s -> {args.output}")
    return 0
