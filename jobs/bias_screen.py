"""Screen every document for toxicity, PII and identity terms; drop what the policy says.

    spark-submit jobs/bias_screen.py --input out/dedup --output out/screen
        [--policy FILE] [--url-blocklist FILE] [--set key=value] [--master M] [--overwrite]

Writes the stage folder and, beside it, bias_report.json and bias_report.html.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.screen.stage import STAGE  # noqa: E402
from pipeline.stage import cli  # noqa: E402


def main(argv=None):
    return cli.stage_job(STAGE, argv)


if __name__ == "__main__":
    cli.run(STAGE)
