"""The dedup stage: exact and near duplicates (MinHash LSH, ``minhash``) and boilerplate lines,
through a Spark plan of its own (``spark_plan``), since it must group and join."""
from __future__ import annotations

from pipeline.dedup.minhash import ADDED_FIELDS, KEEP_RULES, DedupConfig
from pipeline.stage.contract import Stage


def _arguments(parser) -> None:
    parser.add_argument("--threshold", type=float, metavar="J",
                        help="Jaccard similarity of word n-gram sets that makes a duplicate "
                             "(default 0.8)")
    parser.add_argument("--num-perm", type=int, metavar="N", help="MinHash permutations (128)")
    parser.add_argument("--ngram", type=int, metavar="N", help="words per shingle (5)")
    parser.add_argument("--bands", type=int, metavar="B",
                        help="LSH bands (with --rows; default: chosen for the threshold)")
    parser.add_argument("--rows", type=int, metavar="R", help="rows per LSH band (with --bands)")
    parser.add_argument("--verify", action="store_true", default=None,
                        help="check candidate pairs' true Jaccard and drop false positives")
    parser.add_argument("--keep", choices=KEEP_RULES,
                        help="which document of a cluster stays (default smallest id)")
    parser.add_argument("--boilerplate-min-docs", type=int, metavar="K",
                        help="a line or paragraph in at least K kept documents is cut as "
                             "boilerplate (3)")
    parser.add_argument("--seed", type=int, help="seed of the MinHash permutations (1)")


def _summary(stats: dict) -> list[str]:
    d = stats["dedup"]
    return [f"LSH {d['bands']} bands x {d['rows']} rows; {d['candidate_edges']} candidate edges; "
            f"{d['cc_rounds']} component rounds; {d['boilerplate_line_hashes']} boilerplate lines"]


STAGE = Stage(
    name="dedup",
    description="Remove exact and near-duplicate documents and boilerplate lines.",
    settings=DedupConfig,
    added_fields=tuple(ADDED_FIELDS),
    plan="pipeline.dedup.spark_plan:run_plan",
    arguments=_arguments,
    summary=_summary,
)
