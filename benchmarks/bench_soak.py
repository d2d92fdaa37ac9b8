#!/usr/bin/env python
"""Soak test of the editor (issue 12): memory and key latency over many generate/accept cycles, and key latency
against story size.

    python benchmarks/bench_soak.py [--cycles 300] [--keys 20] [--sizes 1000,100000,1000000]

Headless (Textual's Pilot, 120x32) with a tiny offline GPT-2 (the test fixture's, 8 new tokens a passage), so the
app is measured, not the model. Printed as markdown tables:

- RSS of the process and median key latency after the first 10 cycles and at the end (ctrl+e = accept the pending
  passage and generate the next one). Target: < 10 MB growth over 300 cycles.
- Key latency on an opened draft of 1 KB / 100 KB / 1 MB: one key pressed at the end of the story, waited for
  until the app is idle again (so the time includes drawing the screen); and a 2 000-character paste that arrives
  as keystrokes (a terminal without bracketed paste), queued at once. Target: the same at every size.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "tests")]

SIZE = (120, 32)
LINE = "The lighthouse keeper counts the ships that never come. "


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def story_of(size: int) -> str:
    paragraphs, total = [], 0
    while total < size:
        paragraph = LINE * 12 + "\n\n"
        paragraphs.append(paragraph)
        total += len(paragraph)
    return "".join(paragraphs)[:size]


async def key_latency_ms(app, pilot, keys: int) -> float:
    times = []
    for _ in range(keys):
        started = time.perf_counter()
        await pilot.press("x")
        times.append((time.perf_counter() - started) * 1000)
    await pilot.press(*["backspace"] * keys)
    return statistics.median(times)


async def soak(make_app, cycles: int, keys: int) -> list[tuple[str, float, float]]:
    app = make_app()
    rows = []
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press(*"The ghost")
        for cycle in range(1, cycles + 1):
            await pilot.press("ctrl+e")
            await app.workers.wait_for_complete()
            await pilot.pause()
            if cycle in (10, cycles):
                gc.collect()
                rows.append((f"after {cycle} cycles", rss_mb(), await key_latency_ms(app, pilot, keys)))
                print(f"  {rows[-1][0]}: {len(app.draft.text)} characters", file=sys.stderr)
        await pilot.press("ctrl+q")
    return rows


async def by_size(make_app, folder: Path, size: int, keys: int) -> tuple[float, float]:
    from storyterm.story import Draft, save_draft
    from textual import events

    path = folder / f"story-{size}.json"
    save_draft(Draft("Soak", text=story_of(size)), path)
    app = make_app(draft_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        latency = await key_latency_ms(app, pilot, keys)
        paste = (LINE * 40)[:2000]
        started = time.perf_counter()
        for character in paste:
            app.editor.post_message(events.Key("space" if character == " " else character, character))
        while not app.draft.text.endswith(paste):
            await pilot.pause(0.01)
        paste_s = time.perf_counter() - started
        await pilot.press("ctrl+q")
    return latency, paste_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    args = parser.parse_args()

    from conftest import build_tiny_checkpoint
    from storyterm.engine.loading import ModelSpec, load_model
    from storyterm.tui.app import StorytermApp

    folder = Path(tempfile.mkdtemp(prefix="storyterm-soak-"))
    loaded = load_model(ModelSpec(str(build_tiny_checkpoint(folder / "tiny")), device="cpu"))
    config = folder / "config.toml"
    config.write_text("[settings]\nmax_new_tokens = 8\nseed = 1\n", encoding="utf-8")

    def make_app(draft_path: Path | None = None) -> StorytermApp:
        return StorytermApp(draft_path, loaded.spec, loader=lambda spec, progress: loaded, config_path=config,
                            drafts_dir=folder / "drafts")

    rows = asyncio.run(soak(make_app, args.cycles, args.keys))
    print(f"\n{args.cycles} generate/accept cycles (ctrl+e), tiny GPT-2, 8 new tokens each, headless 120x32\n")
    print("| when | RSS | key latency (median of %d) |" % args.keys)
    print("|---|---:|---:|")
    for label, rss, latency in rows:
        print(f"| {label} | {rss:.1f} MB | {latency:.1f} ms |")
    print(f"| growth | {rows[-1][1] - rows[0][1]:+.1f} MB | {rows[-1][2] - rows[0][2]:+.1f} ms |")

    print("\n| story size | key latency (median of %d) | 2 000-character paste as keystrokes |" % args.keys)
    print("|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        latency, paste_s = asyncio.run(by_size(make_app, folder, size, args.keys))
        print(f"| {size / 1000:g} KB | {latency:.1f} ms | {paste_s:.2f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
