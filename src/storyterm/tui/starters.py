"""Suggested opening prompts per genre (the seed app's own lists, plus a few for genres it had none for, and for
the default genres in words)."""

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
    # For the genres given in words to models without genre tokens (engine/genres.py).
    "comedy": ["A wedding planner who hates weddings", "On the worst day of his life,", "Two rival food trucks"],
    "romance": ["They met on the last train home", "Every summer, she returns to the island", "A letter arrives"],
    "western": ["The stranger rode into town at noon", "The sheriff of Red Creek", "Across the dry plains,"],
    "fantasy": ["The dragon had slept for a thousand years", "A young mage", "Beyond the northern forest,"],
    "mystery": ["The body was found in the library", "Nobody had opened the locked room since", "A missing heiress"],
    "adventure": ["The map led to an island no chart showed", "A treasure hunter", "Deep in the jungle,"],
}


def starters_for(genre: str | None) -> list[str]:
    """Starters for a genre; for free mode or an unknown genre, every starter once, in order."""
    if genre is not None and genre in STARTERS:
        return list(STARTERS[genre])
    seen: list[str] = []
    for starters in STARTERS.values():
        seen.extend(s for s in starters if s not in seen)
    return seen
