"""Exit codes, the usage error argparse cannot see, and the one-line report every failure prints on stderr."""

from __future__ import annotations

import sys
import traceback

from storyterm.engine.errors import StorytermError

PROG = "storyterm"
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(StorytermError):
    """Bad command-line input that argparse cannot see (e.g. both a prompt on stdin and --prompt)."""


def report(error: BaseException, debug: bool, code: int, prefix: str = "") -> int:
    """Print the error as one line (the traceback first with ``--debug``) and return the exit code."""
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{PROG}: error: {prefix}{message}", file=sys.stderr)
    return code
