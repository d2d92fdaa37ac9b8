"""``storyterm generate``: continue a story and stream it to standard output, or print one JSON object (--json).

Also what it reads besides its flags: the story (a title, --prompt or piped standard input), the genre (a genre
token or a genre in words), the lorebook file; and ``sampler_settings``, the flags over the checkpoint's defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyterm.cli.errors import EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError
from storyterm.cli.model_flags import load_named_model, user_config
from storyterm.engine.errors import SettingsError, UnknownGenreError
from storyterm.engine.settings import SamplerSettings, preset

if TYPE_CHECKING:
    from storyterm.engine.generation import GenerationResult
    from storyterm.engine.loading import LoadedModel


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
        from storyterm.engine.prompt import opening_text, title_prompt

        try:
            return opening_text(title_prompt(args.title, genre))
        except ValueError as error:
            raise UsageError(f"--title: {error}") from None
    if args.prompt is not None:
        return args.prompt
    if sys.stdin is not None and not sys.stdin.isatty():
        return _read_stdin().rstrip("\n")
    return ""


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
    config = user_config()
    loaded = load_named_model(args)
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
