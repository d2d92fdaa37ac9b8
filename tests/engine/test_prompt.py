import pytest

from storyterm.engine import prompt


def test_prompt_is_bos_genre_then_text():
    assert prompt.build_prompt("horror", "A ghost") == "<BOS> <horror> A ghost"
    assert prompt.build_prompt("horror") == "<BOS> <horror>"


def test_memory_goes_right_after_the_header_in_brackets():
    assert prompt.build_prompt("drama", "She runs.", memory="Anna is a spy.") == "<BOS> <drama> [Anna is a spy.] She runs."
    assert prompt.build_prompt("drama", "She runs.", memory=" [Anna,\n Tom] ") == "<BOS> <drama> [Anna, Tom] She runs."
    assert prompt.build_header("drama", memory="   ") == "<BOS> <drama>"


def test_free_mode_has_no_genre_token():
    assert prompt.build_prompt(None, "Once") == "<BOS> Once"


@pytest.mark.parametrize(
    ("genre", "expected"),
    [("action", '"Heat" is an action film about'), ("sci_fi", '"Heat" is a sci-fi film about'), (None, '"Heat" is a film about')],
)
def test_title_prompt_uses_the_right_article(genre, expected):
    assert prompt.title_prompt("Heat", genre) == expected


def test_training_line_round_trips():
    line = prompt.training_line("thriller", "A  detective\n finds a body.")
    assert line == "<BOS> <thriller> A detective finds a body. <EOS>"
    assert prompt.parse_training_line(line) == ("thriller", "A detective finds a body.")
    assert prompt.parse_training_line("no header here") is None


def test_a_line_without_genre_is_the_neutral_header():
    line = prompt.training_line(None, "Two friends open a bakery.")
    assert line == "<BOS> Two friends open a bakery. <EOS>"
    assert prompt.parse_training_line(line) == (None, "Two friends open a bakery.")


def test_genres_come_from_special_tokens_except_structural_ones():
    tokens = ["<BOS>", "<EOS>", "<PAD>", "<drama>", "<romance>", "<|endoftext|>", "<drama>"]
    assert prompt.genres_from_special_tokens(tokens) == ["drama", "romance"]


def test_normalize_and_reject_bad_genre_names():
    assert prompt.normalize_genre("Sci-Fi & Fantasy") == "sci_fi_fantasy"
    with pytest.raises(ValueError):
        prompt.genre_token("Bad Genre")
    assert prompt.genre_label("sci_fi") == "Sci-Fi"
