"""Tag every document with its language (fastText lid.176) and keep the wanted ones.

    spark-submit jobs/langfilter.py --input out/clean --output out/lang --languages en,de
        [--min-score 0.65] [--partition-by-lang] [--config FILE] [--set k=v] [--overwrite]
"""
import os
import sys
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import cli  # noqa: E402
from pipeline.langid import ADDED_FIELDS, LANG, LangFilterConfig, langid_batch  # noqa: E402


def main(argv=None):
    parser = cli.stage_parser("Identify each document's language and keep the wanted ones.")
    parser.add_argument("--languages", metavar="CODES",
                        help="lid.176 codes to keep, comma-separated (en,de,zh,no...), or 'all' "
                             "to tag without dropping (default: the config's, else en)")
    parser.add_argument("--min-score", type=float, metavar="P",
                        help="lowest lid.176 probability kept (default 0.65, FineWeb's)")
    parser.add_argument("--partition-by-lang", action="store_true", default=None,
                        help="write data/lang=xx/ folders, one per language")
    args = parser.parse_args(argv)
    cfg = cli.stage_settings(LangFilterConfig, args, "langfilter", languages=args.languages,
                             min_score=args.min_score, partition_by_lang=args.partition_by_lang)
    cli.check_stage_folders(args)

    from pipeline import spark_stage

    spark = spark_stage.get_spark(args.master, "langfilter")
    df = spark_stage.read_stage(spark, args.input)
    stats = spark_stage.map_stage(
        spark, df, partial(langid_batch, cfg=cfg), args.output, stage="langfilter",
        config=cfg, add_fields=ADDED_FIELDS, overwrite=args.overwrite, inputs=[args.input],
        partition_by=[LANG] if cfg.partition_by_lang else None)
    cli.print_summary(stats)


if __name__ == "__main__":
    cli.run(main)
