"""What a draft tells the model besides its story and memory: the author's note and its depth, banned words,
stop sequences and the lorebook (issue 16). Saved in the draft file under ``"context"``.

Older drafts have no ``"context"``: they load with the defaults (nothing set). A draft that sets none of it is
written exactly as before (format version 1, no ``"context"`` key), so older storyterm versions still open it; one
that sets something is format version 2, which older versions refuse instead of dropping the lorebook on save.
A bad value in a hand-edited file falls back to the default for that field, with a warning, so the story still opens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from storyterm.engine.authors_note import DEFAULT_NOTE_DEPTH, validate_note
from storyterm.engine.errors import SettingsError
from storyterm.engine.lorebook import Lorebook
from storyterm.engine.steering import validate_steering


@dataclass(frozen=True)
class DraftContext:
    authors_note: str = ""
    authors_note_depth: int = DEFAULT_NOTE_DEPTH
    banned_words: tuple[str, ...] = ()
    stop_sequences: tuple[str, ...] = ()
    lorebook: Lorebook = Lorebook()

    def is_default(self) -> bool:
        return self == DraftContext()

    def validate(self) -> DraftContext:
        """SettingsError with a one-line message for the first bad field."""
        validate_note(self.authors_note, self.authors_note_depth)
        validate_steering(self.banned_words, self.stop_sequences)
        if not isinstance(self.lorebook, Lorebook):
            raise SettingsError("the lorebook must be a Lorebook")
        self.lorebook.validate()
        return self

    def with_changes(self, **changes: Any) -> DraftContext:
        return replace(self, **changes)

    def request_fields(self) -> dict[str, Any]:
        """The GenerationRequest keyword arguments these fields become."""
        return {"authors_note": self.authors_note, "authors_note_depth": self.authors_note_depth,
                "banned_words": self.banned_words, "stop_sequences": self.stop_sequences, "lorebook": self.lorebook}

    def to_dict(self) -> dict[str, Any]:
        return {
            "authors_note": self.authors_note,
            "authors_note_depth": self.authors_note_depth,
            "banned_words": list(self.banned_words),
            "stop_sequences": list(self.stop_sequences),
            "lorebook": self.lorebook.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Any, warnings: list[str]) -> DraftContext:
        """Lenient: each bad field is reported in ``warnings`` and left at its default."""
        if not isinstance(raw, dict):
            warnings.append("context: not an object; the author's note, banned words, stops and lorebook are empty")
            return cls()
        context = cls()
        checks = {
            "authors_note": lambda v: validate_note(v, DEFAULT_NOTE_DEPTH) or v,
            "authors_note_depth": lambda v: validate_note("", v) or v,
            "banned_words": lambda v: _texts(v) and (validate_steering(v, ()) or tuple(v)),
            "stop_sequences": lambda v: _texts(v) and (validate_steering((), v) or tuple(v)),
            "lorebook": Lorebook.from_dict,
        }
        for key, check in checks.items():
            if key not in raw:
                continue
            try:
                context = replace(context, **{key: check(raw[key])})
            except SettingsError as error:
                warnings.append(f"context: {error}; left empty")
        return context


def _texts(value: Any) -> bool:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SettingsError("expected a list of texts")
    return True
