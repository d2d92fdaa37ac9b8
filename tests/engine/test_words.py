"""The word definition, the known-words file and the invented-word rate on fixed text."""

from __future__ import annotations

from pathlib import Path

from storyterm.engine.words import (
    WORDS_FILE,
    capitalised_invented_rate,
    checkpoint_known_words,
    invented_word_rate,
    is_title_case,
    known_words_from_texts,
    read_known_words,
    words_in,
    write_known_words,
)

TRAINING = [
    "However, the well-known detective doesn't sleep. In 1920s Paris, McDonald runs the café.",
    "The ghost screams in the old house.",
]


def test_words_split_on_everything_but_letters():
    assert words_in("well-known don't 1920s café_bar x2y") == ["well", "known", "don", "t", "s", "café", "bar", "x", "y"]


def test_known_words_are_every_word_lower_cased():
    known = known_words_from_texts(TRAINING)
    assert {"however", "well", "known", "doesn", "t", "s", "paris", "mcdonald", "café", "ghost"} <= known
    assert all(word == word.lower() for word in known)


def test_invented_word_rate_counts_lower_case_words_not_in_the_training_text():
    known = known_words_from_texts(TRAINING)
    # Checked (lower-case): ghost, bidaying, the, house, codedricane, screams, times, bidaying = 8.
    # Free: "The", "Vega" (capitals, names), "McQueen", "theBig" (a capital inside); digits are not words.
    text = "The ghost bidaying the house. Vega codedricane screams 42 times? McQueen theBig bidaying."
    report = invented_word_rate([text], known)
    assert report.checked == 8
    assert report.invented == 4  # "times" is a real word, but not one of this training text
    assert dict(report.invented_words) == {"bidaying": 2, "codedricane": 1, "times": 1}
    assert report.rate == 4 / 8
    assert report.to_dict(most_common=1)["invented_words"] == {"bidaying": 2}


def test_a_sentence_initial_word_counts_as_known_in_lower_case():
    report = invented_word_rate(["however, paris sleeps"], known_words_from_texts(TRAINING))
    assert report.invented_words == {"sleeps": 1}


def test_no_checked_words_is_a_zero_rate():
    report = invented_word_rate(["", "Vega! 123 ..."], {"the"})
    assert (report.checked, report.invented, report.rate) == (0, 0, 0.0)


def test_words_file_round_trips_sorted_lower_case_utf8(tmp_path: Path):
    path = write_known_words(tmp_path, {"Zebra", "café", "apple", "not a word", ""})
    assert path == tmp_path / WORDS_FILE
    assert path.read_bytes().decode("utf-8") == "apple\ncafé\nzebra\n"
    assert read_known_words(path) == read_known_words(tmp_path) == {"apple", "café", "zebra"}
    assert checkpoint_known_words(tmp_path) == {"apple", "café", "zebra"}


def test_a_checkpoint_without_a_words_file_has_no_known_words(tmp_path: Path):
    assert checkpoint_known_words(tmp_path) is None
    assert checkpoint_known_words(None) is None
    (tmp_path / WORDS_FILE).write_text("\n", encoding="utf-8")
    assert checkpoint_known_words(tmp_path) is None


def test_repeated_word_share_counts_words_met_within_the_window() -> None:
    from storyterm.engine.words import repeated_word_share

    assert repeated_word_share(["Cuba, Cuba. The Cuba was in Cuba."]) == 3 / 6  # cuba ×4, the, was: 3 repeats
    assert repeated_word_share(["one two three four"], window=2) == 0.0
    assert repeated_word_share(["alpha beta gamma alpha"], window=2) == 0.0  # alpha is 3 words back
    assert repeated_word_share(["alpha beta gamma alpha"], window=3) == 1 / 4
    assert repeated_word_share(["alpha", "alpha"]) == 0.0  # texts are separate
    assert repeated_word_share([]) == 0.0


def test_title_case_words_are_checked_against_the_known_words_and_the_prompt():
    known = known_words_from_texts(TRAINING)
    assert is_title_case("Anna") and is_title_case("I") and is_title_case("Café")
    assert not any(is_title_case(w) for w in ("McDonald", "NASA", "iPhone", "anna", ""))
    texts = [("Ghost Frogramed the House. Mara, McQueen and NASA: Frogramed!", "Memory: Mara."),
             ("Mara sleeps.", "")]
    report = capitalised_invented_rate(texts, known)
    # Title-case: Ghost, Frogramed, House (known: "house"), Mara (in its prompt), Frogramed; Mara (no prompt).
    assert report.checked == 6
    assert dict(report.invented_words) == {"Frogramed": 2, "Mara": 1}
