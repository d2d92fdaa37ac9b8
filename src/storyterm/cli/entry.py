"""``main``: which form of the command was asked for (a subcommand, or the editor on an optional draft file), then
running it with every failure turned into one line on stderr and an exit code (codes in ``storyterm.cli.errors``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from storyterm.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError, report
from storyterm.cli.model_flags import model_spec
from storyterm.cli.parsers import build_app_parser, build_parser
from storyterm.engine.errors import SettingsError, StorytermError, UnknownGenreError

# Options of the no-subcommand form that take a value (so their value is not mistaken for a subcommand).
_APP_VALUE_OPTIONS = {"--model", "-m", "--device", "--dtype"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    subcommands = _subcommand_names(parser)
    first = _first_positional(argv)
    help_asked = any(token in {"-h", "--help"} for token in argv)
    if first in subcommands or (help_asked and first is None):
        args = _parse(parser, argv)
    elif first is not None and _looks_like_a_command(first):
        return report(UsageError(_unknown_command(first, subcommands)), False, EXIT_USAGE)
    else:
        args = _parse(build_app_parser(), argv)
        if isinstance(args, int):
            return args
        args.func = lambda namespace: run_app(namespace, parser)
    if isinstance(args, int):
        return args
    debug = bool(getattr(args, "debug", False))
    try:
        if getattr(args, "func", None) is None:
            parser.print_help()
            return EXIT_OK
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, SettingsError, UnknownGenreError) as error:
        return report(error, debug, EXIT_USAGE)
    except StorytermError as error:
        return report(error, debug, EXIT_RUNTIME)
    except BrokenPipeError:
        return EXIT_RUNTIME
    except Exception as error:  # noqa: BLE001 - unexpected: still one line unless --debug
        return report(error, debug, EXIT_RUNTIME, prefix=f"{type(error).__name__}: ")


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE


def _looks_like_a_command(word: str) -> bool:
    """A bare word that is no existing file and no ``.json`` path: a mistyped subcommand, not a new draft."""
    return not (os.path.lexists(word) or word.endswith(".json") or os.sep in word or "." in word)


def _unknown_command(word: str, subcommands: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(subcommands), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (f"unknown command {word!r}; {hint}commands: {', '.join(sorted(subcommands))} "
            f"(a new draft is a .json path, e.g. {word}.json)")


def _subcommand_names(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def _first_positional(argv: Sequence[str]) -> str | None:
    skip_next = False
    for token in argv:
        if skip_next:
            skip_next = False
            continue
        if token == "--":
            return None
        if token.startswith("-"):
            skip_next = token in _APP_VALUE_OPTIONS
            continue
        return token
    return None


def run_app(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        from storyterm.tui.app import run_app as tui_run_app
    except ImportError as error:
        raise StorytermError(f"cannot start the editor: {error}") from None
    return int(tui_run_app(args.draft, model_spec(args), debug=args.debug) or EXIT_OK)
