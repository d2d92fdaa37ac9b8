"""The argument parsers: the subcommands' (``build_parser``, each subcommand's ``func`` its handler) and the
no-subcommand editor form's (``build_app_parser``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from storyterm.cli.errors import EXIT_USAGE, PROG
from storyterm.cli.generate import run_generate
from storyterm.cli.listing import run_genres, run_models
from storyterm.cli.model_flags import model_options
from storyterm.engine.settings import MAX_ALTERNATIVES, PRESETS
from storyterm.engine.token_probs import MAX_TOKEN_PROBS


class _Parser(argparse.ArgumentParser):
    """argparse, but the error is one line (the usage stays available via --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [DRAFT_FILE] [--model M] [--device D] [--dtype T] [--debug]\n"
              f"       {PROG} {{generate,genres,models,...}} [options]",
        description="A terminal co-writing assistant: a genre-conditioned GPT-2 continues your story. "
                    "Without a subcommand, opens the editor (on DRAFT_FILE if given).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, prog=PROG)
    shared_model_options = model_options(debug_default=argparse.SUPPRESS)

    generate = subparsers.add_parser(
        "generate", parents=[shared_model_options], help="continue a prompt and print the story (no editor)",
        description="Generate a story continuation and stream it to standard output.",
    )
    generate.add_argument("-g", "--genre", help="one of the model's genres (see `storyterm genres`); 'free' for none")
    source = generate.add_mutually_exclusive_group()
    source.add_argument("-p", "--prompt", help="the story so far (default: read from standard input if piped)")
    source.add_argument("-t", "--title", help='start from a title: "<title>" is a(n) <genre> film about')
    generate.add_argument("--memory", default="", help="text kept in context after the header (characters, setting)")
    steering = generate.add_argument_group("steering")
    steering.add_argument("--ban", action="append", default=[], metavar="WORD",
                          help="never write this word (any spelling, capitalised too); repeatable")
    steering.add_argument("--stop", action="append", default=[], metavar="TEXT",
                          help="end the passage where this text is written (not kept; \\n is a newline); repeatable")
    steering.add_argument("--authors-note", default="", metavar="TEXT",
                          help="a short note put a few sentences before the end of the story, e.g. 'Style: tense'")
    steering.add_argument("--authors-note-depth", type=int, default=3, metavar="N",
                          help="sentences from the end of the story to the author's note (0 = after it; default 3)")
    steering.add_argument("--lorebook", type=Path, metavar="FILE.json",
                          help="world info: entries of keys and text, read while a key is in the story's last lines "
                          "(format in the README)")
    generate.add_argument("--instruct", action=argparse.BooleanOptionalAction, default=None,
                          help="ask a chat model to continue the story (default: on when the model has a chat "
                          "template)")
    sampling = generate.add_argument_group("sampling (defaults: the model's, else the classic preset)")
    sampling.add_argument("--preset", choices=sorted(PRESETS), help="start from a named preset")
    sampling.add_argument("--max-new-tokens", type=int, metavar="N")
    sampling.add_argument("--temperature", type=float, metavar="X")
    sampling.add_argument("--top-k", type=int, metavar="K", help="0 turns top-k off")
    sampling.add_argument("--top-p", type=float, metavar="P")
    sampling.add_argument("--min-p", type=float, metavar="P",
                          help="drop tokens less likely than P × the most likely one (0 = off)")
    sampling.add_argument("--typical-p", type=float, metavar="P", help="locally typical sampling mass (1 = off)")
    sampling.add_argument("--word-guard", action=argparse.BooleanOptionalAction, default=None,
                          help="keep lower-case and capitalised words to spellings of the training text or the "
                               "prompt (models with a word list: words.txt, or a GGUF file exported by storyterm; on "
                               "by default for them)")
    sampling.add_argument("--repetition-penalty", type=float, metavar="X")
    mode = sampling.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_true", help="no sampling: always the most likely token")
    mode.add_argument("--sample", action="store_true", help="sample, even if the checkpoint's file says greedy")
    sampling.add_argument("--seed", type=int, metavar="S", help="same seed and settings → same text (on CPU)")
    sampling.add_argument("-n", "--n", type=int, metavar="N", dest="n",
                          help=f"number of alternatives, 1–{MAX_ALTERNATIVES}; the first streams")
    sampling.add_argument("--trim", action=argparse.BooleanOptionalAction, dest="trim_sentences",
                          help="end a passage at a sentence end: finish the sentence within a few more tokens, else "
                               "cut the unfinished tail (default: on; --no-trim keeps the passage as cut)")
    generate.add_argument("--json", action="store_true", help="print one JSON object with the texts and stats")
    generate.add_argument("--logprobs", "--token-probs", type=int, default=0, metavar="K", dest="logprobs",
                          help="with --json: add \"tokens\", each generated token of the first alternative with "
                               "its probability (\"prob\": under the sampling settings, \"raw_prob\": the model's) "
                               f"and its K likeliest candidates (0–{MAX_TOKEN_PROBS})")
    generate.set_defaults(func=run_generate)

    genres = subparsers.add_parser("genres", parents=[shared_model_options], help="list the model's genres",
                                   description="List the genres the model was trained with.")
    genres.set_defaults(func=run_genres)

    models = subparsers.add_parser("models", help="list usable models",
                                   description="List the built-in model and the causal LMs in the Hugging Face cache.")
    models.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    models.set_defaults(func=run_models)

    try:
        from storyterm.story import commands as story_commands
    except ImportError:
        story_commands = None
    if story_commands is not None:
        story_commands.register(subparsers)
    return parser


def build_app_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, parents=[model_options()],
                     description="Open the storyterm editor, on DRAFT_FILE if given.")
    parser.add_argument("draft", nargs="?", type=Path, metavar="DRAFT_FILE", help="a draft to open (or create)")
    return parser
