"""A draft: the story text, its settings, and the append-only tree of every passage the model generated.

How the writer's free edits and the tree fit together:

* ``Draft.text`` (the story) is authoritative. The writer may change any of it at any time (``set_text``).
* Every generation becomes a :class:`Passage` that remembers the story it continued (its length and a SHA-256
  digest of it, ``context_length`` / ``context_digest``). The *alternatives at a spot* are exactly the passages
  generated from the same story text, so regenerate adds a sibling, and if the writer edits the story and later
  returns to the same text, the alternatives made there come back.
* ``pending`` is the alternative shown after the story but not yet part of it. ``accept`` appends its text to the
  story. Editing the story hides the pending passage (it stays in the tree; the story no longer ends where it was
  generated).
* After an accept, while the story still ends with the accepted passage exactly where it was generated, the
  alternatives are that passage's siblings, and switching to another one replaces its text at the end of the
  story ("I accepted too early, show me the other take").
* ``parent_id`` of a new passage is the latest accepted passage whose text still lies unchanged in the story
  (walking up from the last accepted one), else ``None``: the tree shows which take followed which.
* Nothing leaves the tree except through :meth:`Draft.delete_branch`, which the writer asks for on purpose (the
  TUI confirms first). Undo and redo only move the view (story text, pending passage, last accepted passage);
  they never remove a node. ``Passage.accepted`` means "was accepted at some point"; undo does not clear it.

Undo steps: consecutive ``set_text`` calls coalesce into one step (the TUI may send the whole editor text on every
keystroke); any other operation, or ``set_text(..., coalesce=False)``, or :meth:`Draft.break_undo_group`, starts a
new step. Accept, generate (``add_alternative``), switch (``select_alternative``) and dismiss are one step each.
"""

from __future__ import annotations

import hashlib
import math
import operator
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from storyterm.engine.errors import SettingsError, StorytermError
from storyterm.engine.settings import DEFAULT_SETTINGS, SamplerSettings
from storyterm.engine.token_probs import TokenInfo
from storyterm.story.word_count import WordCounter

from .token_data import decode_tokens, encode_tokens

from .draft_context import DraftContext

FORMAT_VERSION = 2  # 2 adds "context" (story/draft_context.py); a draft without it is still written as 1
MAX_UNDO_STEPS = 500


class DraftError(StorytermError):
    """An operation that makes no sense in the draft's current state (nothing to accept, unknown passage, …)."""


class DraftFormatError(StorytermError, ValueError):
    """Data given to ``Draft.from_dict`` is not a valid draft; the message names the field and the problem."""


class NewerFormatError(DraftFormatError):
    """The data was written by a newer storyterm (a ``format_version`` this version cannot read)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def context_digest(text: str) -> str:
    """The identity of a spot in the story: SHA-256 of the story text a passage continued."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Passage:
    """One generation: a node of the append-only tree."""

    id: str
    parent_id: str | None
    text: str
    genre: str | None
    settings: dict
    seed: int | None
    model: str
    created_at: str
    accepted: bool = False  # was accepted into the story at some point
    stopped: bool = False  # cut short by the writer
    context_length: int = 0  # length of the story this passage continued
    context_digest: str = ""  # context_digest() of that story: equal digests = alternatives at one spot
    # Optional, absent from older files: the tokens and their probabilities (story/token_data.py), and for a token
    # swap where it branched: {"from": passage id, "token": index of the swapped token}.
    tokens: dict | None = None
    branch: dict | None = None
    # The story between the parent's end and this passage (for a root: all of it), so the tree view can rebuild
    # any branch's text; None in drafts written before it was recorded (story.tree recovers what it can).
    lead_in: str | None = None

    def continues(self, story: str) -> bool:
        """Whether this passage was generated right after exactly ``story``."""
        return len(story) == self.context_length and context_digest(story) == self.context_digest

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for optional in _OPTIONAL_PASSAGE_FIELDS:
            if data[optional] is None:
                del data[optional]
        return data

    def token_infos(self) -> tuple[TokenInfo, ...] | None:
        """The stored tokens (texts joined = ``text``), or None when the passage has none."""
        return decode_tokens(self.tokens, self.text) if self.tokens is not None else None


_OPTIONAL_PASSAGE_FIELDS = ("tokens", "branch", "lead_in")


@dataclass(frozen=True)
class _View:
    """What undo/redo restore. Nodes of the tree are not part of it, so undo can never remove one."""

    text: str
    pending_id: str | None
    head_id: str | None


@dataclass(frozen=True)
class _Step:
    view: _View
    label: str


