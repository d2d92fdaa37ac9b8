"""``storyterm genres`` (the model's genres, or config.toml's genres in words) and ``storyterm models``."""

from __future__ import annotations

import argparse
import sys

from storyterm.cli.errors import EXIT_OK, PROG
from storyterm.cli.model_flags import load_named_model, user_config


def run_genres(args: argparse.Namespace) -> int:
    from storyterm.engine.prompt import genre_label

    loaded = load_named_model(args)
    genres = loaded.genres
    if not genres:
        word_genres = user_config().word_genres
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
