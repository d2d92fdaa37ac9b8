"""The draft file format: ``Draft.to_dict`` / ``Draft.from_dict`` (the draft's private state is this module's to
read and fill). Reading names the first bad field; optional extras that are malformed are dropped, never a reason
to lock the writer out of the story."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from storyterm.engine.errors import SettingsError
from storyterm.engine.settings import DEFAULT_SETTINGS, SamplerSettings

from .draft_context import DraftContext
from .passage import DraftFormatError, NewerFormatError, Passage, check_json_values

if TYPE_CHECKING:
    from .draft import Draft

FORMAT_VERSION = 2  # 2 adds "context" (story/draft_context.py); a draft without it is still written as 1


def draft_to_dict(self: Draft) -> dict[str, Any]:
    """A JSON-ready dict in a fixed key order (the file format; see ``draft_bytes.py``)."""
    data = {
        "format_version": 1 if self._context.is_default() else FORMAT_VERSION,
        "title": self._title,
        "genre": self._genre,
        "memory": self._memory,
        "model_id": self._model_id,
        "created_at": self.created_at,
        "updated_at": self.updated_at,
        "settings": self._settings.to_dict(),
    }
    if not self._context.is_default():
        data["context"] = self._context.to_dict()
    data.update({
        "text": self._text,
        "pending_id": self._pending_id,
        "last_accepted_id": self._head_id,
        "passages": _passage_dicts(self),
    })
    return data

def _passage_dicts(self: Draft) -> list[dict[str, Any]]:
    """Alternatives at one spot share their lead-in: it is written once, on the first of them, so a long
    opening regenerated many times is stored once (from_dict gives it back to the others)."""
    written: dict[tuple[str | None, str], str] = {}
    result = []
    for passage in self._passages.values():
        data = passage.to_dict()
        key = (passage.parent_id, passage.context_digest)
        if passage.lead_in is None or written.get(key) == passage.lead_in:
            data.pop("lead_in", None)
        else:
            written[key] = passage.lead_in
        result.append(data)
    return result

def draft_from_dict(cls: type[Draft], data: Any) -> Draft:
    """Rebuild a draft from ``to_dict`` output; raises DraftFormatError naming the first bad field."""
    if not isinstance(data, dict):
        raise DraftFormatError(f"expected a JSON object at the top, found {_json_type(data)}")
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise DraftFormatError("missing or invalid format_version")
    if version > FORMAT_VERSION:
        raise NewerFormatError(
            f"written by a newer storyterm (format_version {version}; this version reads up to {FORMAT_VERSION})"
        )
    if version < 1:
        raise DraftFormatError(f"unknown format_version {version}")
    warnings: list[str] = []
    draft = cls(
        title=_field(data, "title", str),
        genre=_field(data, "genre", str, optional=True),
        memory=_field(data, "memory", str),
        settings=_settings(_field(data, "settings", dict), warnings),
        model_id=_field(data, "model_id", str),
        text=_field(data, "text", str),
        created_at=_field(data, "created_at", str),
        updated_at=_field(data, "updated_at", str),
    )
    if "context" in data:
        draft._context = DraftContext.from_dict(data["context"], warnings)
    raw_passages = _field(data, "passages", list)
    lead_ins: dict[tuple[str | None, str], str] = {}  # see _passage_dicts
    for index, raw in enumerate(raw_passages):
        passage = passage_from_dict(raw, f"passages[{index}]")
        key = (passage.parent_id, passage.context_digest)
        if passage.lead_in is None:
            passage.lead_in = lead_ins.get(key)
        else:
            lead_ins[key] = passage.lead_in
        if passage.id in draft._passages:
            raise DraftFormatError(f"passages[{index}].id {passage.id!r} is used twice")
        if passage.parent_id is not None and passage.parent_id not in draft._passages:
            raise DraftFormatError(
                f"passages[{index}].parent_id {passage.parent_id!r} does not name an earlier passage"
            )
        draft._passages[passage.id] = passage
    pending_id = _field(data, "pending_id", str, optional=True)
    head_id = _field(data, "last_accepted_id", str, optional=True)
    for name, value in (("pending_id", pending_id), ("last_accepted_id", head_id)):
        if value is not None and value not in draft._passages:
            raise DraftFormatError(f"{name} {value!r} does not name a passage")
    # A hand-edited story may no longer end where the pending passage was generated: hide it, keep it.
    if pending_id is not None and draft._passages[pending_id].continues(draft._text):
        draft._pending_id = pending_id
    draft._head_id = head_id
    draft.load_warnings = warnings
    draft.revision = 0
    return draft


_JSON_TYPE_NAMES = {str: "a string", dict: "an object", list: "a list", int: "a whole number", bool: "true/false"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "true/false"), (str, "a string"), (dict, "an object"), (list, "a list"),
                       (int, "a whole number"), (float, "a number")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _field(data: dict, key: str, kind: type, *, optional: bool = False, where: str = "") -> Any:
    name = f"{where}.{key}" if where else key
    if key not in data:
        raise DraftFormatError(f"missing field {name!r}")
    value = data[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        expected = _JSON_TYPE_NAMES[kind] + (" or null" if optional else "")
        raise DraftFormatError(f"field {name!r} must be {expected}, found {_json_type(value)}")
    return value


def _settings(raw: dict, warnings: list[str]) -> SamplerSettings:
    """The draft's sampler settings. A bad value (a hand edit, an older range) must not lock the writer out of
    the story: it falls back to the default for that setting, with a warning."""
    try:
        return SamplerSettings.from_dict(raw).validate()
    except (SettingsError, TypeError):
        pass
    settings = DEFAULT_SETTINGS
    known = {f.name for f in fields(SamplerSettings)}
    for key, value in raw.items():
        if key not in known:
            continue
        try:
            settings = settings.with_changes(**{key: value}).validate()
        except (SettingsError, TypeError) as error:
            warnings.append(f"settings: {error}; using {getattr(DEFAULT_SETTINGS, key)!r}")
    return settings


def passage_from_dict(raw: Any, where: str) -> Passage:
    if not isinstance(raw, dict):
        raise DraftFormatError(f"{where} must be an object, found {_json_type(raw)}")
    passage_id = _field(raw, "id", str, where=where)
    if not passage_id:
        raise DraftFormatError(f"{where}.id is empty")
    settings = _field(raw, "settings", dict, where=where)
    check_json_values(settings, f"{where}.settings")
    seed = _field(raw, "seed", int, optional=True, where=where)
    context_length = _field(raw, "context_length", int, where=where)
    if context_length < 0:
        raise DraftFormatError(f"{where}.context_length is negative")
    lead_in = _field(raw, "lead_in", str, optional=True, where=where) if "lead_in" in raw else None
    return Passage(
        id=passage_id,
        parent_id=_field(raw, "parent_id", str, optional=True, where=where),
        text=_field(raw, "text", str, where=where),
        genre=_field(raw, "genre", str, optional=True, where=where),
        settings=settings,
        seed=seed,
        model=_field(raw, "model", str, where=where),
        created_at=_field(raw, "created_at", str, where=where),
        accepted=_field(raw, "accepted", bool, where=where),
        stopped=_field(raw, "stopped", bool, where=where),
        context_length=context_length,
        context_digest=_field(raw, "context_digest", str, where=where),
        # Optional extras: malformed ones are dropped (they must never lock the writer out of the story).
        tokens=_valid_tokens(raw.get("tokens")),
        branch=_valid_branch(raw.get("branch")),
        lead_in=lead_in,
    )


def _valid_tokens(value: Any) -> dict | None:
    # Checked when read (token_data.decode_tokens): parsed JSON always writes back, and a check here would cost
    # a big draft's load time.
    return value if isinstance(value, dict) else None


def _valid_branch(value: Any) -> dict | None:
    if not isinstance(value, dict) or not isinstance(value.get("from"), str):
        return None
    token = value.get("token")
    if isinstance(token, bool) or not isinstance(token, int) or token < 0:
        return None
    return {"from": value["from"], "token": token}
