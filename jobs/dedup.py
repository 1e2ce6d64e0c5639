"""Remove exact duplicates, near duplicates (MinHash LSH) and boilerplate lines.

    spark-submit jobs/dedup.py --input out/lang --output out/dedup [--threshold 0.8]
        [--num-perm 128] [--ngram 5] [--bands B --rows R] [--verify] [--keep smallest|longest]
        [--boilerplate-min-docs K] [--seed S] [--config FILE] [--set k=v] [--overwrite]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.dedup.stage import STAGE  # noqa: E402
from pipeline.stage import cli  # noqa: E402


def main(argv=None):
    return cli.stage_job(STAGE, argv)


if __name__ == "__main__":
    cli.run(STAGE)
