"""One table of the app's actions: the key bindings, the F1 help, the command palette and the config's `[keys]`
ids are all made from it, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding

from storyterm.config import DEFAULT_KEYS


@dataclass(frozen=True)
class Action:
    id: str                       # the config's [keys] id (and the binding id)
    action: str                   # the Textual action string, e.g. "cycle(1)"
    label: str                    # footer and palette title
    help: str                     # help screen and palette description
    shown: bool = True            # in the footer (which must fit in 80 columns: the rest are in F1 and ctrl+p)
    priority: bool = True         # a priority binding: works whatever has focus
    story_changing: bool = False  # refused while a modal is open or a passage streams
    palette_action: str | None = None   # what the palette runs, when it differs from the key's action
    palette_only: bool = False    # no key: only in the command palette (and listed in the help)

    @property
    def name(self) -> str:
        return self.action.split("(")[0]


ACTIONS: list[Action] = [
    Action("generate", "generate", "Generate", "Generate a passage at the end of the story"),
    # The tab key accepts only in the editor; the palette's Accept works whatever has focus.
    Action("accept", "accept", "Accept", "Accept the pending passage (tab: in the editor)",
           story_changing=True, palette_action="accept(True)"),
    Action("stop", "stop", "Stop", "Stop generating, or dismiss the pending passage", priority=False),
    Action("regenerate", "regenerate", "Regenerate", "Generate another alternative for the same spot"),
    Action("next_alternative", "cycle(1)", "Next alt", "Show the next alternative", shown=False,
           story_changing=True),
    Action("previous_alternative", "cycle(-1)", "Prev alt", "Show the previous alternative", shown=False,
           story_changing=True),
    Action("extend", "extend", "Extend", "Accept the pending passage and generate the next one", shown=False,
           story_changing=True),
    Action("story_tree", "story_tree", "Story tree",
           "Story tree: read any branch, make it the story, continue it",
           shown=False, story_changing=True),
    Action("undo", "undo", "Undo", "Undo typing, accepts and generations", shown=False, story_changing=True),
    Action("redo", "redo", "Redo", "Redo", shown=False, story_changing=True),
    Action("save", "save", "Save", "Save the draft (drafts are also saved as you write)", shown=False),
    Action("save_as", "save_as", "Save as", "Save the draft under another name or folder (it becomes its file)",
           shown=False),
    Action("open", "open", "Open", "Open a draft", shown=False, story_changing=True),
    Action("new", "new", "New", "Start a new draft (the current one is saved)", shown=False, story_changing=True),
    Action("quit", "quit", "Quit", "Save and quit", shown=False),
    Action("rename", "rename", "Rename", "Give the draft a new title; its file follows", palette_only=True),
    Action("delete_draft", "delete_draft", "Delete draft", "Move the draft to the trash (restorable)",
           palette_only=True),
    Action("restore_draft", "restore_draft", "Restore a draft", "Bring a draft back from the trash",
           palette_only=True),
    Action("export", "export", "Export", "Write the story to a .md or .txt file",
           palette_only=True),
    Action("probability_view", "probability_view", "Probabilities",
           "Tint generated words by how likely they were (the less likely, the stronger)", shown=False),
    Action("token_candidates", "token_candidates", "Token candidates",
           "What else the model could have written at the cursor's word; choose one to rewrite from there",
           shown=False, story_changing=True),
    Action("help", "help", "Help", "Show every key", priority=False),
    Action("focus_mode", "focus_mode", "Panels", "Hide or show the side panels (focus mode)", priority=False),
    Action("switch_model", "switch_model", "Model", "Switch model (built-in, local directory, hub id)",
           shown=False, priority=False),
    Action("context_viewer", "context_viewer", "Context", "Show exactly what the model reads for the next passage",
           shown=False),
    Action("lorebook", "lorebook", "Lorebook", "Edit the draft's lorebook (world info read when a key is in the "
           "story)", shown=False),
    Action("story_context", "story_context", "Author's note", "Edit the author's note, banned words and stop "
           "sequences", shown=False),
]
# Which footer keys stay when the footer is too narrow for all (most important first; the others give way from the
# end): Help always, so that a small terminal still says where every key is listed.
FOOTER_KEEP_FIRST = ("help", "generate", "accept", "stop", "regenerate", "focus_mode")
BY_NAME: dict[str, Action] = {a.name: a for a in ACTIONS}
STORY_ACTIONS = {a.name for a in ACTIONS if a.story_changing}
# Textual's own palette entries that storyterm replaces (its Quit would leave without saving).
REPLACED_SYSTEM_COMMANDS = {"Quit"}


def build_bindings(keys: dict[str, str]) -> list[Binding]:
    return [
        Binding(keys.get(a.id, DEFAULT_KEYS[a.id]), a.action, a.label, show=a.shown, priority=a.priority,
                id=a.id, tooltip=a.help)
        for a in ACTIONS
        if not a.palette_only
    ]


def key_table(keys: dict[str, str]) -> list[tuple[str, str]]:
    """(keys, help) for every action, with the keys in force (config overrides included)."""
    keymap = {**DEFAULT_KEYS, **keys}
    return [
        ("ctrl+p", f"{a.label} — {a.help[:1].lower()}{a.help[1:]}") if a.palette_only
        else (pretty_keys(keymap[a.id]), a.help)
        for a in ACTIONS
    ]


def system_commands(app: App[Any], inherited: Iterable[SystemCommand]) -> Iterable[SystemCommand]:
    for command in inherited:
        if command.title not in REPLACED_SYSTEM_COMMANDS:
            yield command
    for a in ACTIONS:
        title = "Stop / dismiss" if a.id == "stop" else a.label
        yield SystemCommand(title, a.help, _runner(app, a.palette_action or a.action))


def _runner(app: App[Any], action: str) -> Callable[[], Any]:
    async def run() -> None:
        await app.run_action(action)

    return run


def pretty_keys(keys: str) -> str:
    names = {"right_square_bracket": "]", "left_square_bracket": "["}
    pretty = []
    for key in keys.split(","):
        parts = [names.get(p, p) for p in key.strip().split("+")]
        pretty.append("+".join(parts))
    return " / ".join(pretty)
