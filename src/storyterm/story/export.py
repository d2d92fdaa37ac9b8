"""Export a draft as Markdown or plain text, and import a plain-text file as a new draft.

Exports hold the story only (accepted text and the writer's edits); a pending passage is not part of it.
"""

from __future__ import annotations

from pathlib import Path

from storyterm.engine.prompt import genre_label

from .atomic_write import write_atomic
from .draft import Draft
from .draft_bytes import decode_utf8, read_limited
from .file_errors import DraftFileError
from .store import create_draft_file

EXPORT_FORMATS = ("md", "txt")
MAX_IMPORT_BYTES = 20 * 1024 * 1024


def to_markdown(draft: Draft) -> str:
    """``# Title``, an italic genre line when the draft has a genre, then the story."""
    title = " ".join(draft.title.split()) or "Untitled"
    parts = [f"# {title}"]
    if draft.genre:
        parts.append(f"*Genre: {genre_label(draft.genre)}*")
    story = draft.text.strip()
    if story:
        parts.append(story)
    return "\n\n".join(parts) + "\n"


def to_plain_text(draft: Draft) -> str:
    """The title on the first line, a blank line, then the story."""
    title = " ".join(draft.title.split()) or "Untitled"
    story = draft.text.strip()
    return f"{title}\n\n{story}\n" if story else f"{title}\n"


def render(draft: Draft, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(draft)
    if fmt == "txt":
        return to_plain_text(draft)
    raise DraftFileError(Path(f"<{fmt}>"), f"unknown export format {fmt!r}; choose one of: {', '.join(EXPORT_FORMATS)}")


# File name endings and the format they mean; a name without one gets Markdown.
SUFFIX_FORMATS = {".md": "md", ".markdown": "md", ".txt": "txt", ".text": "txt", "": "md"}


def format_for(path: Path, fmt: str | None = None) -> str:
    """The explicit format, else the one the file name's ending names. An ending storyterm cannot write
    (``story.docx``) is refused: writing Markdown into it would give a file its program cannot open."""
    if fmt is not None:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise DraftFileError(
            Path(path), f"cannot write {suffix} files: export as Markdown (.md) or plain text (.txt)"
        )
    return SUFFIX_FORMATS[suffix]


def export_draft(draft: Draft, path: Path, fmt: str | None = None) -> Path:
    """Write the export atomically (a crash never leaves half a file); returns the path."""
    path = Path(path)
    content = render(draft, format_for(path, fmt))
    write_atomic(path, content.encode("utf-8"))
    return path


def import_text(path: Path, *, title: str | None = None, genre: str | None = None) -> Draft:
    """A new draft whose story is the file's text (UTF-8; Windows line ends normalised). Raises DraftFileError."""
    path = Path(path)
    text = decode_utf8(path, read_limited(path, MAX_IMPORT_BYTES))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise DraftFileError(path, "not a text file (it contains NUL bytes)")
    if title is None:
        title = " ".join(path.stem.replace("_", " ").replace("-", " ").split()) or "Untitled"
        title = title[:1].upper() + title[1:]
    return Draft(title, genre, text=text)


def import_text_file(path: Path, folder: Path | None = None, *, genre: str | None = None) -> Path:
    """Import a .txt as a new draft file in ``folder`` (default: the drafts folder); returns its path."""
    return create_draft_file(import_text(path, genre=genre), folder)
