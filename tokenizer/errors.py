"""The error a user can fix in the tokenizer stage: one line on stderr, exit status 2.

Kept apart from ``pipeline.errors`` because ``tokenizer.shards`` is imported by trainers that
must not depend on the corpus pipeline.
"""

from __future__ import annotations

import sys
from typing import Callable


class TokenizerError(Exception):
    """Bad input: an empty corpus, a vocabulary the sample cannot support, a mismatched tokenizer."""


def exit_on_error(run: Callable[[], object], *errors: type[BaseException]) -> int:
    """Run ``run``; a known error becomes ``error: ...`` on stderr and status 2, not a traceback."""
    try:
        run()
    except (TokenizerError, *errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
