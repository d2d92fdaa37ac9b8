"""The ``storyterm`` command: the TUI (no subcommand), ``generate``, ``genres``, ``models``, and the story package's
``drafts`` / ``export``.

Exit codes: 0 ok, 1 runtime error (model, device, generation), 2 usage error (bad flag, genre or setting),
130 interrupted. Errors are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyterm.engine.errors import SettingsError, StorytermError, UnknownGenreError
from storyterm.engine.settings import MAX_ALTERNATIVES, PRESETS, SamplerSettings, preset
from storyterm.engine.token_probs import MAX_TOKEN_PROBS

if TYPE_CHECKING:
    from storyterm.engine.generation import GenerationResult
    from storyterm.engine.loading import LoadedModel, ModelSpec

PROG = "storyterm"
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Options of the no-subcommand form that take a value (so their value is not mistaken for a subcommand).
_APP_VALUE_OPTIONS = {"--model", "-m", "--device", "--dtype"}


class UsageError(StorytermError):
    """Bad command-line input that argparse cannot see (e.g. both a prompt on stdin and --prompt)."""


# ---------------------------------------------------------------------------------------------------------------------
# Parsers


class _Parser(argparse.ArgumentParser):
    """argparse, but the error is one line (the usage stays available via --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _model_options(debug_default: Any = False) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("model")
    group.add_argument("-m", "--model", default="builtin", metavar="M",
                       help="'builtin' (default), a local checkpoint directory, a .gguf file (run by llama.cpp: "
                       "pip install 'storyterm[gguf]'), or a Hugging Face hub id (from the cache)")
    group.add_argument("--device", default="auto", metavar="D", help="auto (default), cpu, cuda, cuda:N or mps")
    group.add_argument("--dtype", default="auto", metavar="T",
                       help="auto (default: bf16 on a GPU; on a CPU int8 weights for larger models, else fp32), "
                       "fp32, bf16, fp16 or int8 (CPU only)")
    group.add_argument("--allow-pickle", action="store_true",
                       help="allow checkpoints with only pickle weights (they can run code: trusted files only)")
    parent.add_argument("--debug", action="store_true", default=debug_default, help="show tracebacks on errors")
    return parent


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
    model_options = _model_options(debug_default=argparse.SUPPRESS)

    generate = subparsers.add_parser(
        "generate", parents=[model_options], help="continue a prompt and print the story (no editor)",
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
                               "prompt (models with a word list: words.txt, or a GGUF file exported by storyterm; on by "
                               "default for them)")
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

    genres = subparsers.add_parser("genres", parents=[model_options], help="list the model's genres",
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
    parser = _Parser(prog=PROG, parents=[_model_options()],
                     description="Open the storyterm editor, on DRAFT_FILE if given.")
    parser.add_argument("draft", nargs="?", type=Path, metavar="DRAFT_FILE", help="a draft to open (or create)")
    return parser


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


# ---------------------------------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    subcommands = _subcommand_names(parser)
    first = _first_positional(argv)
    help_asked = any(token in {"-h", "--help"} for token in argv)
    if first in subcommands or (help_asked and first is None):
        args = _parse(parser, argv)
    elif first is not None and _looks_like_a_command(first):
        return _report(UsageError(_unknown_command(first, subcommands)), False, EXIT_USAGE)
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
        return _report(error, debug, EXIT_USAGE)
    except StorytermError as error:
        return _report(error, debug, EXIT_RUNTIME)
    except BrokenPipeError:
        return EXIT_RUNTIME
    except Exception as error:  # noqa: BLE001 - unexpected: still one line unless --debug
        return _report(error, debug, EXIT_RUNTIME, prefix=f"{type(error).__name__}: ")


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


def _report(error: BaseException, debug: bool, code: int, prefix: str = "") -> int:
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{PROG}: error: {prefix}{message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------------------------------------------------------
# Commands


def _spec(args: argparse.Namespace) -> ModelSpec:
    from storyterm.engine.loading import ModelSpec

    return ModelSpec(source=args.model, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle)


def _load(args: argparse.Namespace) -> LoadedModel:
    from storyterm.engine.loading import load_model

    progress: Callable[[str], None] | None = None
    if sys.stderr.isatty() and not getattr(args, "json", False):
        def progress(message: str) -> None:
            print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)

    try:
        loaded = load_model(_spec(args), on_progress=progress)
    finally:
        if progress is not None:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    return loaded


def run_app(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        from storyterm.tui.app import run_app as tui_run_app
    except ImportError as error:
        raise StorytermError(f"cannot start the editor: {error}") from None
    return int(tui_run_app(args.draft, _spec(args), debug=args.debug) or EXIT_OK)


def sampler_settings(args: argparse.Namespace, checkpoint: dict[str, Any] | None = None) -> SamplerSettings:
    """What the writer set (a preset, then every flag given) wins; the checkpoint's file fills the rest."""
    from storyterm.config import PRESET_FIELDS
    from storyterm.engine.checkpoint_defaults import resolve_settings

    changes: dict[str, Any] = {}
    if args.preset:
        chosen = preset(args.preset).to_dict()
        changes.update({name: chosen[name] for name in PRESET_FIELDS})
    for flag, name in (
        ("max_new_tokens", "max_new_tokens"),
        ("temperature", "temperature"),
        ("top_k", "top_k"),
        ("top_p", "top_p"),
        ("min_p", "min_p"),
        ("typical_p", "typical_p"),
        ("word_guard", "word_guard"),
        ("repetition_penalty", "repetition_penalty"),
        ("seed", "seed"),
        ("n", "num_alternatives"),
        ("trim_sentences", "trim_sentences"),
    ):
        value = getattr(args, flag)
        if value is not None:
            changes[name] = value
    if args.greedy:
        changes["do_sample"] = False
    if args.sample:
        changes["do_sample"] = True
    return resolve_settings(changes, checkpoint or {})


def _read_story(args: argparse.Namespace, genre: str | None, instruct: bool = False) -> str:
    if args.title is not None:
        if instruct:
            return ""  # a chat model is told the title in the request
        from storyterm.engine.prompt import title_prompt

        from storyterm.engine.prompt import opening_text

        try:
            return opening_text(title_prompt(args.title, genre))
        except ValueError as error:
            raise UsageError(f"--title: {error}") from None
    if args.prompt is not None:
        return args.prompt
    if sys.stdin is not None and not sys.stdin.isatty():
        return _read_stdin().rstrip("\n")
    return ""


def _user_config() -> Any:
    """config.toml (for the genres in words and instruct mode); its warnings are notes on stderr."""
    from storyterm.config import load_config

    config, warnings = load_config()
    for warning in warnings:
        print(f"{PROG}: note: {warning}", file=sys.stderr)
    return config


def _check_genre(args: argparse.Namespace, loaded: LoadedModel, word_genres: Any) -> str | None:
    """The genre to use: a genre token, a genre in words, or None (free mode: ``--genre free``, or none given to
    a model without genre tokens)."""
    from storyterm.engine.genres import FREE_GENRE

    if loaded.genres:
        if args.genre is None:
            raise UsageError(f"--genre is required; this model knows: {', '.join(loaded.genres)}")
        if args.genre not in loaded.genres:
            raise UnknownGenreError(f"unknown genre {args.genre!r}; this model knows: {', '.join(loaded.genres)}")
        return args.genre
    if args.genre is None or args.genre == FREE_GENRE:
        if args.genre is None:
            print(f"{PROG}: note: no --genre: free mode (model {loaded.name} takes genres in words: "
                  f"{', '.join(word_genres.genres)})", file=sys.stderr)
        return None
    if args.genre not in word_genres.genres:
        raise UnknownGenreError(f"unknown genre {args.genre!r}; choose one of: {', '.join(word_genres.genres)} "
                                "(the list is in config.toml), or free")
    return args.genre


def _read_stdin() -> str:
    """Standard input as UTF-8 text; other bytes are a usage error in words (not a tokenizer's TypeError)."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a text stream already (tests, embedding)
        text = sys.stdin.read()
    else:
        data = buffer.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise UsageError(f"standard input is not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                             f"{error.start}); convert it first, e.g. with iconv") from None
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise UsageError("standard input is not UTF-8 text (it holds undecodable bytes)")
    return text


def run_generate(args: argparse.Namespace) -> int:
    from storyterm.engine.generation import GenerationRequest
    from storyterm.engine.loading import open_engine
    from storyterm.engine.passage import SettledText
    from storyterm.engine.prompt_builder import decode_ids

    if args.genre is not None:
        from storyterm.engine.prompt import normalize_genre

        try:
            args.genre = normalize_genre(args.genre)  # "Sci-Fi" → "sci_fi"
        except ValueError as error:
            raise UsageError(f"--genre: {error}") from None
    lorebook = _read_lorebook(args.lorebook)
    config = _user_config()
    loaded = _load(args)
    instruct = args.instruct if args.instruct is not None else config.instruct
    if instruct and not loaded.has_chat_template:
        if args.instruct:
            raise UsageError(f"model {loaded.name} has no chat template, so it has no instruct mode; drop --instruct")
        instruct = False  # the config's "on" only applies to models that can
    if instruct is None:
        instruct = loaded.has_chat_template
    genre = _check_genre(args, loaded, config.word_genres)
    settings = sampler_settings(args, loaded.checkpoint_settings)
    if not loaded.has_word_list:
        if args.word_guard:
            raise UsageError(f"--word-guard: model {loaded.name} has no word list (words.txt), so there is nothing "
                             "to check spellings against; drop --word-guard")
        settings = replace(settings, word_guard=False)  # what --json reports is what ran
    engine = open_engine(loaded)
    story = _read_story(args, genre, instruct=instruct)
    request = GenerationRequest(genre=genre, story=story, memory=args.memory, settings=settings,
                                word_genres=config.word_genres, instruct=instruct, title=args.title or "",
                                banned_words=tuple(args.ban), stop_sequences=tuple(_unescape(s) for s in args.stop),
                                authors_note=args.authors_note, authors_note_depth=args.authors_note_depth,
                                token_probs=args.logprobs, lorebook=lorebook)
    if args.logprobs and not args.json:
        raise UsageError("--logprobs adds token probabilities to the JSON output: add --json")
    engine.validate(request)
    prompt_text = engine.prompt_text(request) if args.json else ""
    prepared = engine.prepare(request)
    warnings = prepared.warnings
    for warning in warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    stream = engine.stream(request)
    out = sys.stdout
    # With trimming on, text after the last sentence end may still be cut: it is printed once the passage is done.
    settled = SettledText(enabled=settings.trim_sentences)
    try:
        if not args.json and story:
            out.write(story)
            out.flush()
        for piece in stream:
            if not args.json:
                out.write(settled.feed(piece))
                out.flush()
        result = stream.result()
    except KeyboardInterrupt:
        stream.cancel()
        try:
            stream.result(timeout=5)
        except Exception:  # noqa: BLE001 - leaving anyway
            pass
        if not args.json:
            out.write("\n")
            out.flush()
        print(f"{PROG}: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        data = _result_json(loaded, request, result)
        data.update(prompt=prompt_text, instruct=instruct, warnings=list(warnings),
                    context=[{"part": part.kind, "label": part.label, "tokens": part.tokens,
                              "text": decode_ids(loaded.tokenizer, part.token_ids)} for part in prepared.parts],
                    left_out=list(prepared.left_out))
        print(json.dumps(data, ensure_ascii=False))
        return EXIT_OK
    out.write(settled.finish(result.text) + "\n")
    for number, text in enumerate(result.texts[1:], start=2):
        out.write(f"\n--- alternative {number} ---\n{story}{text}\n" if text.strip() else
                  f"\n--- alternative {number} ---\n(the model stopped without writing anything)\n")
    out.flush()
    if not result.text.strip() and not result.cancelled:
        print(f"{PROG}: the model stopped without writing anything", file=sys.stderr)
    return EXIT_OK


def _read_lorebook(path: Path | None) -> Any:
    from storyterm.engine.lorebook import Lorebook, load_lorebook

    if path is None:
        return Lorebook()
    try:
        return load_lorebook(path)
    except SettingsError as error:
        raise UsageError(f"--lorebook: {error}") from None


def _unescape(text: str) -> str:
    """``\\n`` and ``\\t`` typed in a shell argument are a newline and a tab (a stop at the end of a line)."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _result_json(loaded: LoadedModel, request: Any, result: GenerationResult) -> dict[str, Any]:
    from storyterm.engine.gguf_loading import is_gguf

    return {
        "model": loaded.name,
        "backend": "llama.cpp" if is_gguf(loaded.spec.source) else "transformers",
        "genre": request.genre,
        "story": request.story,
        "memory": request.memory,
        "title": request.title,
        "texts": result.texts,
        "endings": list(result.endings),
        "seed": result.seed,
        "cancelled": result.cancelled,
        "settings": request.settings.to_dict(),
        "banned_words": list(request.banned_words),
        "stop_sequences": list(request.stop_sequences),
        "authors_note": request.authors_note,
        "authors_note_depth": request.authors_note_depth,
        "lorebook": request.lorebook.to_dict() if request.lorebook else None,
        "stats": result.stats.to_dict(),
        **({"tokens": None if not result.tokens or result.tokens[0] is None
            else [token.to_dict() for token in result.tokens[0]]} if request.token_probs else {}),
    }


def run_genres(args: argparse.Namespace) -> int:
    from storyterm.engine.prompt import genre_label

    loaded = _load(args)
    genres = loaded.genres
    if not genres:
        word_genres = _user_config().word_genres
        example = word_genres.header(word_genres.genres[0])
        print(f"{PROG}: note: model {loaded.name} has no genre tokens: genres are given in words "
              f"(e.g. {example!r}; list and template in config.toml), or free mode", file=sys.stderr)
        genres = list(word_genres.genres)
    width = max(len(genre) for genre in genres)
    for genre in genres:
        print(f"{genre:<{width}}  {genre_label(genre)}")
    return EXIT_OK


def run_models(args: argparse.Namespace) -> int:
    from storyterm.engine.loading import list_models

    rows = [("MODEL", "SOURCE", "DETAILS")]
    for info in list_models():
        rows.append((info.source, info.kind, info.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for source, kind, detail in rows:
        print(f"{source:<{widths[0]}}  {kind:<{widths[1]}}  {detail}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
