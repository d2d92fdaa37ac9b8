#!/usr/bin/env python
"""How fast the story tree opens for drafts with many passages. Prints a table; asserts nothing.

    python benchmarks/bench_tree.py [--sizes 100,300,1000] [--repeat 5]

Each draft is a story of N/2 accepted passages with one other take at every spot (N passages in all, ~69 words
each). Measured: the plain-data layout (story.tree.tree_layout), rebuilding the story before the last passage
(story_before, uncached), and in a headless app (Textual's run_test, no model loaded) f12 until the tree
screen shows with its cursor on the story's end, and one cursor move (up) until the preview has changed; beside
them the F1 help screen's opening time in the same app, a baseline for how loaded the machine is.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench_story import timed as timed_ms  # median of repeated runs, in ms
from storyterm.engine.errors import StorytermError
from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story.draft import Draft
from storyterm.story.store import save_draft
from storyterm.story.tree import story_before, tree_layout

SENTENCE = " The wind rose over the harbour and the keeper counted the ships that had not come home."


def build(passages: int) -> Draft:
    draft = Draft("Bench")
    draft.set_text("The lighthouse keeper woke before dawn.")
    for n in range(passages // 2):
        for take in range(2):
            draft.add_alternative(f" ({n}.{take})" + SENTENCE * 4, genre=None, settings=DEFAULT_SETTINGS, seed=n,
                                  model="builtin")
        draft.accept()
    return draft


def no_model(spec, progress):
    raise StorytermError("benchmark: no model")


async def open_tree(path: Path, size: tuple[int, int], drafts: Path) -> tuple[float, float, float]:
    from storyterm.tui.app import StorytermApp
    from storyterm.tui.screens.help import HelpScreen
    from storyterm.tui.screens.story_tree import StoryTreeScreen, StoryTreeView

    app = StorytermApp(path, loader=no_model, drafts_dir=drafts, config_path=drafts / "config.toml")
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        # The baseline: how long the F1 help screen takes to open in the same app on this machine right now.
        start = time.perf_counter()
        await pilot.press("f1")
        while not (isinstance(app.screen, HelpScreen) and app.screen.is_mounted):
            await asyncio.sleep(0.001)
        await pilot.pause()
        help_s = time.perf_counter() - start
        await pilot.press("escape")
        await pilot.pause()
        last = app.draft.passages[-1].id
        start = time.perf_counter()
        await pilot.press("f12")
        while not (isinstance(app.screen, StoryTreeScreen) and app.screen.tree.cursor_node is not None
                   and app.screen.tree.cursor_node.data == last):
            await asyncio.sleep(0.001)
        await pilot.pause()
        opened = time.perf_counter() - start
        tree = app.screen.query_one(StoryTreeView)
        preview = app.screen.query_one("#tree-preview")
        before = preview.content
        start = time.perf_counter()
        await pilot.press("up")
        while preview.content is before:
            await asyncio.sleep(0.001)
        await pilot.pause()
        moved = time.perf_counter() - start
        assert tree.cursor_node is not None
    return help_s, opened, moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| passages | story words | layout ms | story_before ms | tree open 80x24 ms | tree open 120x40 ms | "
          "cursor move ms | F1 help open ms (baseline) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        draft = build(size)
        last = draft.passages[-1].id
        layout_s = timed_ms(lambda: tree_layout(draft), args.repeat) / 1000
        before_s = timed_ms(lambda: story_before(draft, last), args.repeat) / 1000
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "bench.json"
            save_draft(draft, path)
            small = [asyncio.run(open_tree(path, (80, 24), Path(folder))) for _ in range(max(1, args.repeat // 2))]
            large = [asyncio.run(open_tree(path, (120, 40), Path(folder))) for _ in range(max(1, args.repeat // 2))]
        open_small = statistics.median(s[1] for s in small)
        open_large = statistics.median(s[1] for s in large)
        move = statistics.median([s[2] for s in small + large])
        help_open = statistics.median([s[0] for s in small + large])
        print(f"| {size} | {draft.word_count} | {layout_s * 1e3:.1f} | {before_s * 1e3:.1f} | "
              f"{open_small * 1e3:.0f} | {open_large * 1e3:.0f} | {move * 1e3:.0f} | {help_open * 1e3:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
