"""How long draft operations take, for stories of growing size. Prints a table; asserts nothing.

    python benchmarks/bench_story.py [--repeat 20]

Measures what the TUI does on every keystroke (set_text + alternative_count/index) and on every autosave
(encode + atomic write with fsync and backup), plus load, for drafts with many passages.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story.draft import Draft
from storyterm.story.draft_bytes import encode_draft
from storyterm.story.store import load_draft, save_draft


def build(words: int, passages: int) -> Draft:
    draft = Draft("Bench", "drama")
    chunk = max(1, words // max(1, passages))
    for n in range(passages):
        draft.add_alternative(" word" * chunk, genre="drama", settings=DEFAULT_SETTINGS, seed=n, model="builtin")
        draft.add_alternative(" other" * chunk, genre="drama", settings=DEFAULT_SETTINGS, seed=n, model="builtin")
        draft.accept()
    return draft


def keystroke(draft: Draft) -> Callable[[], None]:
    """One typed character as the TUI handles it: the whole text, then the status bar's alternative count."""
    counter = iter(range(10**9))

    def press() -> None:
        draft.set_text(draft.text + "abcdefghij"[next(counter) % 10])
        draft.alternative_count  # noqa: B018 - read like the status bar does
        draft.alternative_index  # noqa: B018

    return press


def timed(func: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'words':>8} {'passages':>8} {'file kB':>8} {'keystroke ms':>13} {'save ms':>8} {'load ms':>8}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.json"
        for words, passages in ((1_000, 10), (10_000, 100), (50_000, 500), (200_000, 1000)):
            draft = build(words, passages)
            key_ms = timed(keystroke(draft), args.repeat * 5)
            save_ms = timed(lambda draft=draft: save_draft(draft, path), args.repeat)
            load_ms = timed(lambda: load_draft(path), args.repeat)
            size_kb = len(encode_draft(draft)) / 1024
            print(f"{words:>8} {passages:>8} {size_kb:>8.0f} {key_ms:>13.3f} {save_ms:>8.2f} {load_ms:>8.2f}")


if __name__ == "__main__":
    main()
