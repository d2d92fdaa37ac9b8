"""What a lorebook entry switching on or off, and the moving author's note, cost smart context (issue 16).

    python benchmarks/bench_lorebook_cache.py [--model builtin] [--runs 3] [--story-words 3000] [--new-tokens 20]

A long draft (the window full, so smart context anchors it) is continued passage by passage, as in the editor:
each step appends the passage just written plus one sentence of the writer's, then generates. Steps:

* ``steady``: nothing in the context changes but the story's end (no note, no lorebook change);
* ``note moves``: the same with an author's note at depth 3 (the note follows the end of the story);
* ``entry on``: the writer's sentence names a lorebook key, so its entry enters the prompt after the memory;
* ``entry off``: the key has left the scanned characters, so the entry leaves the prompt.

For each: prompt tokens, tokens whose KV came from the previous passage's cache, tokens read afresh, time to
first token. Greedy, one alternative (the editor's case; alternatives never reuse the cache). Prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

SENTENCES = [
    "The rain kept falling on the harbour.", "She counted the ships that never came back.",
    "A bell rang somewhere behind the warehouses.", "Nobody in the town spoke about the lighthouse.",
    "The old man mended his nets by the fire.", "Wind came in from the sea and rattled the shutters.",
]
KEY_SENTENCE = "Then Marlowe walked in from the dark."
ENTRY_TEXT = "Marlowe is a retired detective who lost his brother to the sea and still wears his coat."


def story_of(words: int) -> str:
    text, count = [], 0
    while count < words:
        sentence = SENTENCES[len(text) % len(SENTENCES)]
        text.append(sentence)
        count += len(sentence.split())
    return " ".join(text)


def session(engine, base, story: str, steps: list[str], new_tokens: int) -> list[dict]:
    """Generate once to fill the cache, then once per step (appending the passage and the step's sentence)."""
    from dataclasses import replace

    engine.forget_context()
    result = engine.generate(replace(base, story=story))
    rows = []
    for sentence in steps:
        story = story + result.text + " " + sentence
        request = replace(base, story=story)
        prepared = engine.prepare(request)
        result = engine.generate(request)
        stats = result.stats
        rows.append({"prompt": stats.prompt_tokens, "cached": stats.cached_prompt_tokens,
                     "read": stats.prompt_tokens - stats.cached_prompt_tokens,
                     "first": stats.time_to_first_token_s, "lore": prepared.lorebook_tokens})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--story-words", type=int, default=3000)
    parser.add_argument("--new-tokens", type=int, default=20)
    args = parser.parse_args()

    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model
    from storyterm.engine.lorebook import Lorebook, LorebookEntry
    from storyterm.engine.settings import SamplerSettings

    loaded = load_model(ModelSpec(args.model, device="cpu"))
    engine = StoryEngine(loaded, generate_overrides={"min_new_tokens": args.new_tokens})
    settings = SamplerSettings(max_new_tokens=args.new_tokens, do_sample=False, trim_sentences=False)
    genre = loaded.genres[0] if loaded.genres else None
    # scan_chars so the key leaves the scanned text two steps after it was written
    book = Lorebook((LorebookEntry(("Marlowe",), ENTRY_TEXT),), scan_chars=200)
    base = GenerationRequest(genre, settings=settings, memory="Anna keeps the lighthouse.", lorebook=book)
    story = story_of(args.story_words)
    plain = [SENTENCES[0], SENTENCES[1], SENTENCES[2]]
    # step 0 steady, step 1 names the key (entry on), steps 2-4 push it out of the 200 scanned characters
    lore_steps = [SENTENCES[3], KEY_SENTENCE, SENTENCES[4], SENTENCES[5], SENTENCES[0], SENTENCES[1]]
    table: dict[str, list[dict]] = {}
    for _ in range(args.runs + 1):  # the first run warms up
        rows = session(engine, base, story, plain, args.new_tokens)
        note_rows = session(engine, replace_note(base), story, plain, args.new_tokens)
        lore_rows = session(engine, base, story, lore_steps, args.new_tokens)
        if _ == 0:
            continue
        table.setdefault("steady (no note, lorebook unchanged)", []).extend(rows[1:])
        table.setdefault("author's note at depth 3 moves", []).extend(note_rows[1:])
        on = [r for prev, r in zip(lore_rows, lore_rows[1:]) if r["lore"] > prev["lore"]]
        off = [r for prev, r in zip(lore_rows, lore_rows[1:]) if r["lore"] < prev["lore"]]
        table.setdefault("lorebook entry switches on", []).extend(on)
        table.setdefault("lorebook entry switches off", []).extend(off)
    print(f"\nModel {loaded.name} ({loaded.context_window}-token window), story {args.story_words} words, "
          f"{args.new_tokens} new tokens per passage, greedy, CPU {loaded.dtype}; median (min–max) over "
          f"{args.runs} runs\n")
    print("| next passage when… | prompt tokens | from the cache | read afresh | first token (s) |")
    print("|---|---|---|---|---|")
    for label, rows in table.items():
        if not rows:
            print(f"| {label} | (did not happen) | | | |")
            continue
        print(f"| {label} | {med(rows, 'prompt')} | {med(rows, 'cached')} | {med(rows, 'read')} | "
              f"{span([r['first'] for r in rows])} |")
    return 0


def replace_note(base):
    from dataclasses import replace

    return replace(base, authors_note="Style: tense, short sentences", authors_note_depth=3)


def med(rows: list[dict], key: str) -> str:
    return f"{statistics.median(r[key] for r in rows):.0f}"


def span(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


if __name__ == "__main__":
    sys.exit(main())
