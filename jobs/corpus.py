"""Every corpus stage in one Spark application: clean → langfilter → dedup → bias_screen.

    spark-submit jobs/corpus.py --input RAW... --output DIR [--config configs/corpus.yaml]
                                [--languages en,de] [--set dedup.threshold=0.7]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.errors import ArgumentParser, run_command  # noqa: E402
from pipeline import corpus  # noqa: E402


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", nargs="+", required=True, metavar="PATH", help="raw files, folders or globs")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--config", metavar="FILE", help="YAML: `stages:` (order) and one section per stage")
    p.add_argument("--stages", help="comma-separated stage order (overrides the config)")
    p.add_argument("--languages", help="languages the langfilter stage keeps (e.g. en,de or all)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="STAGE.KEY=VALUE", help="override one stage setting (repeatable)")
    p.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    p.add_argument("--overwrite", action="store_true", help="rerun every stage")
    args = p.parse_args(argv)
    order, settings = corpus.plan(args.input, args.output, args.config,
                                  args.stages.split(",") if args.stages else None,
                                  args.languages, args.overrides)
    from pipeline.spark.session import get_spark

    return corpus.run(get_spark(args.master, "corpus"), args.input, args.output, order, settings,
                      overwrite=args.overwrite,
                      record={"config_file": args.config, "overrides": args.overrides,
                              "languages": args.languages})


if __name__ == "__main__":
    run_command(main)
