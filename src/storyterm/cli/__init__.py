"""The ``storyterm`` command: the TUI (no subcommand), ``generate``, ``genres``, ``models``, and the story package's
``drafts`` / ``export`` / ``import``.

One module per job: ``entry`` (``main``: which form was asked for, and errors to exit codes), ``parsers`` (the flags),
``model_flags`` (the model flags to a loaded model), ``generate``, ``listing`` (``genres`` and ``models``) and
``errors`` (exit codes, the usage error, the one-line report).

Exit codes: 0 ok, 1 runtime error (model, device, generation), 2 usage error (bad flag, genre or setting),
130 interrupted. Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from storyterm.cli.entry import main

__all__ = ["main"]
