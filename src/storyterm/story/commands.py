"""CLI subcommands of the story package: ``storyterm drafts``, ``storyterm export`` and ``storyterm import``.

``storyterm.cli.parsers`` calls :func:`register` with its subparsers; every subparser sets ``func`` to a handler
``(args) -> int``. Expected failures raise StorytermError subclasses, which the CLI prints as one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from storyterm.engine.errors import StorytermError

from .draft_bytes import parse_draft, read_limited
from .export import EXPORT_FORMATS, export_draft, format_for, import_text, render
from .file_errors import DraftFileError
from .store import DRAFT_SUFFIX, DraftInfo, create_draft_file, default_drafts_dir, list_drafts, load_draft


class StoryCommandError(StorytermError):
    """A bad argument to one of these commands."""


class DraftNotFoundError(StoryCommandError):
    """The DRAFT argument names no file and no draft in the drafts folder (or several)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    drafts = subparsers.add_parser("drafts", help="list saved drafts", description="List saved drafts, newest first.")
    drafts.add_argument(
        "--folder", type=Path, default=None, help="drafts folder (default: storyterm's user data folder)"
    )
    drafts.set_defaults(func=run_drafts)

    export = subparsers.add_parser(
        "export",
        help="export a draft as Markdown or plain text",
        description="Export a draft's story (title, genre, text) as Markdown or plain text.",
    )
    export.add_argument("draft", metavar="DRAFT", help="a draft file, or the file name or title of a saved draft")
    export.add_argument("--format", choices=EXPORT_FORMATS, default=None,
                        help="md or txt (default: from the -o suffix, else md)")
    export.add_argument("-o", "--output", type=Path, default=None, help="write here instead of standard output")
    export.add_argument("--force", action="store_true",
                        help="replace an existing -o file (a draft file is never replaced)")
    export.add_argument("--folder", type=Path, default=None, help="drafts folder to look DRAFT up in")
    export.set_defaults(func=run_export)

    importer = subparsers.add_parser(
        "import", help="import a plain-text file as a new draft",
        description="Create a new draft whose story is the text of a UTF-8 .txt file.",
    )
    importer.add_argument("text_file", metavar="TEXT_FILE", type=Path, help="the .txt file to import")
    importer.add_argument("--title", default=None, help="draft title (default: from the file name)")
    importer.add_argument("-g", "--genre", default=None, help="genre to record with the draft (e.g. horror)")
    importer.add_argument("--folder", type=Path, default=None, help="drafts folder to create it in")
    importer.set_defaults(func=run_import)


def run_drafts(args: argparse.Namespace) -> int:
    folder = args.folder if args.folder is not None else default_drafts_dir()
    infos = list_drafts(folder)
    if not infos:
        print(f"No drafts in {folder}.")
        return 0
    print(format_table(infos))
    return 0


def format_table(infos: list[DraftInfo]) -> str:
    rows = [("MODIFIED", "WORDS", "GENRE", "TITLE", "FILE")]
    for info in infos:
        modified = info.modified.astimezone().strftime("%Y-%m-%d %H:%M")
        name = printable(info.path.name)
        if info.error:
            rows.append((modified, "-", "-", _clip(f"(unreadable: {info.error})", 40), name))
        else:
            rows.append((modified, str(info.words), printable(info.genre or "-"), _clip(info.title, 40), name))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [row[i].rjust(widths[i]) if i == 1 else row[i].ljust(widths[i]) for i in range(len(widths))]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences that set the window title or clear
    the screen) are shown as ``\\x1b``-style escapes instead of being sent."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _clip(text: str, width: int) -> str:
    text = printable(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def resolve_draft(name: str, folder: Path | None = None) -> Path:
    """An existing file path, else a draft in ``folder`` whose file name (with or without .json) or title
    matches ``name`` (case-insensitive)."""
    candidate = Path(name).expanduser()
    if candidate.is_file():
        return candidate
    folder = folder if folder is not None else default_drafts_dir()
    for file_name in (name, name + DRAFT_SUFFIX):
        path = folder / file_name
        if path.is_file():
            return path
    wanted = " ".join(name.split()).casefold()
    matches = [
        info.path
        for info in list_drafts(folder)
        if not info.error and " ".join(info.title.split()).casefold() == wanted
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(p.name for p in matches)
        raise DraftNotFoundError(f"several drafts are titled {name!r} ({names}); give the file name")
    raise DraftNotFoundError(f"no draft {name!r}: not a file, and no draft with that name or title in {folder}")


def run_export(args: argparse.Namespace) -> int:
    path = resolve_draft(args.draft, args.folder)
    draft = load_draft(path)
    if args.output is None:
        sys.stdout.write(render(draft, args.format or "md"))
        return 0
    check_export_target(args.output, path, force=args.force)
    fmt = format_for(args.output, args.format)
    export_draft(draft, args.output, fmt)
    print(f"Exported {draft.title!r} as {fmt} to {args.output}", file=sys.stderr)
    return 0


def check_export_target(output: Path, draft_path: Path, *, force: bool) -> None:
    """An export never replaces a draft (its passages and history would be gone, with no backup), and replaces
    any other existing file only with ``--force``."""
    if not os.path.lexists(output):
        return
    if _same_file(output, draft_path):
        raise StoryCommandError(f"{output}: is the draft being exported; choose another -o file")
    if os.path.isdir(output):
        raise StoryCommandError(f"{output}: is a folder; give a file name")
    try:
        parse_draft(read_limited(output), output)
    except DraftFileError:
        pass  # not a draft: replaceable with --force
    else:
        raise StoryCommandError(f"{output}: is a storyterm draft; exports never replace drafts")
    if not force:
        raise StoryCommandError(f"{output}: exists; pass --force to replace it")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def run_import(args: argparse.Namespace) -> int:
    genre = None
    if args.genre is not None:
        from storyterm.engine.prompt import normalize_genre

        try:
            genre = normalize_genre(args.genre)
        except ValueError as error:
            raise StoryCommandError(f"--genre: {error}") from None
    draft = import_text(args.text_file, title=args.title, genre=genre)
    path = create_draft_file(draft, args.folder)
    print(f"Imported {args.text_file} as {draft.title!r} ({draft.word_count} words): {path}")
    return 0
