"""Ingest raw files (JSONL, text, WARC/WET/ARC, HTML, Parquet) and clean them.

    spark-submit jobs/clean.py --input RAW... --output out/clean [--max-record-bytes N]
        [--config FILE] [--set k=v] [--overwrite]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.clean.stage import STAGE  # noqa: E402
from pipeline.stage import cli  # noqa: E402


def main(argv=None):
    return cli.stage_job(STAGE, argv)


if __name__ == "__main__":
    cli.run(STAGE)
