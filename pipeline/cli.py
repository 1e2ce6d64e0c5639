"""Command-line plumbing shared by ``jobs/*.py``: common flags and the exit-2 contract."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from pipeline import stagedir
from pipeline.config import load_config, parse_overrides
from pipeline.errors import UsageError


def stage_parser(description: str, *, multi_input: bool = False) -> argparse.ArgumentParser:
    """A parser with the flags every stage job takes."""
    p = argparse.ArgumentParser(description=description)
    if multi_input:
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
    return p


def positive_int(text: str) -> int:
    """An argparse type for sizes and counts, where 0 or less would silently read nothing."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def stage_settings(cls: type, args: argparse.Namespace, section: str, **flags):
    """A stage's settings: its defaults, the ``--config`` file's ``section``, the stage's own
    flags that were given (None = not given), then ``--set`` pairs; the later wins."""
    overrides = {k: v for k, v in flags.items() if v is not None}
    overrides.update(parse_overrides(args.overrides))
    return load_config(cls, args.config, overrides, section=section)


def check_stage_folders(args: argparse.Namespace) -> None:
    """The input is a complete stage folder and the output may be written. Called before
    Spark starts, as every check a user can fail is, so a mistake costs no start-up."""
    stagedir.require_complete(args.input)
    stagedir.check_output(args.output, args.overwrite, inputs=[args.input])


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a job's ``main``; a user's mistake ends in one line and exit status 2."""
    try:
        code = main(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def print_summary(stats: dict) -> None:
    """What a stage did, in a few lines a person reads at the end of a job."""
    print(f"{stats['stage']}: {stats['docs_in']} documents in, {stats['docs_kept']} kept, "
          f"{stats['docs_rejected']} rejected in {stats['seconds']:.1f}s → {stats['output']}")
    for reason, n in sorted(stats["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
        print(f"  {n:>9}  {reason}")
