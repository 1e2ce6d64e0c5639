"""The dedup stage as a Spark plan, in named steps, each timed into stats.json:
``fingerprint`` → ``exact_groups`` → ``near_clusters`` (LSH candidates, connected components)
→ ``boilerplate`` → ``remove``.

The rules (hashes, signatures, band keys, line cutting) are plain functions in
``pipeline/dedup/minhash.py`` run through ``mapInArrow``; this module only groups, joins and iterates,
with DataFrame operations, so nothing but counts ever reaches the driver: its memory does not
grow with the corpus. Every choice (which copy stays, a component's label) is made by
comparing ids, never by arrival order, so the output is the same for any partitioning.

The order of the steps matters:

1. **Exact**: documents with the same 128-bit hash of their words; one stays per group.
2. **Near**: among those left, documents that share a band key are candidates (optionally
   checked against their true Jaccard); connected components of the candidate graph are the
   clusters, and one document stays per cluster.
3. **Boilerplate**: lines and paragraphs are counted over the documents still kept. Counting after
   deduplication means that copies of one article do not make its own lines look like
   boilerplate; with CCNet's order (lines first), three copies of a page would cut the page
   from all three at K=3.
"""
from __future__ import annotations

import functools
import os
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from core.errors import UsageError
from pipeline.dedup import minhash as dedup
from pipeline.dedup.minhash import (
    DUP_CLUSTER,
    DUP_CLUSTER_SIZE,
    DUPLICATE_OF,
    EXACT,
    NEAR,
    DedupConfig,
)
from pipeline.spark import runner
from pipeline.stage.schema import ID, REASON, TEXT

_ADDED = [f.name for f in dedup.ADDED_FIELDS]


def _checkpoint(df: DataFrame) -> DataFrame:
    """Materialise and cut the lineage, so an iteration's plan stays short.

    With a checkpoint folder set (``run`` puts one inside the output folder) the data is
    written to files, which outlive a lost executor; a local checkpoint keeps blocks on the
    executors, and a killed one takes them with it.
    """
    if df.sparkSession.sparkContext.getCheckpointDir():
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)


def _keep_order(cfg: DedupConfig, length: Column, doc_id: Column) -> Column:
    """A sortable key whose minimum is the document to keep."""
    if cfg.keep == "longest":
        return F.struct((-length).alias("neg_length"), doc_id.alias("id"))
    return F.struct(doc_id.alias("id"))


# ---------------------------------------------------------------------------------------------
# Connected components: large-star / small-star (Kiveris et al., "Connected Components in
# MapReduce and Beyond", SoCC 2014). Edges are kept as (a, b) with a > b; the label of a
# component is its smallest node.


def _large_star(edges: DataFrame) -> DataFrame:
    """Every node links its larger neighbours to the smallest node of its neighbourhood."""
    sym = edges.unionByName(edges.select(F.col("b").alias("a"), F.col("a").alias("b")))
    low = sym.groupBy("a").agg(F.min("b").alias("m"))
    return (sym.join(low, "a").where(F.col("b") > F.col("a"))
            .select(F.col("b").alias("a"), F.least("a", "m").alias("b")).distinct())


def _small_star(edges: DataFrame) -> DataFrame:
    """Every node links itself and its smaller neighbours to the smallest of them."""
    low = edges.groupBy("a").agg(F.min("b").alias("m"))
    moved = (edges.join(low, "a").where(F.col("b") != F.col("m"))
             .select(F.col("b").alias("a"), F.col("m").alias("b")))
    return moved.unionByName(low.select("a", F.col("m").alias("b"))).distinct()


def _fingerprint(edges: DataFrame) -> tuple[int, int]:
    row = edges.agg(F.count(F.lit(1)).alias("n"),
                    F.coalesce(F.sum(F.xxhash64("a", "b").cast("decimal(38,0)")),
                               F.lit(0)).alias("h")).first()
    return int(row["n"]), int(row["h"])


def connected_components(edges: DataFrame, max_iterations: int = 40
                         ) -> tuple[DataFrame, int, int]:
    """``(node, root)`` for every node of an undirected graph given as columns ``u``, ``v``;
    ``root`` is the smallest node of the node's component (itself for the smallest).

    Alternates large-star and small-star until a round changes nothing; each round is
    checkpointed, so the plan does not grow with the rounds. Also returns the number of
    distinct edges and of rounds run.
    """
    e = _checkpoint(edges.where(F.col("u") != F.col("v"))
                    .select(F.greatest("u", "v").alias("a"), F.least("u", "v").alias("b"))
                    .distinct())
    before = _fingerprint(e)
    n_edges, rounds = before[0], 0
    while before[0]:
        rounds += 1
        if rounds > max_iterations:
            raise RuntimeError(
                f"connected components did not converge in {max_iterations} rounds")
        e_next = _checkpoint(_small_star(_large_star(e)))
        after = _fingerprint(e_next)
        e.unpersist()
        e = e_next
        if after == before:
            break
        before = after
    # Converged: every edge joins a node to its component's root.
    roots = e.select(F.col("b").alias("node")).distinct().withColumn("root", F.col("node"))
    comp = e.select(F.col("a").alias("node"), F.col("b").alias("root")).unionByName(roots)
    return comp, n_edges, rounds


