"""Remove exact duplicates, near duplicates (MinHash LSH) and boilerplate lines.

    spark-submit jobs/dedup.py --input out/lang --output out/dedup [--threshold 0.8]
        [--num-perm 128] [--ngram 5] [--bands B --rows R] [--verify] [--keep smallest|longest]
        [--boilerplate-min-docs K] [--seed S] [--config FILE] [--set k=v] [--overwrite]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import cli  # noqa: E402
from pipeline.dedup import KEEP_RULES, DedupConfig  # noqa: E402


def main(argv=None):
    parser = cli.stage_parser("Remove exact and near-duplicate documents and boilerplate lines.")
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
    args = parser.parse_args(argv)
    cfg = cli.stage_settings(
        DedupConfig, args, "dedup", threshold=args.threshold, num_perm=args.num_perm, ngram=args.ngram,
        bands=args.bands, rows=args.rows, verify=args.verify, keep=args.keep,
        boilerplate_min_docs=args.boilerplate_min_docs, seed=args.seed)
    cli.check_stage_folders(args)

    from pipeline import spark_dedup, spark_stage

    spark = spark_stage.get_spark(args.master, "dedup")
    stats = spark_dedup.run(spark, args.input, args.output, cfg, overwrite=args.overwrite)
    cli.print_summary(stats)
    d = stats["dedup"]
    print(f"  LSH {d['bands']} bands x {d['rows']} rows; {d['candidate_edges']} candidate edges; "
          f"{d['cc_rounds']} component rounds; {d['boilerplate_line_hashes']} boilerplate lines")


if __name__ == "__main__":
    cli.run(main)
