"""The command line every stage job shares: common flags, settings, checks, the summary.

``jobs/<stage>.py`` is ``stage_main(STAGE, argv)``: parse, resolve the settings, check the
folders (before Spark starts, so a mistake costs no start-up), run the stage, print what it
did. A user's mistake ends in one line and exit status 2 (``core.errors``).
"""
from __future__ import annotations

import argparse
from typing import Any

from core.errors import ArgumentParser, run_command
from pipeline.ingest import readers
from pipeline.stage import stagedir
from pipeline.stage.config import parse_overrides
from pipeline.stage.contract import Stage

COMMON = ("input", "output", "config", "overrides", "master", "overwrite")


def stage_parser(stage: Stage) -> argparse.ArgumentParser:
    """A parser with the flags every stage job takes, then the stage's own."""
    p = ArgumentParser(description=stage.description)
    if stage.reads_raw:
        p.add_argument("--input", nargs="+", required=True, metavar="PATH",
                       help="files, folders or globs")
    else:
        p.add_argument("--input", required=True, metavar="DIR",
                       help="a complete stage folder (its data/ is read)")
    p.add_argument("--output", required=True, metavar="DIR", help="the stage folder to write")
    p.add_argument("--config", metavar="FILE", help="YAML file of settings")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting (repeatable)")
    p.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an output folder that is already complete")
    if stage.arguments:
        stage.arguments(p)
    return p


def stage_settings(stage: Stage, args: argparse.Namespace) -> Any:
    """The stage's settings: defaults, the ``--config`` file's section, the stage's own flags
    that were given (None = not given), then ``--set`` pairs; the later wins."""
    flags = {k: v for k, v in vars(args).items() if k not in COMMON and v is not None}
    flags.update(parse_overrides(args.overrides))
    return stage.load_settings(args.config, flags)


def inputs_of(stage: Stage, args: argparse.Namespace) -> list[str]:
    return list(args.input) if stage.reads_raw else [args.input]


def check_folders(stage: Stage, inputs: list[str], output: str, overwrite: bool) -> None:
    """The input can be read and the output may be written without destroying anything."""
    if stage.reads_raw:
        readers.list_inputs(inputs)
    else:
        stagedir.require_complete(inputs[0])
    stagedir.check_output(output, overwrite, inputs=inputs)


def print_summary(stage: Stage, stats: dict) -> None:
    """What a stage did, in a few lines a person reads at the end of a job."""
    print(f"{stats['stage']}: {stats['docs_in']} documents in, {stats['docs_kept']} kept, "
          f"{stats['docs_rejected']} rejected in {stats['seconds']:.1f}s → {stats['output']}")
    for reason, n in sorted(stats["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
        print(f"  {n:>9}  {reason}")
    for line in stage.summary(stats) if stage.summary else []:
        print(f"  {line}")


def stage_job(stage: Stage, argv: list[str] | None = None) -> dict:
    """One stage as a command: its ``main``."""
    args = stage_parser(stage).parse_args(argv)
    settings = stage_settings(stage, args)
    inputs = inputs_of(stage, args)
    check_folders(stage, inputs, args.output, args.overwrite)

    from pipeline.spark.session import get_spark

    spark = get_spark(args.master, stage.name)
    stats = stage.run(spark, inputs, args.output, settings, overwrite=args.overwrite)
    print_summary(stage, stats)
    return stats


def run(stage: Stage) -> None:
    """``python jobs/<stage>.py ...``: the job, then exit with its status."""
    run_command(lambda argv: stage_job(stage, argv))