# ---------------------------------------------------------------------------------------------
# The plan


def features(docs: DataFrame, cfg: DedupConfig, bands: int, rows: int) -> DataFrame:
    body = functools.partial(dedup.features_batch, cfg=cfg, bands=bands, rows=rows)
    return docs.select(ID, TEXT).mapInArrow(body, from_arrow_schema(dedup.FEATURE_SCHEMA))


def candidate_edges(feats: DataFrame, cfg: DedupConfig) -> DataFrame:
    """``(u, v)`` pairs of documents that share a band key.

    Without ``verify`` a bucket of k documents gives a star, each to the bucket's smallest id:
    k - 1 edges instead of k², and the same components. With ``verify`` a failed star edge
    would cut its document off from the rest of its bucket, so buckets up to
    ``verify_max_bucket`` give all their pairs, and only larger ones fall back to the star.
    """
    keys = feats.select(ID, F.posexplode("bands").alias("band", "key"))
    bucket = Window.partitionBy("band", "key")
    keys = (keys.withColumn("root", F.min(ID).over(bucket))
            .withColumn("size", F.count(F.lit(1)).over(bucket)).where(F.col("size") > 1))
    star = keys.where(F.col(ID) != F.col("root"))
    if not cfg.verify:
        return star.select(F.col(ID).alias("u"), F.col("root").alias("v")).distinct()
    small = keys.where(F.col("size") <= cfg.verify_max_bucket).select(ID, "band", "key")
    pairs = (small.alias("l").join(small.alias("r"), ["band", "key"])
             .where(F.col("l.id") < F.col("r.id"))
             .select(F.col("r.id").alias("u"), F.col("l.id").alias("v")))
    big = (star.where(F.col("size") > cfg.verify_max_bucket)
           .select(F.col(ID).alias("u"), F.col("root").alias("v")))
    sets = feats.select(ID, "shingles")
    su = sets.select(F.col(ID).alias("u"), F.col("shingles").alias("su"))
    sv = sets.select(F.col(ID).alias("v"), F.col("shingles").alias("sv"))
    jac = (F.size(F.array_intersect("su", "sv"))
           / F.greatest(F.size(F.array_union("su", "sv")), F.lit(1)))
    return (pairs.unionByName(big).distinct().join(su, "u").join(sv, "v")
            .where(jac >= cfg.threshold).select("u", "v"))


def closest_neighbour(edges: DataFrame, feats: DataFrame) -> DataFrame:
    """``(node, neighbour)``: each node's candidate partner with the most MinHash values in
    common (the highest estimated Jaccard; ties to the smallest id)."""
    both = edges.unionByName(edges.select(F.col("v").alias("u"), F.col("u").alias("v")))
    sig = feats.select(ID, "signature")
    agree = F.expr("aggregate(zip_with(su, sv, (x, y) -> int(x = y)), 0, (n, x) -> n + x)")
    scored = (both.join(sig.select(F.col(ID).alias("u"), F.col("signature").alias("su")), "u")
              .join(sig.select(F.col(ID).alias("v"), F.col("signature").alias("sv")), "v")
              .select("u", "v", agree.alias("agree")))
    best = F.min(F.struct((-F.col("agree")).alias("disagree"), F.col("v").alias("v")))
    return (scored.groupBy("u").agg(best["v"].alias("neighbour"))
            .select(F.col("u").alias("node"), "neighbour"))


def fingerprint(docs: DataFrame, cfg: DedupConfig, bands: int, rows: int) -> DataFrame:
    """Step 1: every document's exact hash, MinHash signature, band keys and line hashes."""
    feats = _checkpoint(features(docs, cfg, bands, rows))
    if feats.groupBy(ID).count().where(F.col("count") > 1).limit(1).count():
        raise UsageError("input ids are not unique: deduplication needs one id per document")
    return feats


def exact_groups(feats: DataFrame, cfg: DedupConfig) -> DataFrame:
    """Step 2: documents with the same words; the first in keep order stands for its group."""
    group = Window.partitionBy("exact")
    feats = feats.withColumn("order", _keep_order(cfg, F.col("length"), F.col(ID)))
    return _checkpoint(
        feats.withColumn("rep", F.min("order").over(group)[ID])
        .withColumn("n_exact", F.count(F.lit(1)).over(group))
        .select(ID, "rep", "n_exact", "order", "bands", "signature", "shingles", "lines"))


