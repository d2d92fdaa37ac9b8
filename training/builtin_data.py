"""The data recipe of the built-in model (v4–v6): all four sources in ``../shared/data``, deduplicated across sources.

* ``plots/``: the 1 000 Wikipedia plots of the original project, 10 % per genre held out (at least 2) as
  ``plots/eval.txt`` — the test set of the targets, never trained on (the same 100 plots as v1–v3);
* ``plots-dev/``: the other 900 split again, 5 % as the development set the Trainer evaluates on;
* ``v6/``: the training files of v6 (v4 and v5 trained on the same without renaming) — ``plots-dev.txt`` (the
  854 training plots), ``wiki.txt`` (the Wikipedia plots of 1901–1935 films, Kaggle CSV rows), ``netflix.txt`` (Netflix blurbs), ``movies.txt`` (The Movies Dataset
  overviews) — with ``counts.json`` and ``SOURCES.md`` (sources and licences, copied into the model card);
* ``netflix/``: v3's Netflix file (only the blurbs that map onto the six genres), to train v3 again.

Every source is mapped onto the six classic genres; a story with no classic genre (comedy, western, musical,
documentary…) is kept under the *neutral* header ``<BOS>`` alone — it still teaches English, and it is exactly the
engine's free-mode prompt. Stories are deduplicated across sources by a normalised text key, and any story whose
key matches a held-out or development story is dropped from every training file.

80 % of the training stories that name a character at least twice (once in a short blurb) get a *memory* header —
``<BOS> <genre> [Anna, Tom, Elias] story…`` with up to three of those names in a random order — the layout the
engine gives the editor's Memory field (:func:`storyterm.engine.prompt.memory_text`), so names the writer puts in
Memory show up in the story. Since v6 (which also raised the share from a half to 80 %), 60 % of those memory stories have their named characters renamed
throughout (header and text alike) to a name drawn uniformly from every character name in the corpus or made up
from syllables: the model cannot guess such a name from the story, only copy it from Memory — v5, trained on the
original names only, used common Memory names in 65 % of passages but names it had rarely seen in 5 %.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from storyterm.engine.prompt import memory_text

from .common import DEFAULT_DATA_DIR, DEFAULT_WORK_DIR, Story, genre_table, read_stories, write_json, write_line_file
from .genre_mapping import CLASSIC_PRIORITY, LabelMapper, choose_genre, netflix_mapper, wikipedia_mapper
from .prepare_data import _csv_rows, clean_text, prepare

# The Movies Dataset's genre names (TMDB) onto the six, with the same choices as the Wikipedia rules.
MOVIES_LABELS: dict[str, str] = {
    "Science Fiction": "sci_fi",
    "Horror": "horror",
    "Thriller": "thriller",
    "Crime": "thriller",
    "Mystery": "thriller",
    "Action": "action",
    "Adventure": "action",
    "Drama": "drama",
    "Romance": "drama",
    "History": "drama",
}
SOURCES = """## Sources and licences

