"""Does the model use the names a writer puts in Memory?

For each genre of the checkpoint, each set of three names and each starter, one passage is generated through
:mod:`storyterm.engine` with the checkpoint's default settings and a fixed seed, with the names in Memory and, as the
baseline, without. A passage *uses* memory when it contains at least one of the three names as a whole word. The
names are ones a writer might pick and that are rare or absent in the training data, so the baseline stays near 0.

    python -m training.probe_memory src/storyterm/models/builtin --output build/memory.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

NAME_SETS = (("Mara", "Jonah", "Elias"), ("Ilse", "Corwin", "Tavi"), ("Nadia", "Brann", "Odile"))
# Starters without names of their own (a starter that names someone competes with Memory).
STARTERS = ("One night,", "The next morning,", "After the funeral,", "In the dark shadows,",
            "Years later,", "The house at the end of the road")


def uses_any(text: str, names: Sequence[str]) -> bool:
    return any(re.search(rf"\b{re.escape(name)}\b", text) for name in names)


def probe(checkpoint: str, *, max_new_tokens: int = 80, seed: int = 0, dtype: str = "fp32",
          name_sets: Sequence[Sequence[str]] = NAME_SETS) -> dict:
    from storyterm.engine import GenerationRequest, ModelSpec, StoryEngine, load_model

    loaded = load_model(ModelSpec(source=checkpoint, device="cpu", dtype=dtype))
    engine = StoryEngine(loaded, smart_context=False)
    settings = loaded.generation_defaults.with_changes(max_new_tokens=max_new_tokens)
    genres = loaded.genres or [None]
    counts = {"with_memory": 0, "without_memory": 0, "passages": 0}
    examples = []
    for genre_index, genre in enumerate(genres):
        for names_index, names in enumerate(name_sets):
            for starter_index, starter in enumerate(STARTERS):
                run_seed = seed + 1000 * genre_index + 100 * names_index + starter_index
                request_settings = settings.with_changes(seed=run_seed)
                with_memory = engine.generate(GenerationRequest(genre, starter, ", ".join(names), request_settings)).text
                without = engine.generate(GenerationRequest(genre, starter, "", request_settings)).text
                counts["passages"] += 1
                counts["with_memory"] += uses_any(with_memory, names)
                counts["without_memory"] += uses_any(without, names)
                if len(examples) < 6 and starter_index == names_index:
                    examples.append({"genre": genre, "memory": ", ".join(names), "text": starter + with_memory})
    total = counts["passages"]
    return {
        "checkpoint": checkpoint,
        "passages": total,
        "memory_name_use": counts["with_memory"] / total,
        "baseline_without_memory": counts["without_memory"] / total,
        "names": [", ".join(names) for names in name_sets],
        "settings": settings.to_dict(),
        "examples": examples,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.probe_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="checkpoint directory or 'builtin'")
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--names", action="append", metavar="A,B,C",
                        help="a set of names for Memory (repeatable; default: three sets of uncommon names)")
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)
    name_sets = [[n.strip() for n in names.split(",") if n.strip()] for names in args.names] if args.names else NAME_SETS
    report = probe(args.checkpoint, max_new_tokens=args.max_new_tokens, seed=args.seed, dtype=args.dtype,
                   name_sets=name_sets)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    print(f"memory names used in {report['memory_name_use']:.0%} of {report['passages']} passages "
          f"(without memory: {report['baseline_without_memory']:.0%})", file=sys.stderr)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