def near_clusters(exact: DataFrame, cfg: DedupConfig) -> tuple[DataFrame, int, int]:
    """Step 3: LSH candidates among the groups' representatives, connected components, and
    each document's verdict (exact, near or kept), cluster and the copy it duplicates."""
    reps = exact.where(F.col(ID) == F.col("rep"))
    edges = _checkpoint(candidate_edges(reps, cfg))
    comp, n_edges, rounds = connected_components(edges, cfg.max_cc_iterations)
    members = comp.join(reps.select(F.col(ID).alias("node"), "order", "n_exact"), "node")
    clusters = members.groupBy("root").agg(F.min("order")[ID].alias("final"),
                                           F.sum("n_exact").alias("size"))
    near = (members.join(clusters, "root").join(closest_neighbour(edges, reps), "node", "left")
            .select(F.col("node").alias("rep"), "final", "size", "neighbour"))
    rep_final = (reps.select(F.col(ID).alias("rep"), "n_exact").join(near, "rep", "left")
                 .select("rep", F.coalesce("final", "rep").alias("final"),
                         F.coalesce("size", "n_exact").alias("size"), "neighbour"))
    verdict = _checkpoint(
        exact.select(ID, "rep", "lines").join(rep_final, "rep")
        .select(ID, "lines", F.col("final").alias(DUP_CLUSTER),
                F.col("size").alias(DUP_CLUSTER_SIZE),
                F.when(F.col(ID) != F.col("rep"), F.lit(EXACT))
                .when(F.col(ID) != F.col("final"), F.lit(NEAR)).alias(REASON),
                F.when(F.col(ID) != F.col("rep"), F.col("rep"))
                .when(F.col(ID) != F.col("final"), F.col("neighbour")).alias(DUPLICATE_OF)))
    return verdict, n_edges, rounds


def boilerplate(verdict: DataFrame, cfg: DedupConfig) -> tuple[DataFrame, int]:
    """Step 4: lines and paragraphs in at least ``boilerplate_min_docs`` documents still kept,
    and per document the hashes of those it holds."""
    line_docs = (verdict.where(F.col(REASON).isNull())
                 .select(ID, F.explode("lines").alias("line")))
    common = (line_docs.groupBy("line").agg(F.count(F.lit(1)).alias("docs"))
              .where(F.col("docs") >= cfg.boilerplate_min_docs).select("line"))
    common = _checkpoint(common)
    n_boiler = common.count()
    cut = (line_docs.join(common, "line").groupBy(ID)
           .agg(F.collect_list("line").alias("boilerplate")))
    return cut, n_boiler


def remove(docs: DataFrame, verdict: DataFrame, cut: DataFrame, cfg: DedupConfig) -> DataFrame:
    """Step 5: every document with its verdict and cluster, boilerplate cut from the kept ones
    (lazy: it runs as the runner writes the stage folder)."""
    labels = (verdict.join(cut, ID, "left")
              .select(ID,
                      F.when(F.col(DUP_CLUSTER_SIZE) > 1, F.col(DUP_CLUSTER))
                      .alias(DUP_CLUSTER),
                      F.col(DUP_CLUSTER_SIZE).cast("long"),
                      DUPLICATE_OF,
                      "boilerplate", REASON))
    joined = docs.join(labels, ID)
    out_schema = runner.output_schema(docs, dedup.ADDED_FIELDS)
    body = functools.partial(dedup.strip_boilerplate_batch, cfg=cfg)
    return joined.select(*docs.columns, DUP_CLUSTER, DUP_CLUSTER_SIZE, DUPLICATE_OF,
                         "boilerplate", REASON).mapInArrow(body, from_arrow_schema(out_schema))


def plan(docs: DataFrame, cfg: DedupConfig) -> tuple[DataFrame, dict]:
    """The documents with this stage's columns and ``reason``, and what the plan counted:
    fingerprint → exact groups → near clusters → boilerplate → remove, each step's seconds
    recorded (every step but the last ends in a checkpoint, so its time is its own)."""
    missing = {ID, TEXT} - set(docs.columns)
    if missing:
        raise UsageError(f"input lacks column(s): {', '.join(sorted(missing))}")
    docs = docs.drop(*[c for c in _ADDED + [REASON] if c in docs.columns])
    bands, rows = cfg.banding()
    seconds: dict[str, float] = {}

    def timed(name, fn, *args):
        started = time.perf_counter()
        out = fn(*args)
        seconds[name] = round(time.perf_counter() - started, 3)
        return out

    feats = timed("fingerprint", fingerprint, docs, cfg, bands, rows)
    exact = timed("exact_groups", exact_groups, feats, cfg)
    verdict, n_edges, rounds = timed("near_clusters", near_clusters, exact, cfg)
    cut, n_boiler = timed("boilerplate", boilerplate, verdict, cfg)
    result = remove(docs, verdict, cut, cfg)
    info = {"bands": bands, "rows": rows, "candidate_edges": n_edges, "cc_rounds": rounds,
            "boilerplate_line_hashes": n_boiler, "seconds_by_step": seconds}
    return result, info


def run_plan(spark: SparkSession, docs: DataFrame, cfg: DedupConfig,
             scratch: str) -> tuple[DataFrame, dict[str, Any]]:
    """The stage's plan as the runner calls it. Component rounds checkpoint into ``scratch``
    (inside the output folder, removed with it): files outlive a lost executor."""
    spark.sparkContext.setCheckpointDir(os.path.join(scratch, "checkpoints"))
    return plan(docs, cfg)