- Wikipedia movie plots (1 000 plots of the original Genre-Based-Story-Generator project's evaluation file, MIT
  licence, itself cleaned from the Kaggle "Wikipedia Movie Plots" dataset; and 1 999 plots of 1901–1935 films from
  that dataset's CSV): plot text from Wikipedia, CC BY-SA 4.0.
- Netflix Movies and TV Shows (Kaggle): one-sentence descriptions with their categories.
- The Movies Dataset (Kaggle, CC0): overviews with their TMDB genre lists.
- 100 of the 1 000 plots are held out as the test set and are kept out of every source's training text (matched
  by normalised text), as are the 46 development plots."""
MEMORY_SHARE = 0.8
MAX_MEMORY_NAMES = 3
RENAME_SHARE = 0.6
RECIPE_DIR = "v6"  # v4 and v5 trained on the same recipe without renaming
# Made-up names: an onset, a vowel, maybe a second syllable and a coda ("Tavor", "Lisen", "Brami").
_ONSETS = ("B", "Br", "C", "D", "Dr", "El", "F", "G", "Gr", "H", "Is", "J", "K", "Kr", "L", "M", "N", "Or", "P",
           "R", "S", "Sh", "St", "T", "Th", "Tr", "V", "W", "Y", "Z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ia", "ei")
_MIDDLES = ("l", "m", "n", "r", "s", "v", "d", "th", "nd", "rr")
_CODAS = ("", "", "n", "l", "r", "s", "th", "nn", "x", "k")
_KEY_CHARS = 300
_WORD = re.compile(r"[A-Za-z]+")
_CAPITALISED = re.compile(r"\b[A-Z][a-z]{2,}\b")


def dedup_key(text: str) -> str:
    """Letters and digits of the first ~300 characters, case folded: the same plot cleaned two ways matches."""
    return re.sub(r"[^a-z0-9]", "", text.casefold())[:_KEY_CHARS]


def read_csv_stories(path: Path, text_column: str, label_column: str, title_column: str,
                     mapper: LabelMapper, parse_labels=None) -> list[Story]:
    """Every row with text: its rarest classic genre, or ``None`` (the neutral header) when it has none."""
    stories = []
    for row in _csv_rows(path):
        raw = row.get(text_column) or ""
        text = clean_text(raw)
        if len(text) < 20:
            continue
        cell = row.get(label_column) or ""
        if parse_labels is not None:
            cell = parse_labels(cell)
        genres = mapper.genres(cell, title=row.get(title_column) or "", text=raw)
        stories.append(Story(choose_genre(genres, CLASSIC_PRIORITY) if genres else None, text))
    return stories


def movies_labels(cell: str) -> str:
    """``"[{'id': 18, 'name': 'Drama'}]"`` → ``"Drama"`` (comma-separated names)."""
    try:
        items = ast.literal_eval(cell) if cell.strip() else []
    except (ValueError, SyntaxError):
        return ""
    return ",".join(str(item.get("name", "")) for item in items if isinstance(item, dict))


def deduplicate_across(sources: dict[str, list[Story]], excluded: Iterable[str]) -> tuple[dict[str, list[Story]], Counter]:
    """Keep each story once over all sources (first source wins) and none whose key is in ``excluded``."""
    seen = set(excluded)
    held_out = set(seen)
    kept: dict[str, list[Story]] = {}
    dropped: Counter = Counter()
    for name, stories in sources.items():
        kept[name] = []
        for story in stories:
            key = dedup_key(story.text)
            if key in held_out:
                dropped[f"{name}: a held-out story"] += 1
            elif key in seen:
                dropped[f"{name}: duplicate"] += 1
            else:
                seen.add(key)
                kept[name].append(story)
    return kept, dropped


def lowercase_words(stories: Iterable[Story]) -> set[str]:
    return {word for story in stories for word in _WORD.findall(story.text) if word.islower()}


def character_names(text: str, common_words: set[str]) -> list[str]:
    """Capitalised words that never occur in lower case in the corpus (so not "The" or "Police"), most frequent
    first; a long text needs a name twice."""
    counts = Counter(word for word in _CAPITALISED.findall(text) if word.lower() not in common_words)
    need = 2 if len(text) > 600 else 1
    return [name for name, count in counts.most_common() if count >= need]


def made_up_name(rng: random.Random) -> str:
    name = rng.choice(_ONSETS) + rng.choice(_VOWELS)
    if rng.random() < 0.6:
        name += rng.choice(_MIDDLES) + rng.choice(_VOWELS)
    return name + rng.choice(_CODAS)


def renamed(text: str, names: Sequence[str], replacements: Sequence[str]) -> str:
    """Every whole-word ``names[i]`` (possessives too) becomes ``replacements[i]``, in one pass."""
    table = dict(zip(names, replacements, strict=True))
    pattern = re.compile(r"\b(" + "|".join(re.escape(name) for name in names) + r")\b")
    return pattern.sub(lambda match: table[match.group(1)], text)


def new_names(count: int, pool: Sequence[str], avoid: set[str], rng: random.Random) -> list[str]:
    """``count`` distinct names, each from ``pool`` or made up (even odds), none in ``avoid``."""
    chosen: list[str] = []
    while len(chosen) < count:
        name = rng.choice(pool) if pool and rng.random() < 0.5 else made_up_name(rng)
        if name not in avoid and name not in chosen:
            chosen.append(name)
    return chosen


def with_memory(stories: Sequence[Story], common_words: set[str], seed: int, share: float = MEMORY_SHARE,
                rename_share: float = 0.0, name_pool: Sequence[str] = ()) -> list[Story]:
    """``share`` of the stories that name characters get up to three of them as a memory header; ``rename_share``
    of those have the named characters renamed (see the module's docstring)."""
    rng = random.Random(seed)
    taken_words = {word.capitalize() for word in common_words}  # a new name must not read as an English word
    result = []
    for story in stories:
        names = character_names(story.text, common_words)[:MAX_MEMORY_NAMES]
        if names and rng.random() < share:
            text = story.text
            if rng.random() < rename_share:
                replacements = new_names(len(names), name_pool, taken_words | set(_WORD.findall(text)), rng)
                text, names = renamed(text, names, replacements), replacements
            rng.shuffle(names)
            story = Story(story.genre, f"{memory_text(', '.join(names))} {text}")
        result.append(story)
    return result


def prepare_builtin_data(data_dir: Path = DEFAULT_DATA_DIR, work_dir: Path = DEFAULT_WORK_DIR / "data",
                         seed: int = 0) -> dict:
    plots_file = data_dir / "genre_plots" / "6_genre_eval_data.txt"
    summaries = {
        "plots": prepare([plots_file], work_dir / "plots", eval_fraction=0.1, min_eval_per_genre=2),
        "plots-dev": prepare([work_dir / "plots" / "train.txt"], work_dir / "plots-dev", eval_fraction=0.05),
        # v3's second source (mapped blurbs only), which v4 starts from: kept so v3 can be trained again.
        "netflix": prepare([data_dir / "netflix" / "netflix_titles.csv"], work_dir / "netflix", fmt="netflix",
                           eval_fraction=0),
    }
    held_out = [dedup_key(s.text) for s in read_stories([work_dir / "plots" / "eval.txt",
                                                          work_dir / "plots-dev" / "eval.txt"])]
    sources = {
        "plots-dev": read_stories([work_dir / "plots-dev" / "train.txt"]),
        "wiki": read_csv_stories(data_dir / "wiki_movie_plots" / "wiki_movie_plots_1901_1935.csv",
                                 "Plot", "Genre", "Title", wikipedia_mapper()),
        "netflix": read_csv_stories(data_dir / "netflix" / "netflix_titles.csv",
                                    "description", "listed_in", "title", netflix_mapper()),
        "movies": read_csv_stories(data_dir / "movies_metadata" / "movies_metadata_sample.csv",
                                   "overview", "genres", "title",
                                   LabelMapper(exact=MOVIES_LABELS, separator=",", superhero_keywords=True),
                                   parse_labels=movies_labels),
    }
    kept, dropped = deduplicate_across(sources, held_out)
    common_words = lowercase_words(story for stories in kept.values() for story in stories)
    # Every distinct character name once, so rare names are drawn as often as "John".
    name_pool = sorted({name for stories in kept.values() for story in stories
                        for name in character_names(story.text, common_words)[:MAX_MEMORY_NAMES]})
    for index, (name, stories) in enumerate(kept.items()):
        with_names = with_memory(stories, common_words, seed + index, rename_share=RENAME_SHARE, name_pool=name_pool)
        write_line_file(work_dir / RECIPE_DIR / f"{name}.txt", with_names)
    counts = {name: dict(Counter(s.genre or "(neutral)" for s in stories).most_common()) for name, stories in kept.items()}
    summary = {
        "dropped": dict(dropped),
        "counts": counts,
        "bytes": {name: sum(len(s.text.encode()) for s in stories) for name, stories in kept.items()},
        "table": genre_table({name: [Story(s.genre or "(neutral)", s.text) for s in stories]
                              for name, stories in kept.items()}),
    }
    write_json(work_dir / RECIPE_DIR / "counts.json", summary)
    (work_dir / RECIPE_DIR / "SOURCES.md").write_text(SOURCES + "\n", encoding="utf-8")
    summaries[RECIPE_DIR] = summary
    return summaries
