"""Helpers shared by the training scripts: default paths, line files, small formatting utilities."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from storyterm.engine.prompt import parse_training_line, training_line

REPO_ROOT = Path(__file__).resolve().parent.parent
# The shared, read-only data lives beside the repository, never inside it.
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_WORK_DIR = REPO_ROOT / "build"
BUILTIN_MODEL_DIR = REPO_ROOT / "src" / "storyterm" / "models" / "builtin"

log = logging.getLogger("training")


@dataclass(frozen=True)
class Story:
    genre: str | None   # None: the neutral header (free mode)
    text: str

    def line(self) -> str:
        return training_line(self.genre, self.text)


def read_line_file(path: Path) -> Iterator[tuple[int, Story | None]]:
    """Yield ``(line_number, story)`` for every non-blank line; ``story`` is None for a malformed line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parsed = parse_training_line(line)
            yield number, (Story(*parsed) if parsed else None)


def read_stories(paths: Iterable[Path]) -> list[Story]:
    """All well-formed stories of one or more line files (malformed lines are skipped)."""
    return [story for path in paths for _, story in read_line_file(Path(path)) if story is not None]


def write_line_file(path: Path, stories: Iterable[Story]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for story in stories:
            handle.write(story.line() + "\n")
            count += 1
    return count


def genre_table(splits: dict[str, Iterable[Story]]) -> str:
    """A plain-text count table: one row per genre, one column per split, and a total row."""
    counts = {name: Counter(s.genre for s in stories) for name, stories in splits.items()}
    genres = sorted({g for c in counts.values() for g in c}, key=lambda g: (-sum(c[g] for c in counts.values()), g))
    width = max([len("genre"), len("total"), *map(len, genres)])
    header = f"{'genre':<{width}}" + "".join(f" {name:>8}" for name in counts)
    rows = [header, "-" * len(header)]
    for genre in genres:
        rows.append(f"{genre:<{width}}" + "".join(f" {c[genre]:>8}" for c in counts.values()))
    rows.append(f"{'total':<{width}}" + "".join(f" {sum(c.values()):>8}" for c in counts.values()))
    return "\n".join(rows)


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
