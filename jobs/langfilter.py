"""Tag every document with its language (fastText lid.176) and keep the wanted ones.

    spark-submit jobs/langfilter.py --input out/clean --output out/lang --languages en,de
        [--min-score 0.65] [--partition-by-lang] [--config FILE] [--set k=v] [--overwrite]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.langfilter.stage import STAGE  # noqa: E402
from pipeline.stage import cli  # noqa: E402


def main(argv=None):
    return cli.stage_job(STAGE, argv)


if __name__ == "__main__":
    cli.run(STAGE)
