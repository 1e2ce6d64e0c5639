"""How every command of the project fails: one error type, one exit path.

A mistake the user can fix (a bad flag, a missing or incomplete input, an unreadable config, a
folder that would be destroyed) is a ``UsageError``: one line on stderr naming the problem, exit
status 2 (SPEC "Commands"), never a traceback alone. A run that has to stop on its own (a loss
gone to NaN) is ``TrainingStopped``: one line, exit status 1.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


class UsageError(Exception):
    """Bad arguments, a missing or incomplete input, an unreadable config.

    Raised instead of letting a traceback reach the user: the message must name the problem
    (the path, the key, the flag) so the one line printed is enough to act on.
    """


class TrainingStopped(Exception):
    """Training cannot go on (the loss is NaN or infinite); the last good checkpoint is kept."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a wrong flag gives the same one-line error as every other bad input
    instead of the usage block."""

    def error(self, message):
        raise UsageError(message)


def exit_code(main: Callable[[], object]) -> int:
    """Run ``main``; its errors become ``error: ...`` on stderr and the exit status."""
    try:
        code = main()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0


def run_command(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """The entry point of every command: ``main(argv)``; on an error, exit with its status."""
    code = exit_code(lambda: main(argv))
    if code:
        sys.exit(code)
