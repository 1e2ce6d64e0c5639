"""The error a user can fix: jobs print it as one line and exit with status 2."""


class UsageError(Exception):
    """Bad arguments, a missing or incomplete input, an unreadable config.

    Raised instead of letting a traceback reach the user: the message must name the problem
    (the path, the key, the flag) so the one line printed is enough to act on.
    """
