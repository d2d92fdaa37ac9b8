"""Suggested opening prompts per genre (the seed app's own lists, plus a few for genres it had none for)."""

from __future__ import annotations

STARTERS: dict[str, list[str]] = {
    "superhero": [
        "Batman",
        "Spider-Man",
        "Superman",
        "Gotham city is under attack",
        "Darkseid",
        "Thanos",
        "The Justice League",
        "The Avengers",
    ],
    "horror": [
        "A Demon hunter",
        "A Ghost",
        "Luigi enters a haunted resort",
        "An apparition",
        "A monster",
        "In the mist,",
        "A zombie",
    ],
    "sci_fi": ["Aliens", "In the future,", "A satellite", "After discovering time travel,"],
    "thriller": ["A detective must investigate the", "In the dark shadows,", "A serial killer"],
    "action": [
        "Special Agent Bart is hunting down",
        "After a robbery gone wrong,",
        "A treasure hunter",
        "An undercover cop poses as a gangster",
    ],
    "drama": ["After the funeral,", "Two estranged sisters", "A struggling musician"],
}


def starters_for(genre: str | None) -> list[str]:
    """Starters for a genre; for free mode or an unknown genre, every starter once, in order."""
    if genre is not None and genre in STARTERS:
        return list(STARTERS[genre])
    seen: list[str] = []
    for starters in STARTERS.values():
        seen.extend(s for s in starters if s not in seen)
    return seen
