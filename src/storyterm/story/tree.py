"""The draft's passages as a tree a writer can walk: which passage followed which, the path the story is on now,
the text of any branch, and going there. Plain data for the TUI's tree view (no Textual).

How a tree of stories fits a terminal: a story of 100 passages is 100 levels deep, so the layout does not indent
every passage. Each *line* is a passage followed by the passage that continued it, and the one after that, all
at one level (the current story is the top line). The other takes at a spot (its alternatives) are nested under
the take the line went on with; a take that was itself continued holds its own line nested under it. So depth
grows only where a branch leaves the line, and the current story reads top to bottom.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .draft import Draft, DraftError, Passage


@dataclass
class TreeEntry:
    """One passage in the layout: ``nested`` is what a tree widget shows under it (see the module docstring)."""

    passage: Passage
    on_path: bool                  # part of the story as it is now
    takes: int                     # passages generated after the same parent, this one included
    nested: list[TreeEntry] = field(default_factory=list)
    continues_line: bool = False   # nested holds the passages that continued this take (else: other takes)


def children_of(draft: Draft) -> dict[str | None, list[Passage]]:
    """Every passage's children, oldest first (``None``: the roots); one pass over the tree."""
    children: dict[str | None, list[Passage]] = {}
    for passage in draft.passages:
        children.setdefault(passage.parent_id, []).append(passage)
    return children


def path_to(draft: Draft, passage_id: str) -> list[Passage]:
    """The passages from a root down to ``passage_id``."""
    path = [draft.passage(passage_id)]
    while path[-1].parent_id is not None:
        path.append(draft.passage(path[-1].parent_id))
    path.reverse()
    return path


def current_path(draft: Draft) -> list[Passage]:
    """The passages the story is made of now, root first, ending at ``Draft.story_tip``; [] when the story has
    left the tree (edited before its first passage)."""
    tip = draft.story_tip()
    return path_to(draft, tip.id) if tip is not None else []


def story_before(draft: Draft, passage_id: str, known: dict[str, str] | None = None) -> str | None:
    """The exact story ``passage_id`` continued, rebuilt from its ancestors and their lead-ins (checked against
    the digest each passage recorded); None when it cannot be known (a draft from before lead-ins were kept, on a
    branch the story has left). ``known`` caches results between calls (passage id -> story before it)."""
    known = {} if known is None else known
    if passage_id in known:
        return known[passage_id]
    path = path_to(draft, passage_id)
    joined = _joined_lead_ins(path)
    if joined is not None:
        known[passage_id] = joined
        return joined
    story_through_parent: str | None = None
    for passage in path:
        found = known.get(passage.id)
        if found is None:
            found = _rebuild(draft, passage, story_through_parent)
            if found is not None:
                known[passage.id] = found
        story_through_parent = None if found is None else found + passage.text
    return known.get(passage_id)


def _joined_lead_ins(path: list[Passage]) -> str | None:
    """The common case in one join and one digest: every lead-in on the path recorded, every length adding up.
    (Checking each passage's digest on a long story would hash the story once per passage.)"""
    pieces: list[str] = []
    length = 0
    for index, passage in enumerate(path):
        if passage.lead_in is None:
            return None
        length += len(passage.lead_in)
        if length != passage.context_length:
            return None
        pieces.append(passage.lead_in)
        if index < len(path) - 1:
            pieces.append(passage.text)
            length += len(passage.text)
    story = "".join(pieces)
    return story if path[-1].continues(story) else None


def _rebuild(draft: Draft, passage: Passage, story_through_parent: str | None) -> str | None:
    candidates = []
    if passage.lead_in is not None and (story_through_parent is not None or passage.parent_id is None):
        candidates.append((story_through_parent or "") + passage.lead_in)
    if story_through_parent is not None and len(story_through_parent) == passage.context_length:
        candidates.append(story_through_parent)  # generated right after its parent
    if len(draft.text) >= passage.context_length:
        candidates.append(draft.text[: passage.context_length])  # on the story's own path
    for candidate in candidates:
        if passage.continues(candidate):
            return candidate
    return None


def story_through(draft: Draft, passage_id: str, known: dict[str, str] | None = None) -> str | None:
    """The story as it reads at the end of ``passage_id`` (None: see ``story_before``)."""
    before = story_before(draft, passage_id, known)
    return None if before is None else before + draft.passage(passage_id).text


def go_to(draft: Draft, passage_id: str) -> Passage:
    """Make the path to ``passage_id`` the story (one undo step); DraftError when its text is not known."""
    before = story_before(draft, passage_id)
    if before is None:
        raise DraftError("the story before this passage was not kept (a draft from an older storyterm), "
                         "so it cannot be shown; its own text is in the preview")
    return draft.make_current(passage_id, before)


def tree_layout(draft: Draft) -> list[TreeEntry]:
    """The top line of the tree (the current story first; see the module docstring). Every passage appears
    exactly once. Runs in one pass over the passages plus the layout itself."""
    children = children_of(draft)
    on_path = {p.id for p in current_path(draft)}
    height = _heights(draft, children)

    def main_take(takes: list[Passage]) -> Passage | None:
        """The take a line goes on with: the one on the story's path, else the longest continued one."""
        if not takes:
            return None
        return max(takes, key=lambda p: (p.id in on_path, height[p.id], p.accepted, -takes.index(p)))

    def entry(passage: Passage, takes: int) -> TreeEntry:
        return TreeEntry(passage, passage.id in on_path, takes)

    # A line is filled iteratively (a long story is a long line, and a branch of a branch must not recurse).
    top: list[TreeEntry] = []
    work: list[tuple[list[TreeEntry], Passage | None, list[Passage]]] = [(top, main_take(children.get(None, [])),
                                                                          children.get(None, []))]
    while work:
        into, passage, takes = work.pop()
        while passage is not None:
            line_entry = entry(passage, len(takes))
            into.append(line_entry)
            for other in takes:
                if other is passage:
                    continue
                side = entry(other, len(takes))
                line_entry.nested.append(side)
                side_children = children.get(other.id, [])
                if side_children:
                    side.continues_line = True
                    work.append((side.nested, main_take(side_children), side_children))
            takes = children.get(passage.id, [])
            passage = main_take(takes)
    return top


def _heights(draft: Draft, children: dict[str | None, list[Passage]]) -> dict[str, int]:
    """Longest chain of passages below each passage (0 for a leaf); children come after parents in the draft."""
    height: dict[str, int] = {}
    for passage in reversed(draft.passages):
        height[passage.id] = max((height[c.id] + 1 for c in children.get(passage.id, [])), default=0)
    return height


def first_words(text: str, width: int) -> str:
    """The start of a passage on one line, at most ``width`` characters, cut after a whole word with "…"."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    if width <= 1:
        return "…"[:width]
    cut = flat[: width - 1]
    space = cut.rfind(" ")
    if space >= width // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def word_count(text: str) -> int:
    return len(text.split())