class Draft:
    """The story being written, with every generated alternative kept. See the module docstring."""

    def __init__(
        self,
        title: str = "Untitled",
        genre: str | None = None,
        *,
        memory: str = "",
        settings: SamplerSettings = DEFAULT_SETTINGS,
        model_id: str = "builtin",
        text: str = "",
        created_at: str | None = None,
        updated_at: str | None = None,
    ) -> None:
        if not isinstance(settings, SamplerSettings):
            raise TypeError(f"settings must be SamplerSettings, got {type(settings).__name__}")
        self._title = _require_str("title", title)
        self._genre = None if genre is None else _require_str("genre", genre)
        self._memory = _require_str("memory", memory)
        self._settings = settings
        self._model_id = _require_str("model_id", model_id)
        self._context = DraftContext()
        self.created_at = created_at or now_iso()
        self.updated_at = updated_at or self.created_at
        self._text = _require_str("text", text)
        self._pending_id: str | None = None
        self._head_id: str | None = None
        self._passages: dict[str, Passage] = {}
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        # True while the newest undo step is a run of alternative switches with nothing else in between: browsing
        # alternatives (f7/f8 again and again) is one undo step, so it never buries the writer's edits.
        self._browsing = False
        self._coalescing = False
        self._digest_cache: tuple[str, str] | None = None
        self._word_counter = WordCounter()
        # What from_dict had to repair (shown to the writer once; not saved).
        self.load_warnings: list[str] = []
        # Bumped on every change (not saved): the autosaver compares it with the revision it last wrote.
        self.revision = 0

    # ----- plain attributes (setters count as changes for autosave) -----
    @property
    def title(self) -> str:
        return self._title

    @title.setter
    def title(self, value: str) -> None:
        self._title = _require_str("title", value)
        self._touch()

    @property
    def genre(self) -> str | None:
        return self._genre

    @genre.setter
    def genre(self, value: str | None) -> None:
        self._genre = None if value is None else _require_str("genre", value)
        self._touch()

    @property
    def memory(self) -> str:
        return self._memory

    @memory.setter
    def memory(self, value: str) -> None:
        self._memory = _require_str("memory", value)
        self._touch()

    @property
    def settings(self) -> SamplerSettings:
        return self._settings

    @settings.setter
    def settings(self, value: SamplerSettings) -> None:
        if not isinstance(value, SamplerSettings):
            raise TypeError(f"settings must be SamplerSettings, got {type(value).__name__}")
        self._settings = value
        self._touch()

    @property
    def context(self) -> DraftContext:
        """Author's note and depth, banned words, stop sequences, lorebook."""
        return self._context

    @context.setter
    def context(self, value: DraftContext) -> None:
        if not isinstance(value, DraftContext):
            raise TypeError(f"context must be DraftContext, got {type(value).__name__}")
        self._context = value
        self._touch()

    @property
    def model_id(self) -> str:
        return self._model_id

    @model_id.setter
    def model_id(self, value: str) -> None:
        self._model_id = _require_str("model_id", value)
        self._touch()

    # ----- reading -----
    @property
    def text(self) -> str:
        """The story: accepted passages and the writer's edits, without the pending passage."""
        return self._text

    @property
    def pending(self) -> Passage | None:
        """The alternative shown at the end of the story, not yet accepted."""
        return self._passages.get(self._pending_id) if self._pending_id else None

    @property
    def text_with_pending(self) -> str:
        """The story followed by the pending passage: what the editor shows."""
        pending = self.pending
        return self._text + pending.text if pending else self._text

    @property
    def passages(self) -> list[Passage]:
        """Every passage in the tree, oldest first."""
        return list(self._passages.values())

    def passage(self, passage_id: str) -> Passage:
        try:
            return self._passages[passage_id]
        except KeyError:
            raise DraftError(f"no passage with id {passage_id!r} in this draft") from None

    @property
    def last_accepted(self) -> Passage | None:
        return self._passages.get(self._head_id) if self._head_id else None

    @property
    def regenerate_start(self) -> int | None:
        """Where regenerating the passage accepted last starts (an index into ``text``): while nothing is pending,
        nothing else was generated at the end, and the story still ends with that passage where it was generated.
        ``None`` otherwise (then a regenerate is a new passage at the end)."""
        if self.pending is not None or self._open_alternatives():
            return None
        head = self._accepted_spot()
        return None if head is None else len(self._text) - len(head.text)

    @property
    def word_count(self) -> int:
        return self._word_counter.count(self._text)

    def placed_passages(self) -> list[tuple[int, Passage]]:
        """(offset in ``text_with_pending``, passage) for the pending passage and the accepted ones whose text still
        lies unchanged where it was generated (walking up from the last accepted one), story order."""
        placed = []
        pending = self.pending
        if pending is not None:
            placed.append((len(self._text), pending))
        passage = self.last_accepted
        seen: set[str] = set()
        while passage is not None and passage.id not in seen:
            seen.add(passage.id)
            start = passage.context_length
            if self._text[start : start + len(passage.text)] == passage.text and passage.text:
                placed.append((start, passage))
            passage = self._passages.get(passage.parent_id) if passage.parent_id else None
        return sorted(placed, key=lambda item: item[0])

    def children(self, passage_id: str | None) -> list[Passage]:
        """Passages whose parent is ``passage_id`` (``None``: the roots)."""
        return [p for p in self._passages.values() if p.parent_id == passage_id]

    # ----- navigation -----
    def _text_digest(self) -> str:
        """context_digest(text), computed once per story text (the TUI asks on every keystroke)."""
        cached = self._digest_cache
        if cached is not None and cached[0] is self._text:
            return cached[1]
        digest = context_digest(self._text)
        self._digest_cache = (self._text, digest)
        return digest

    def _open_alternatives(self) -> list[Passage]:
        if not self._passages:
            return []
        digest = self._text_digest()
        length = len(self._text)
        return [p for p in self._passages.values() if p.context_length == length and p.context_digest == digest]

    def _accepted_spot(self) -> Passage | None:
        """The last accepted passage if the story still ends with it, exactly where it was generated."""
        head = self.last_accepted
        if head is None or not self._text.endswith(head.text):
            return None
        return head if head.continues(self._text[: len(self._text) - len(head.text)]) else None

    def alternatives(self) -> list[Passage]:
        """The siblings at the open spot (end of the story), or, if none were generated there, the siblings of
        the last accepted passage while the story still ends with it. Oldest first."""
        open_spot = self._open_alternatives()
        if open_spot:
            return open_spot
        head = self._accepted_spot()
        if head is None:
            return []
        return [p for p in self._passages.values() if p.context_digest == head.context_digest
                and p.context_length == head.context_length]

    @property
    def alternative_count(self) -> int:
        return len(self.alternatives())

    @property
    def alternative_index(self) -> int | None:
        """Position of the shown alternative in ``alternatives()`` (the pending one, else the accepted one at
        the end of the story); ``None`` when none is shown."""
        shown = self._pending_id or self._head_id
        for index, passage in enumerate(self.alternatives()):
            if passage.id == shown:
                return index
        return None

    def select_alternative(self, index: int, *, coalesce: bool = True) -> Passage:
        """Show alternative ``index`` (wraps around, so ``index + 1`` / ``- 1`` cycle). At the open spot it
        becomes the pending passage; at an accepted spot it replaces the accepted text at the end of the story.
        Consecutive switches are one undo step; ``coalesce=False`` makes this one a step of its own."""
        open_spot = self._open_alternatives()
        alternatives = open_spot or self.alternatives()
        if not alternatives:
            raise DraftError("no alternatives here yet: generate one first")
        target = alternatives[index % len(alternatives)]
        if open_spot:
            if target.id != self._pending_id:
                self._push_switch(coalesce)
                self._pending_id = target.id
                self._touch()
            return target
        head = self._accepted_spot()
        assert head is not None  # alternatives() was not empty
        if target.id != head.id:
            self._push_switch(coalesce)
            self._text = self._text[: len(self._text) - len(head.text)] + target.text
            self._head_id = target.id
            target.accepted = True
            self._touch()
        return target

    # ----- editing -----
    def set_text(self, text: str, *, coalesce: bool = True) -> None:
        """The writer changed the story (the TUI sends the whole editor text, pending passage excluded).

        Consecutive calls coalesce into one undo step unless ``coalesce=False``. A pending passage is hidden
        (it stays in the tree) because the story no longer ends where it was generated.
        """
        _require_str("text", text)
        if text == self._text:
            return
        if not (coalesce and self._coalescing):
            self._push("edit")
        self._text = text
        self._pending_id = None
        self._coalescing = True
        self._touch()

    def break_undo_group(self) -> None:
        """Make the next ``set_text`` start a new undo step (e.g. after a pause in typing)."""
        self._coalescing = False

    def add_alternative(
        self,
        text: str,
        *,
        genre: str | None,
        settings: SamplerSettings | Mapping[str, Any],
        seed: int | None,
        model: str,
        stopped: bool = False,
        tokens: tuple[TokenInfo, ...] | None = None,
    ) -> Passage:
        """Record a finished or stopped generation that continued the current story; it becomes the pending
        passage. Called again at the same spot it adds a sibling (regenerate). ``tokens``: its tokens with their
        probabilities (their texts must join to ``text``; otherwise they are not kept)."""
        # Checked here, not at save time: whatever enters the tree must save and load again.
        settings_dict = settings.to_dict() if isinstance(settings, SamplerSettings) else dict(settings)
        try:
            _check_json_values(settings_dict, "settings")
        except DraftFormatError as error:
            raise TypeError(str(error)) from None
        if seed is not None:
            if isinstance(seed, bool):
                raise TypeError("seed must be a whole number or None")
            seed = operator.index(seed)  # numpy / torch integers become int
        passage = Passage(
            id=self._new_id(),
            parent_id=self._parent_for_new(),
            text=_require_str("text", text),
            genre=None if genre is None else _require_str("genre", genre),
            settings=settings_dict,
            seed=seed,
            model=_require_str("model", model),
            created_at=now_iso(),
            stopped=bool(stopped),
            context_length=len(self._text),
            context_digest=self._text_digest(),
            tokens=_stored_tokens(text, tokens),
        )
        parent = self._passages.get(passage.parent_id) if passage.parent_id else None
        passage.lead_in = self._text[parent.context_length + len(parent.text):] if parent else self._text
        self._push("generate")
        self._passages[passage.id] = passage
        self._pending_id = passage.id
        self._touch()
        return passage

    def add_swap(self, source_id: str, token_index: int, text: str, *, tokens: tuple[TokenInfo, ...] | None,
                 genre: str | None, settings: SamplerSettings | Mapping[str, Any], seed: int | None, model: str,
                 stopped: bool = False) -> Passage:
        """A token swap's result: a sibling of ``source_id`` (same spot) that records where it branched. It takes
        the source's place on screen: the pending passage, or the accepted one at the end of the story. One undo
        step; the source stays in the tree."""
        source = self.passage(source_id)
        is_pending = source.id == self._pending_id
        if not self.can_swap(source_id):
            raise DraftError("a token can only be swapped in the newest passage (pending, or accepted last)")
        _require_str("text", text)
        self._push("swap")
        if not is_pending:  # accepted at the end of the story: the new take replaces its text there
            self._text = self._text[: len(self._text) - len(source.text)]
        passage = self.add_alternative(text, genre=genre, settings=settings, seed=seed, model=model,
                                       stopped=stopped, tokens=tokens)
        self._undo.pop()  # add_alternative's own step: the swap is one step
        passage.branch = {"from": source.id, "token": operator.index(token_index)}
        if not is_pending:
            self._text += passage.text
            self._head_id, self._pending_id = passage.id, None
            passage.accepted = True
        return passage

    def can_swap(self, passage_id: str) -> bool:
        """Whether ``add_swap`` takes this passage: the pending one, or the accepted one ending the story."""
        head = self._accepted_spot()
        return passage_id == self._pending_id or (head is not None and head.id == passage_id)

    def accept(self) -> None:
        """The pending passage becomes part of the story."""
        pending = self.pending
        if pending is None:
            raise DraftError("nothing to accept: there is no pending passage")
        self._push("accept")
        self._text += pending.text
        self._head_id = pending.id
        self._pending_id = None
        pending.accepted = True
        self._touch()

    def dismiss(self) -> None:
        """Hide the pending passage; it stays in the tree and ``select_alternative`` shows it again."""
        if self._pending_id is None:
            return
        self._push("dismiss")
        self._pending_id = None
        self._touch()

    def story_tip(self) -> Passage | None:
        """Where the story now is in the tree: the pending passage, else the latest accepted passage whose text
        still lies unchanged in the story (the parent a new passage would get)."""
        return self.pending or self._passages.get(self._parent_for_new() or "")

    def make_current(self, passage_id: str, context: str) -> Passage:
        """The tree view's "go there": the story becomes ``context`` (the story the passage continued, see
        ``story.tree.story_before``) followed by the passage, which counts as accepted; new passages continue
        after it. One undo step, which returns to where the writer was."""
        passage = self.passage(passage_id)
        if not passage.continues(context):
            raise DraftError("that is not the story this passage continued")
        text = context + passage.text
        if (text, passage.id, None) == (self._text, self._head_id, self._pending_id):
            return passage
        self._push("go to")
        self._text, self._head_id, self._pending_id = text, passage.id, None
        passage.accepted = True
        self._touch()
        return passage

    def delete_branch(self, passage_id: str) -> int:
        """Remove a passage and everything generated after it (its descendants) from the tree, on the writer's
        explicit request. The story text is not changed. This cannot be undone; returns how many were removed."""
        self.passage(passage_id)
        doomed = {passage_id}
        for passage in self._passages.values():  # oldest first, so parents are seen before children
            if passage.parent_id in doomed:
                doomed.add(passage.id)
        survivor = self._passages[passage_id].parent_id

        def scrub(view: _View) -> _View:
            return _View(
                text=view.text,
                pending_id=None if view.pending_id in doomed else view.pending_id,
                head_id=survivor if view.head_id in doomed else view.head_id,
            )

        self._undo = [_Step(scrub(s.view), s.label) for s in self._undo]
        self._redo = [_Step(scrub(s.view), s.label) for s in self._redo]
        current = scrub(self._view())
        self._pending_id, self._head_id = current.pending_id, current.head_id
        for doomed_id in doomed:
            del self._passages[doomed_id]
        self._coalescing = False
        self._browsing = False
        self._touch()
        return len(doomed)

    # ----- undo / redo -----
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        """What undo would revert ("edit", "accept", "generate", "switch", "dismiss")."""
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    def undo(self) -> bool:
        if not self._undo:
            return False
        step = self._undo.pop()
        self._redo.append(_Step(self._view(), step.label))
        self._restore(step.view)
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        step = self._redo.pop()
        self._undo.append(_Step(self._view(), step.label))
        self._restore(step.view)
        return True

    def _view(self) -> _View:
        return _View(self._text, self._pending_id, self._head_id)

    def _restore(self, view: _View) -> None:
        self._text, self._pending_id, self._head_id = view.text, view.pending_id, view.head_id
        self._coalescing = False
        self._browsing = False
        self._touch()

    def _push_switch(self, coalesce: bool) -> None:
        if coalesce and self._browsing and self._undo and self._undo[-1].label == "switch":
            self._redo.clear()
            return
        self._push("switch")
        self._browsing = coalesce

    def _push(self, label: str) -> None:
        self._browsing = False
        self._undo.append(_Step(self._view(), label))
        if len(self._undo) > MAX_UNDO_STEPS:
            del self._undo[: len(self._undo) - MAX_UNDO_STEPS]  # oldest view only; the tree keeps every passage
        self._redo.clear()
        self._coalescing = False

    def _touch(self) -> None:
        self.revision += 1
        self.updated_at = now_iso()

    def _new_id(self) -> str:
        while True:
            candidate = uuid.uuid4().hex[:12]
            if candidate not in self._passages:
                return candidate

    def _parent_for_new(self) -> str | None:
        """The latest accepted passage whose text still lies unchanged in the story, walking up from the head."""
        passage = self.last_accepted
        while passage is not None:
            end = passage.context_length + len(passage.text)
            if (
                len(self._text) >= end
                and self._text[passage.context_length : end] == passage.text
                and passage.continues(self._text[: passage.context_length])
            ):
                return passage.id
            passage = self._passages.get(passage.parent_id) if passage.parent_id else None
        return None

    # ----- serialisation -----
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict in a fixed key order (the file format; see ``store.py``)."""
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
            "passages": self._passage_dicts(),
        })
        return data

    def _passage_dicts(self) -> list[dict[str, Any]]:
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

    @classmethod
    def from_dict(cls, data: Any) -> Draft:
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
            passage = _passage(raw, f"passages[{index}]")
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


def _require_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value


# ----- validation helpers for from_dict -----
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


def _check_json_values(value: Any, where: str, depth: int = 0) -> None:
    """Passage settings are free-form JSON; refuse what cannot be written back (NaN, odd types, deep nesting)."""
    if depth > 20:
        raise DraftFormatError(f"{where} is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DraftFormatError(f"{where} has a non-string key")
            _check_json_values(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_values(item, where, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise DraftFormatError(f"{where} holds a number that is not finite")
    elif value is not None and not isinstance(value, (str, int, bool)):
        raise DraftFormatError(f"{where} holds a value of type {type(value).__name__}")


def _passage(raw: Any, where: str) -> Passage:
    if not isinstance(raw, dict):
        raise DraftFormatError(f"{where} must be an object, found {_json_type(raw)}")
    passage_id = _field(raw, "id", str, where=where)
    if not passage_id:
        raise DraftFormatError(f"{where}.id is empty")
    settings = _field(raw, "settings", dict, where=where)
    _check_json_values(settings, f"{where}.settings")
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


def _stored_tokens(text: str, tokens: tuple[TokenInfo, ...] | None) -> dict | None:
    if not tokens or "".join(t.text for t in tokens) != text:
        return None
    return encode_tokens(tokens)


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
