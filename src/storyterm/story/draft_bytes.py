"""A draft file's bytes and the Draft they hold, both ways.

File format: ``Draft.to_dict()`` as UTF-8 JSON: one top-level field per line in a fixed order
(``format_version`` first), one passage per line. The same draft always gives the same bytes.

Reading refuses, with a one-line :class:`DraftFileError` naming the file and the cause: a missing file, a file over
``MAX_DRAFT_BYTES`` (checked before reading), bytes that are not UTF-8, invalid JSON, a newer or unknown
``format_version``, or content that is not a draft.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .draft import Draft, DraftFormatError, NewerFormatError
from .file_errors import DraftFileError, os_cause

MAX_DRAFT_BYTES = 50 * 1024 * 1024


def read_limited(path: Path, limit: int = MAX_DRAFT_BYTES) -> bytes:
    """The file's bytes, refusing a missing file, a folder or a file larger than ``limit`` before reading it.
    Raises DraftFileError; does not remember refusals."""
    try:
        size = os.stat(path).st_size
        if os.path.isdir(path):
            raise DraftFileError(path, "it is a folder, not a file")
        if size > limit:
            raise DraftFileError(path, f"the file is {_size(size)}; files over {_size(limit)} are refused")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)  # the file may have grown since stat
    except OSError as error:
        raise DraftFileError(path, f"cannot read it: {os_cause(error)}") from None
    if len(data) > limit:
        raise DraftFileError(path, f"the file is over {_size(limit)}; such files are refused")
    return data


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def decode_utf8(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DraftFileError(
            path, f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def parse_draft(data: bytes, path: Path | str = "<draft>") -> Draft:
    """Bytes of a draft file → Draft; every problem becomes DraftFileError(path, cause)."""
    path = Path(path)
    text = decode_utf8(path, data)
    try:
        raw = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise DraftFileError(path, f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    except RecursionError:
        raise DraftFileError(path, "not a storyterm draft: JSON nested too deeply") from None
    except ValueError as error:  # NaN/Infinity, integers with too many digits
        raise DraftFileError(path, f"not valid JSON ({error})") from None
    try:
        return Draft.from_dict(raw)
    except NewerFormatError as error:
        raise DraftFileError(path, str(error)) from None
    except DraftFormatError as error:
        raise DraftFileError(path, f"not a storyterm draft: {error}") from None
    except RecursionError:
        raise DraftFileError(path, "not a storyterm draft: nested too deeply") from None


def encode_draft(draft: Draft) -> bytes:
    """The file content for ``draft`` (done on the caller's thread: it reads the draft).

    One top-level field per line and one passage per line: readable and diffable, and written by the C JSON
    encoder (``indent=`` would switch to the pure-Python one, several times slower on big drafts).
    """
    data = draft.to_dict()
    try:
        return _dump_document(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8: \u-escape everything so the file stays valid and round-trips.
        return _dump_document(data, ensure_ascii=True).encode("ascii")


def _dump_document(data: dict, *, ensure_ascii: bool) -> str:
    def dump(value: object) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=False)

    lines = []
    for key, value in data.items():
        if key == "passages" and isinstance(value, list) and value:
            items = ",\n".join(f"    {dump(item)}" for item in value)
            lines.append(f"  {dump(key)}: [\n{items}\n  ]")
        else:
            lines.append(f"  {dump(key)}: {dump(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"

