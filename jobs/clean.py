"""Ingest raw files (JSONL, text, WARC/WET/ARC, HTML, Parquet) and clean them.

    spark-submit jobs/clean.py --input RAW... --output out/clean [--config FILE] [--set k=v]
"""
import os
import sys
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import cli, readers, stagedir  # noqa: E402
from pipeline.clean import CleanConfig, clean_batch  # noqa: E402


def main(argv=None):
    parser = cli.stage_parser("Ingest raw documents and apply the clean rules.",
                              multi_input=True)
    parser.add_argument("--max-record-bytes", type=cli.positive_int, default=readers.DEFAULT_MAX_RECORD_BYTES,
                        help="quarantine records larger than this (default 16 MiB)")
    args = parser.parse_args(argv)
    cfg = cli.stage_settings(CleanConfig, args, "clean")
    # Every check a user can fail runs before Spark starts, so a mistake costs no start-up.
    readers.list_inputs(args.input)
    stagedir.check_output(args.output, args.overwrite, inputs=args.input)

    from pipeline import spark_stage

    spark = spark_stage.get_spark(args.master, "clean")
    stats = spark_stage.ingest_stage(
        spark, args.input, partial(clean_batch, cfg=cfg), args.output, stage="clean",
        config=cfg, overwrite=args.overwrite, max_record_bytes=args.max_record_bytes)
    cli.print_summary(stats)


if __name__ == "__main__":
    cli.run(main)
