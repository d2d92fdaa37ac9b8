"""How raw labels become storyterm genres.

Documented in ``training/README.md``. Two built-in presets map public datasets onto the six classic genres:

* ``wikipedia`` — the Kaggle *Wikipedia Movie Plots* CSV (``Genre`` column, free text such as ``"crime drama"``):
  keyword rules on the genre cell (table ``WIKIPEDIA_RULES``).
* ``netflix`` — the Kaggle *Netflix Movies and TV Shows* CSV (``listed_in``, comma-separated categories): an exact
  category table (``NETFLIX_LABELS``).

In both, a story whose title or text names a superhero (``SUPERHERO_WORDS``, ``SUPERHERO_NAMES``) becomes
``superhero``, since neither dataset has that category; a row with several genres keeps the rarest one
(``CLASSIC_PRIORITY``), which keeps the small genres from drowning in drama.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from storyterm.engine.prompt import normalize_genre

# Rarest first: when a story carries several genres it keeps the first of these.
CLASSIC_PRIORITY = ("superhero", "sci_fi", "horror", "thriller", "action", "drama")

SUPERHERO_WORDS = re.compile(r"\bsuper-?hero(?:es|s)?\b|\bsuper-?powers?\b|\bsuper-?powered\b", re.IGNORECASE)
# Names are matched case-sensitively: "hulk" or "iron man" in lower case are ordinary words.
SUPERHERO_NAMES = re.compile(
    r"\b(?:Superman|Batman|Spider-Man|Spiderman|X-Men|Avengers|Captain America|Iron Man|Wonder Woman"
    r"|Justice League|Fantastic Four|Green Lantern|Daredevil|Wolverine|Hulk|Deadpool|Ant-Man|Aquaman"
    r"|Black Panther|Doctor Strange|Hellboy|Catwoman|Supergirl|Shazam)\b"
)

WIKIPEDIA_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("superhero", re.compile(r"super-?hero", re.I)),
    ("sci_fi", re.compile(r"science[ -]fiction|sci-?fi|\bscifi\b|\bsf\b|cyberpunk|space opera", re.I)),
    ("horror", re.compile(r"horror|slasher|zombie", re.I)),
    ("thriller", re.compile(r"thriller|suspense|mystery|crime|noir|heist|\bspy\b|espionage", re.I)),
    ("action", re.compile(r"action|martial arts|kung fu|swashbuckler|adventure", re.I)),
    ("drama", re.compile(r"drama|biograph|biopic|romance|romantic|historical|tragedy", re.I)),
)

NETFLIX_LABELS: dict[str, str] = {
    "Action & Adventure": "action",
    "TV Action & Adventure": "action",
    "Thrillers": "thriller",
    "TV Thrillers": "thriller",
    "TV Mysteries": "thriller",
    "Crime TV Shows": "thriller",
    "Horror Movies": "horror",
    "TV Horror": "horror",
    "Sci-Fi & Fantasy": "sci_fi",
    "TV Sci-Fi & Fantasy": "sci_fi",
    "Dramas": "drama",
    "TV Dramas": "drama",
}


def mentions_superhero(text: str) -> bool:
    return bool(SUPERHERO_WORDS.search(text) or SUPERHERO_NAMES.search(text))


@dataclass
class LabelMapper:
    """Turns one label cell (plus the story's title and text) into zero or more genres.

    ``exact`` maps whole labels (case-insensitive) to genres; ``rules`` map labels by regular expression;
    with neither, every label becomes its own genre via :func:`normalize_genre` (custom categories).
    ``superhero_keywords`` adds ``superhero`` when the title or text names one.
    """

    exact: dict[str, str] = field(default_factory=dict)
    rules: Sequence[tuple[str, re.Pattern[str]]] = ()
    separator: str | None = ","
    superhero_keywords: bool = False

    def __post_init__(self) -> None:
        self._exact = {key.strip().casefold(): normalize_genre(value) for key, value in self.exact.items()}

    def split(self, cell: str) -> list[str]:
        parts = cell.split(self.separator) if self.separator else [cell]
        return [part.strip() for part in parts if part.strip()]

    def genres(self, cell: str, title: str = "", text: str = "") -> list[str]:
        """Every genre this row belongs to, without duplicates."""
        found: list[str] = []
        if self.superhero_keywords and (mentions_superhero(title) or mentions_superhero(text)):
            found.append("superhero")
        for label in self.split(cell or ""):
            if self._exact:
                genre = self._exact.get(label.casefold())
                if genre:
                    found.append(genre)
            elif self.rules:
                found.extend(genre for genre, pattern in self.rules if pattern.search(label))
            else:
                try:
                    found.append(normalize_genre(label))
                except ValueError:
                    continue
        return list(dict.fromkeys(found))


def choose_genre(genres: Sequence[str], priority: Sequence[str]) -> str:
    """The genre of ``genres`` that comes first in ``priority`` (genres missing from it come last, in order)."""
    rank = {genre: index for index, genre in enumerate(priority)}
    return min(genres, key=lambda g: (rank.get(g, len(rank)), list(genres).index(g)))


def wikipedia_mapper() -> LabelMapper:
    # Kaggle cells look like "crime drama", "action, thriller" or "comedy/drama": rules search the whole cell.
    return LabelMapper(rules=WIKIPEDIA_RULES, separator=None, superhero_keywords=True)


def netflix_mapper() -> LabelMapper:
    return LabelMapper(exact=NETFLIX_LABELS, separator=",", superhero_keywords=True)
