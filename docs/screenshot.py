"""Write docs/screenshot.svg: the real editor (widgets, status bar, footer) with the built-in model loaded, a story,
and a pending passage with two alternatives. The passages come from a scripted engine so the picture reads well and
stays the same from run to run; everything else on screen is the app as a writer sees it.

    python docs/screenshot.py            # → docs/screenshot.svg (120×40)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

STORY = ("The lighthouse keeper found the letter on the third night of the storm. It was addressed to her, in her "
         "own handwriting, and dated forty years from now.")
PASSAGES = [
    " She read it twice by the lamp, then burned it, and watched the ash climb the stairwell like something "
    "that knew the way.",
    " Inside was a map of the island with one cove circled in red ink, and a single line: Do not light the lamp "
    "on Thursday.",
]


class ScriptedStream:
    def __init__(self, engine: ScriptedEngine, text: str) -> None:
        self.engine, self.text, self._cancelled = engine, text, threading.Event()

    def __iter__(self):
        for word in self.text.split(" ")[1:]:
            if self._cancelled.is_set():
                break
            yield " " + word

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None):
        from storyterm.engine.generation import GenerationResult, GenerationStats

        stats = GenerationStats(prompt_tokens=48, new_tokens=len(self.text.split()), time_to_first_token_s=0.046,
                                tokens_per_second=212.0, elapsed_s=0.2, context_trimmed=False,
                                context_window=self.engine.loaded.context_window)
        return GenerationResult(texts=[self.text], stats=stats, cancelled=False, seed=7)


class ScriptedEngine:
    """The real engine for context measurement and validation; fixed text for the passages."""

    def __init__(self, loaded) -> None:
        from storyterm.engine.generation import StoryEngine

        self.loaded, self._real, self.runs = loaded, StoryEngine(loaded), 0

    @property
    def busy(self) -> bool:
        return False

    def stream(self, request):
        self._real.validate(request)
        text = PASSAGES[self.runs % len(PASSAGES)]
        self.runs += 1
        return ScriptedStream(self, text)

    def context_usage(self, request):
        return self._real.context_usage(request)


async def main(out: Path, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            os.environ[name] = tmp  # never the writer's own config or drafts
        from storyterm.story import Draft, save_draft
        from storyterm.tui.app import StorytermApp

        draft_path = Path(tmp) / "the-lighthouse.json"
        save_draft(Draft("The Lighthouse", "horror", text=STORY, memory="Mara, the keeper"), draft_path)
        app = StorytermApp(draft_path, engine_factory=ScriptedEngine, config_path=Path(tmp) / "config.toml",
                           drafts_dir=Path(tmp))
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            for key in ("ctrl+g", "ctrl+r"):
                await pilot.press(key)
                await pilot.pause()
                await app.workers.wait_for_complete()
                await pilot.pause()
            app.update_context_usage()
            app.clear_notifications()
            app.editor.cursor_blink = False
            await pilot.pause()
            out.write_text(app.export_screenshot(title="storyterm"), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main(HERE / "screenshot.svg", (120, 40)))
