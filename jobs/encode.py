"""Encode a corpus stage folder into token shards for the trainer (tokenizer/spark_encode.py).

    spark-submit jobs/encode.py --input out/corpus --tokenizer out/tokenizer --output out/shards
        [--val-fraction 0.005] [--shard-tokens N] [--seed S] [--partitions N] [--overwrite]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.errors import run_command  # noqa: E402
from tokenizer.spark_encode import main  # noqa: E402

if __name__ == "__main__":
    run_command(main)
