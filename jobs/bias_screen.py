"""Screen every document for toxicity, PII and identity terms; drop what the policy says.

    spark-submit jobs/bias_screen.py --input out/dedup --output out/screen
        [--policy FILE] [--url-blocklist FILE] [--set key=value] [--master M] [--overwrite]

Writes the stage folder (data/, rejected/, stats.json, _SUCCESS) and, beside it,
bias_report.json and bias_report.html (pipeline/bias_report.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import cli  # noqa: E402
from pipeline.config import parse_overrides, read_section  # noqa: E402
from pipeline.screen import Screener, load_policy  # noqa: E402


def main(argv=None):
    parser = cli.stage_parser("Tag toxicity, PII and identity terms; drop by the policy.")
    parser.add_argument("--policy", metavar="FILE",
                        help="policy YAML (default: pipeline/policies/default.yaml)")
    parser.add_argument("--url-blocklist", metavar="FILE",
                        help="file of domains, one a line: their URLs are dropped")
    args = parser.parse_args(argv)
    # The corpus-wide config's bias_screen section; --policy and --set win over it.
    overrides = read_section(args.config, "bias_screen") if args.config else {}
    overrides.update(parse_overrides(args.overrides))
    screener = Screener.build(load_policy(args.policy, overrides), args.url_blocklist)
    cli.check_stage_folders(args)

    from pipeline import bias_report, spark_stage

    spark = spark_stage.get_spark(args.master, "bias_screen")
    df = spark_stage.read_stage(spark, args.input)
    stats, report = bias_report.run_screen(spark, df, args.output, screener,
                                           policy_file=args.policy, overwrite=args.overwrite,
                                           inputs=[args.input])
    cli.print_summary(stats)
    for line in report["warnings"]:
        print(f"  warning: {line}")
    print(f"  bias report: {os.path.join(args.output, 'bias_report.html')}")


if __name__ == "__main__":
    cli.run(main)
