"""Turn raw story data into ``<BOS> <genre> text <EOS>`` line files with a deterministic train/eval split.

Inputs (several may be combined; each is read with ``--format``, ``auto`` by default):

* ``lines`` — files already in the training-line format (the seed's ``*.txt``);
* ``wikipedia`` — the Kaggle *Wikipedia Movie Plots* CSV (``Plot``, ``Genre``, ``Title``), mapped onto the six
  classic genres (see :mod:`training.genre_mapping`);
* ``netflix`` — the Kaggle *Netflix Movies and TV Shows* CSV (``description``, multi-label ``listed_in``);
* ``csv`` — any CSV: ``--text-column`` and ``--label-column``, optional ``--label-map``; labels without a map
  become custom genres (``"Sci-Fi & Fantasy"`` → ``sci_fi_fantasy``).

Stories are cleaned (citation marks such as ``[1]``, stray special tokens, whitespace), empty, too short and
duplicate stories are dropped, and each genre is split train/eval by a seeded hash of its text, so the same input
always gives the same split whatever its order. Writes ``train.txt``, ``eval.txt`` and ``counts.json`` and prints a
count table per genre.

Example::

    python -m training.prepare_data ../shared/data/genre_plots/6_genre_eval_data.txt --output-dir build/data/plots
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from storyterm.engine.prompt import normalize_genre

from .common import DEFAULT_DATA_DIR, DEFAULT_WORK_DIR, Story, genre_table, read_line_file, write_json, write_line_file
from .genre_mapping import CLASSIC_PRIORITY, LabelMapper, choose_genre, netflix_mapper, wikipedia_mapper

FORMATS = ("auto", "lines", "wikipedia", "netflix", "csv")
MULTI_LABEL_CHOICES = ("rarest", "first", "all")

_CITATION = re.compile(r"\[\s*(?:\d+(?:\s*[,–-]\s*\d+)*|[a-z]|citation needed|note\s*\d+|nb\s*\d+)\s*\]", re.I)
# Anything the tokenizer would read as a special token (<BOS>, <drama>, …) must not appear inside a story.
_SPECIAL_TOKEN_LIKE = re.compile(r"<(?:BOS|EOS|PAD|[a-z0-9_]+)>")


class DataError(Exception):
    """Bad input the user must fix; the message is one line."""


def clean_text(text: str) -> str:
    """Remove citation marks and special-token look-alikes, normalise whitespace."""
    text = _CITATION.sub("", text)
    text = _SPECIAL_TOKEN_LIKE.sub(" ", text)
    text = " ".join(text.split())
    # A removed mark can leave "word ." behind.
    return re.sub(r" ([.,;:!?])", r"\1", text)


@dataclass
class SourceReport:
    path: Path
    format: str
    rows: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)


@dataclass
class CsvOptions:
    text_column: str | None = None
    label_column: str | None = None
    title_column: str | None = None
    label_map: dict[str, str] | None = None
    label_separator: str | None = ","
    multi_label: str = "rarest"


def detect_format(path: Path) -> str:
    if path.suffix.lower() != ".csv":
        return "lines"
    with open(path, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), [])
    columns = {c.strip() for c in header}
    if {"Plot", "Genre"} <= columns:
        return "wikipedia"
    if {"description", "listed_in"} <= columns:
        return "netflix"
    return "csv"


def parse_label_map(value: str | None) -> dict[str, str] | None:
    """``--label-map`` is a JSON file (``{"Dramas": "drama"}``) or inline ``"Dramas=drama;Thrillers=thriller"``."""
    if not value:
        return None
    path = Path(value)
    if path.suffix.lower() == ".json" or path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"cannot read label map {value}: {error}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise DataError(f"label map {value} must be a JSON object of label → genre strings")
        return {str(k): v for k, v in data.items()}
    mapping: dict[str, str] = {}
    for pair in value.split(";"):
        if not pair.strip():
            continue
        label, sep, genre = pair.partition("=")
        if not sep or not label.strip() or not genre.strip():
            raise DataError(f"bad --label-map entry {pair!r}: use LABEL=genre;LABEL=genre or a JSON file")
        mapping[label.strip()] = genre.strip()
    return mapping


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    csv.field_size_limit(2**31 - 1)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        yield from reader


def _require_columns(path: Path, columns: Sequence[str | None]) -> None:
    with open(path, encoding="utf-8", newline="") as handle:
        header = [c.strip() for c in next(csv.reader(handle), [])]
    missing = [c for c in columns if c and c not in header]
    if missing:
        raise DataError(f"{path}: no column {', '.join(map(repr, missing))}; columns are: {', '.join(header)}")


def read_csv_source(
    path: Path, mapper: LabelMapper, options: CsvOptions, report: SourceReport, priority: Sequence[str] | None
) -> list[tuple[list[str], str]]:
    """Rows as ``(genres, cleaned text)``; rows without text or without a mapped genre are counted and skipped."""
    if not options.text_column or not options.label_column:
        raise DataError(f"{path}: a CSV needs --text-column and --label-column (or --format wikipedia/netflix)")
    _require_columns(path, [options.text_column, options.label_column, options.title_column])
    rows: list[tuple[list[str], str]] = []
    for row in tqdm(_csv_rows(path), desc=f"reading {path.name}", unit=" rows", leave=False):
        report.rows += 1
        raw_text = row.get(options.text_column) or ""
        text = clean_text(raw_text)
        if not text:
            report.skipped["empty text"] += 1
            continue
        title = (row.get(options.title_column) or "") if options.title_column else ""
        genres = mapper.genres(row.get(options.label_column) or "", title=title, text=raw_text)
        if not genres:
            report.skipped["no mapped genre"] += 1
            continue
        rows.append((genres, text))
    return rows


def resolve_multi_label(rows: list[tuple[list[str], str]], mode: str, priority: Sequence[str] | None) -> list[Story]:
    """One story per row (``rarest``/``first``), or one per genre of the row (``all``)."""
    if mode == "all":
        return [Story(genre, text) for genres, text in rows for genre in genres]
    if mode == "first":
        return [Story(genres[0], text) for genres, text in rows]
    if priority is None:
        frequency = Counter(genre for genres, _ in rows for genre in genres)
        priority = sorted(frequency, key=lambda g: (frequency[g], g))
    return [Story(choose_genre(genres, priority), text) for genres, text in rows]


def read_source(path: Path, fmt: str, options: CsvOptions) -> tuple[list[Story], SourceReport]:
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    report = SourceReport(path=path, format=fmt)
    if fmt == "lines":
        stories: list[Story] = []
        for _, story in read_line_file(path):
            report.rows += 1
            if story is None:
                report.skipped["not a <BOS> <genre> … line"] += 1
                continue
            text = clean_text(story.text)
            if not text:
                report.skipped["empty text"] += 1
                continue
            stories.append(Story(story.genre, text))
        return stories, report
    if fmt == "wikipedia":
        opts = CsvOptions("Plot", "Genre", "Title", multi_label="rarest")
        rows = read_csv_source(path, wikipedia_mapper(), opts, report, CLASSIC_PRIORITY)
        return resolve_multi_label(rows, "rarest", CLASSIC_PRIORITY), report
    if fmt == "netflix":
        opts = CsvOptions("description", "listed_in", "title", multi_label="rarest")
        rows = read_csv_source(path, netflix_mapper(), opts, report, CLASSIC_PRIORITY)
        return resolve_multi_label(rows, "rarest", CLASSIC_PRIORITY), report
    if fmt == "csv":
        mapper = LabelMapper(exact=options.label_map or {}, separator=options.label_separator)
        rows = read_csv_source(path, mapper, options, report, None)
        return resolve_multi_label(rows, options.multi_label, None), report
    raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def deduplicate(stories: Sequence[Story], min_chars: int) -> tuple[list[Story], Counter]:
    """Drop too-short stories and repeated stories (same genre and text, case ignored); the first one wins.

    The same text under two genres is kept (``--multi-label all`` produces exactly that)."""
    seen: set[tuple[str, str]] = set()
    kept: list[Story] = []
    dropped: Counter = Counter()
    for story in stories:
        if len(story.text) < min_chars:
            dropped["shorter than --min-chars"] += 1
            continue
        key = (story.genre, story.text.casefold())
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        kept.append(story)
    return kept, dropped


def split_stories(
    stories: Sequence[Story], eval_fraction: float, seed: int, min_eval_per_genre: int = 1
) -> tuple[list[Story], list[Story]]:
    """Stratified, order-independent split: in each genre the stories with the smallest seeded hash go to eval.

    A genre gets ``round(n * eval_fraction)`` eval stories, at least ``min_eval_per_genre`` (when it has more than
    that many), and always keeps at least one training story.
    """
    if not 0 <= eval_fraction < 1:
        raise DataError(f"--eval-fraction must be in [0, 1), got {eval_fraction}")
    by_genre: dict[str, list[Story]] = defaultdict(list)
    for story in stories:
        by_genre[story.genre].append(story)
    eval_ids: set[int] = set()
    for genre_stories in by_genre.values():
        n = len(genre_stories)
        if eval_fraction == 0 or n < 2:
            continue
        k = max(round(n * eval_fraction), min(min_eval_per_genre, n - 1))
        k = min(k, n - 1)
        ranked = sorted(genre_stories, key=lambda s: _hash(seed, s))
        eval_ids.update(id(s) for s in ranked[:k])
    train = [s for s in stories if id(s) not in eval_ids]
    evaluation = [s for s in stories if id(s) in eval_ids]
    return train, evaluation


def _hash(seed: int, story: Story) -> str:
    return hashlib.sha256(f"{seed}\0{story.genre}\0{story.text}".encode()).hexdigest()


def prepare(
    inputs: Sequence[Path],
    output_dir: Path,
    *,
    fmt: str = "auto",
    csv_options: CsvOptions | None = None,
    genres: Sequence[str] | None = None,
    eval_fraction: float = 0.1,
    min_eval_per_genre: int = 1,
    min_chars: int = 20,
    seed: int = 0,
) -> dict:
    """Read, clean, deduplicate and split; write the line files. Returns the summary written to counts.json."""
    options = csv_options or CsvOptions()
    stories: list[Story] = []
    reports: list[SourceReport] = []
    for path in inputs:
        source_stories, report = read_source(Path(path), fmt, options)
        report.kept = len(source_stories)
        stories.extend(source_stories)
        reports.append(report)
    if genres:
        wanted = {normalize_genre(g) for g in genres}
        outside = sum(1 for s in stories if s.genre not in wanted)
        stories = [s for s in stories if s.genre in wanted]
    else:
        outside = 0
    stories, dropped = deduplicate(stories, min_chars)
    if outside:
        dropped["genre not in --genres"] += outside
    if not stories:
        raise DataError("no stories left after cleaning; check the input format and the column/label options")
    train, evaluation = split_stories(stories, eval_fraction, seed, min_eval_per_genre)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_line_file(output_dir / "train.txt", train)
    write_line_file(output_dir / "eval.txt", evaluation)
    summary = {
        "inputs": [
            {"path": str(r.path), "format": r.format, "rows": r.rows, "kept": r.kept, "skipped": dict(r.skipped)}
            for r in reports
        ],
        "dropped": dict(dropped),
        "eval_fraction": eval_fraction,
        "seed": seed,
        "counts": {
            "train": dict(Counter(s.genre for s in train).most_common()),
            "eval": dict(Counter(s.genre for s in evaluation).most_common()),
        },
        "bytes": {
            "train": sum(len(s.text.encode()) for s in train),
            "eval": sum(len(s.text.encode()) for s in evaluation),
        },
        "table": genre_table({"train": train, "eval": evaluation}),
    }
    write_json(output_dir / "counts.json", summary)
    return summary


def prepare_builtin_data(data_dir: Path = DEFAULT_DATA_DIR, work_dir: Path = DEFAULT_WORK_DIR / "data") -> dict:
    """The data recipe of storyterm's built-in model (``--builtin-recipe``), from ``../shared/data``:

    * ``plots/``: the 1 000 Wikipedia plots, 10 % per genre held out (at least 2) as ``plots/eval.txt`` — the test
      set of the targets, never trained on;
    * ``plots-dev/``: the remaining 900 split again, 5 % as the development set the Trainer evaluates on;
    * ``netflix/``: every Netflix blurb that maps onto the six genres, all for training.
    """
    plots = data_dir / "genre_plots" / "6_genre_eval_data.txt"
    netflix = data_dir / "netflix" / "netflix_titles.csv"
    return {
        "plots": prepare([plots], work_dir / "plots", eval_fraction=0.1, min_eval_per_genre=2),
        "plots-dev": prepare([work_dir / "plots" / "train.txt"], work_dir / "plots-dev", eval_fraction=0.05),
        "netflix": prepare([netflix], work_dir / "netflix", fmt="netflix", eval_fraction=0),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.prepare_data",
        description="Make <BOS> <genre> text <EOS> line files (train.txt, eval.txt) from line files or CSVs.",
    )
    parser.add_argument("inputs", nargs="*", type=Path, help="line files (.txt) and/or CSV files")
    parser.add_argument("--builtin-recipe", action="store_true",
                        help="prepare the built-in model's data from --data-dir into build/data/{plots,plots-dev,netflix}")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"the shared data folder for --builtin-recipe (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_WORK_DIR / "data", help="where to write")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="how to read the inputs; auto: .csv by its header, anything else as line files")
    parser.add_argument("--text-column", help="CSV column with the story text (format csv)")
    parser.add_argument("--label-column", help="CSV column with the genre label(s) (format csv)")
    parser.add_argument("--title-column", help="CSV column with a title, used by keyword rules (optional)")
    parser.add_argument("--label-map", help="label → genre: a JSON file or 'Label=genre;Label=genre'. "
                        "Unmapped labels are dropped; without a map every label becomes its own genre")
    parser.add_argument("--label-separator", default=",",
                        help="separator of multi-label cells (default ','); '' for single-label cells")
    parser.add_argument("--multi-label", choices=MULTI_LABEL_CHOICES, default="rarest",
                        help="a row with several genres: keep the rarest (default), the first, or all of them")
    parser.add_argument("--genres", help="comma-separated genres to keep (default: all)")
    parser.add_argument("--eval-fraction", type=float, default=0.1, help="share of each genre held out (0.1)")
    parser.add_argument("--min-eval-per-genre", type=int, default=1,
                        help="held-out stories at least per genre, if it has more (1)")
    parser.add_argument("--min-chars", type=int, default=20, help="drop shorter stories (20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.builtin_recipe:
        try:
            from .builtin_data import prepare_builtin_data as prepare_recipe  # it builds on this module

            summaries = prepare_recipe(args.data_dir, DEFAULT_WORK_DIR / "data")
        except DataError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        for name, summary in summaries.items():
            print(f"\n{DEFAULT_WORK_DIR / 'data' / name}:\n{summary['table']}")
        return 0
    if not args.inputs:
        parser.error("give input files, or --builtin-recipe")
    try:
        options = CsvOptions(
            text_column=args.text_column,
            label_column=args.label_column,
            title_column=args.title_column,
            label_map=parse_label_map(args.label_map),
            label_separator=args.label_separator or None,
            multi_label=args.multi_label,
        )
        summary = prepare(
            args.inputs,
            args.output_dir,
            fmt=args.format,
            csv_options=options,
            genres=[g for g in (args.genres or "").split(",") if g.strip()] or None,
            eval_fraction=args.eval_fraction,
            min_eval_per_genre=args.min_eval_per_genre,
            min_chars=args.min_chars,
            seed=args.seed,
        )
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for source in summary["inputs"]:
        skipped = ", ".join(f"{n} {why}" for why, n in source["skipped"].items()) or "none"
        print(f"{source['path']} ({source['format']}): {source['rows']} rows, {source['kept']} stories, "
              f"skipped: {skipped}")
    dropped = ", ".join(f"{n} {why}" for why, n in summary["dropped"].items()) or "none"
    print(f"dropped after cleaning: {dropped}")
    print(summary["table"])
    print(f"wrote {args.output_dir / 'train.txt'}, {args.output_dir / 'eval.txt'}, {args.output_dir / 'counts.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
