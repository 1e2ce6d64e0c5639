"""How the trainer's commands fail: bad input a user can fix ends in one line and exit status 2
(SPEC "Commands"), a run that has to stop (a loss gone to NaN) in one line and exit status 1;
never a traceback alone."""

import argparse
import sys


class TrainerError(Exception):
    """Bad input: a missing manifest, a shard with a wrong header, an unknown setting."""


class TrainingStopped(Exception):
    """Training cannot go on (the loss is NaN or infinite); the last good checkpoint is kept."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a wrong flag gives the same one-line error as every other bad input."""

    def error(self, message):
        raise TrainerError(message)


def run_command(main, argv=None):
    """Call main(argv) and turn the trainer's errors into `error: ...` on stderr and an exit status."""
    try:
        main(argv)
    except TrainerError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingStopped as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
