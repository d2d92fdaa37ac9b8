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
* After an accept, while the story still ends with the accepted passage exactly where it was generated and
  nothing is pending, the alternatives are that passage's siblings, and switching to another one replaces its text
  at the end of the story ("I accepted too early, show me the other take"). If it has no other take, they are the
  passages generated after it that are not shown (a dismissed one comes back).
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

import operator
import uuid
from collections.abc import Mapping
from typing import Any

from storyterm.engine.settings import DEFAULT_SETTINGS, SamplerSettings
from storyterm.engine.token_probs import TokenInfo
from storyterm.story.word_count import WordCounter

from .draft_context import DraftContext
from .draft_format import FORMAT_VERSION, draft_from_dict, draft_to_dict
from .passage import (
    DraftError,
    DraftFormatError,
    NewerFormatError,
    Passage,
    check_json_values,
    context_digest,
    now_iso,
    require_str,
    stored_tokens,
)
from .undo_history import UndoHistory, View

__all__ = ["FORMAT_VERSION", "Draft", "DraftError", "DraftFormatError", "NewerFormatError", "Passage",
           "context_digest", "now_iso"]

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
        self._title = require_str("title", title)
        self._genre = None if genre is None else require_str("genre", genre)
        self._memory = require_str("memory", memory)
        self._settings = settings
        self._model_id = require_str("model_id", model_id)
        self._context = DraftContext()
        self.created_at = created_at or now_iso()
        self.updated_at = updated_at or self.created_at
        self._text = require_str("text", text)
        self._pending_id: str | None = None
        self._head_id: str | None = None
        self._passages: dict[str, Passage] = {}
        self._history = UndoHistory()
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
        self._title = require_str("title", value)
        self._touch()

    @property
    def genre(self) -> str | None:
        return self._genre

    @genre.setter
    def genre(self, value: str | None) -> None:
        self._genre = None if value is None else require_str("genre", value)
        self._touch()

    @property
    def memory(self) -> str:
        return self._memory

    @memory.setter
    def memory(self, value: str) -> None:
        self._memory = require_str("memory", value)
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
        self._model_id = require_str("model_id", value)
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

    def _shown_spot(self) -> tuple[list[Passage], bool]:
        """(the alternatives f7/f8 flip through, whether they are at the open spot): the takes of the passage shown
        at the end of the story. A pending passage is shown at the open spot; else the accepted passage the story
        ends with, while it has other takes; else the passages generated at the end (dismissed ones, or ones made
        when the story last ended this way), none of them shown yet."""
        open_spot = self._open_alternatives()
        if self._pending_id is not None:
            return open_spot, True
        head = self._accepted_spot()
        if head is not None:
            takes = [p for p in self._passages.values() if p.context_digest == head.context_digest
                     and p.context_length == head.context_length]
            if len(takes) > 1 or not open_spot:
                return takes, False
        return open_spot, True

    def alternatives(self) -> list[Passage]:
        """The takes of the passage shown at the end of the story (see ``_shown_spot``). Oldest first."""
        return self._shown_spot()[0]

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
        alternatives, at_open_spot = self._shown_spot()
        if not alternatives:
            raise DraftError("no alternatives here yet: generate one first")
        target = alternatives[index % len(alternatives)]
        if at_open_spot:
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
        require_str("text", text)
        if text == self._text:
            return
        if not (coalesce and self._history.coalescing):
            self._push("edit")
        self._text = text
        self._pending_id = None
        self._history.coalescing = True
        self._touch()

    def break_undo_group(self) -> None:
        """Make the next ``set_text`` start a new undo step (e.g. after a pause in typing)."""
        self._history.coalescing = False

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
            check_json_values(settings_dict, "settings")
        except DraftFormatError as error:
            raise TypeError(str(error)) from None
        if seed is not None:
            if isinstance(seed, bool):
                raise TypeError("seed must be a whole number or None")
            seed = operator.index(seed)  # numpy / torch integers become int
        passage = Passage(
            id=self._new_id(),
            parent_id=self._parent_for_new(),
            text=require_str("text", text),
            genre=None if genre is None else require_str("genre", genre),
            settings=settings_dict,
            seed=seed,
            model=require_str("model", model),
            created_at=now_iso(),
            stopped=bool(stopped),
            context_length=len(self._text),
            context_digest=self._text_digest(),
            tokens=stored_tokens(text, tokens),
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
        require_str("text", text)
        self._push("swap")
        if not is_pending:  # accepted at the end of the story: the new take replaces its text there
            self._text = self._text[: len(self._text) - len(source.text)]
        passage = self.add_alternative(text, genre=genre, settings=settings, seed=seed, model=model,
                                       stopped=stopped, tokens=tokens)
        self._history.drop_newest()  # add_alternative's own step: the swap is one step
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

        def scrub(view: View) -> View:
            return View(
                text=view.text,
                pending_id=None if view.pending_id in doomed else view.pending_id,
                head_id=survivor if view.head_id in doomed else view.head_id,
            )

        self._history.rewrite(scrub)
        current = scrub(self._view())
        self._pending_id, self._head_id = current.pending_id, current.head_id
        for doomed_id in doomed:
            del self._passages[doomed_id]
        self._touch()
        return len(doomed)

    # ----- undo / redo (story/undo_history.py) -----
    @property
    def can_undo(self) -> bool:
        return self._history.can_undo

    @property
    def can_redo(self) -> bool:
        return self._history.can_redo

    @property
    def undo_label(self) -> str | None:
        """What undo would revert ("edit", "accept", "generate", "switch", "dismiss")."""
        return self._history.undo_label

    @property
    def redo_label(self) -> str | None:
        return self._history.redo_label

    def undo(self) -> bool:
        return self._restore(self._history.undo(self._view()))

    def redo(self) -> bool:
        return self._restore(self._history.redo(self._view()))

    def _view(self) -> View:
        return View(self._text, self._pending_id, self._head_id)

    def _restore(self, view: View | None) -> bool:
        if view is None:
            return False
        self._text, self._pending_id, self._head_id = view.text, view.pending_id, view.head_id
        self._touch()
        return True

    def _push_switch(self, coalesce: bool) -> None:
        self._history.push_switch(self._view(), coalesce)

    def _push(self, label: str) -> None:
        self._history.push(self._view(), label)

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

    # ----- serialisation (the file format: story/draft_format.py) -----
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict in a fixed key order (the file format; see ``draft_bytes.py``)."""
        return draft_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Draft:
        """Rebuild a draft from ``to_dict`` output; raises DraftFormatError naming the first bad field."""
        return draft_from_dict(cls, data)
