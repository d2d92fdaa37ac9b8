"""prepare_data on small fixture files: the Wikipedia columns, a Netflix-like multi-label CSV, any CSV, line files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from storyterm.engine.prompt import parse_training_line
from training.common import Story
from training.genre_mapping import mentions_superhero
from training.prepare_data import clean_text, main, prepare, split_stories

WIKI_COLUMNS = ["Release Year", "Title", "Origin/Ethnicity", "Director", "Cast", "Genre", "Wiki Page", "Plot"]


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def wiki_row(title: str, genre: str, plot: str) -> dict:
    return {"Release Year": "1999", "Title": title, "Origin/Ethnicity": "American", "Director": "X", "Cast": "Y",
            "Genre": genre, "Wiki Page": "https://en.wikipedia.org/wiki/X", "Plot": plot}


def read_lines(path: Path) -> list[tuple[str, str]]:
    return [parse_training_line(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_clean_text_removes_citations_special_tokens_and_extra_whitespace():
    raw = "The crew lands on Mars.[1] They  find\n a <drama> signal [citation needed] <EOS> and flee [12]."
    assert clean_text(raw) == "The crew lands on Mars. They find a signal and flee."


def test_superhero_keywords_match_names_case_sensitively():
    assert mentions_superhero("Batman returns to Gotham")
    assert mentions_superhero("a boy discovers his superpowers")
    assert not mentions_superhero("a hulk of a man with the strength of an iron man")


def test_wikipedia_csv_is_mapped_onto_the_six_genres(tmp_path: Path):
    source = write_csv(tmp_path / "wiki_movie_plots_deduped.csv", WIKI_COLUMNS, [
        wiki_row("Night Ride", "crime drama", "Two cops chase a killer through the city at night.[3]"),
        wiki_row("Red Planet", "science fiction", "Astronauts crash on Mars and must find water."),
        wiki_row("The Cellar", "horror comedy", "A family hears screams from the cellar of their new house."),
        wiki_row("Laughs", "comedy", "Two friends open a bakery and nothing goes right."),
        wiki_row("Dark Knight", "action", "Batman fights the Joker for the soul of Gotham City."),
        wiki_row("Empty", "drama", "   "),
        wiki_row("Copy", "crime thriller", "Two cops chase a killer through the city at night."),
        wiki_row("Letters", "romantic drama", "A widow writes letters to a sailor she has never met."),
    ])
    summary = prepare([source], tmp_path / "out", eval_fraction=0)
    stories = read_lines(tmp_path / "out" / "train.txt")
    assert stories == [
        ("thriller", "Two cops chase a killer through the city at night."),
        ("sci_fi", "Astronauts crash on Mars and must find water."),
        ("horror", "A family hears screams from the cellar of their new house."),
        ("superhero", "Batman fights the Joker for the soul of Gotham City."),
        ("drama", "A widow writes letters to a sailor she has never met."),
    ]
    (source_report,) = summary["inputs"]
    assert source_report["format"] == "wikipedia"
    assert source_report["skipped"] == {"no mapped genre": 1, "empty text": 1}
    assert summary["dropped"] == {"duplicate": 1}


def test_netflix_multi_label_cells_keep_the_rarest_classic_genre(tmp_path: Path):
    columns = ["show_id", "type", "title", "director", "cast", "country", "date_added", "release_year", "rating",
               "duration", "listed_in", "description"]
    base = dict.fromkeys(columns, "")
    source = write_csv(tmp_path / "netflix_titles.csv", columns, [
        {**base, "title": "A", "listed_in": "Dramas, Thrillers", "description": "A nurse suspects her patient lies."},
        {**base, "title": "B", "listed_in": "International Movies, Action & Adventure",
         "description": "A courier races across Lagos with a stolen bag."},
        {**base, "title": "C", "listed_in": "Comedies", "description": "A chef and a mime start a band."},
        {**base, "title": "D", "listed_in": "Sci-Fi & Fantasy, Horror Movies, Dramas",
         "description": "A space station crew is hunted by a thing from the ice."},
        {**base, "title": "E", "listed_in": "Action & Adventure, Sci-Fi & Fantasy",
         "description": "A teenager gains superpowers after a lab accident."},
    ])
    prepare([source], tmp_path / "out", eval_fraction=0)
    assert [genre for genre, _ in read_lines(tmp_path / "out" / "train.txt")] == [
        "thriller", "action", "sci_fi", "superhero"]


@pytest.mark.parametrize(("options", "expected"), [
    (["--multi-label", "all"], [  # every label its own genre
        ("sci_fi_fantasy", "A knight rides north to slay a dragon."),
        ("adventure", "A knight rides north to slay a dragon."),
        ("romance", "Two rivals fall in love at a bake-off."),
    ]),
    (["--label-map", "Romance=love;Adventure=quest"], [  # mapped labels only, the rarest per row
        ("quest", "A knight rides north to slay a dragon."),
        ("love", "Two rivals fall in love at a bake-off."),
    ]),
], ids=["multi-label-all", "label-map"])
def test_any_csv_with_custom_labels(tmp_path: Path, options: list[str], expected: list[tuple[str, str]]):
    source = write_csv(tmp_path / "books.csv", ["blurb", "tags"], [
        {"blurb": "A knight rides north to slay a dragon.", "tags": "Sci-Fi & Fantasy|Adventure"},
        {"blurb": "Two rivals fall in love at a bake-off.", "tags": "Romance"},
        {"blurb": "", "tags": "Romance"},
    ])
    code = main([str(source), "--format", "csv", "--text-column", "blurb", "--label-column", "tags",
                 "--label-separator", "|", *options, "--eval-fraction", "0", "--output-dir", str(tmp_path / "out")])
    assert code == 0
    assert read_lines(tmp_path / "out" / "train.txt") == expected


def test_line_files_skip_malformed_lines_and_report_them(tmp_path: Path):
    source = tmp_path / "seed.txt"
    source.write_text(
        "<BOS> <drama> A long goodbye at the station. <EOS>\n"
        "not a training line\n"
        "\n"
        "<BOS> <horror> <EOS>\n"
        "<BOS> <horror> The doll moves when nobody looks.[2] <EOS>\n",
        encoding="utf-8",
    )
    summary = prepare([source], tmp_path / "out", eval_fraction=0)
    assert read_lines(tmp_path / "out" / "train.txt") == [
        ("drama", "A long goodbye at the station."),
        ("horror", "The doll moves when nobody looks."),
    ]
    assert summary["inputs"][0]["skipped"] == {"not a <BOS> <genre> … line": 2}
    counts = json.loads((tmp_path / "out" / "counts.json").read_text(encoding="utf-8"))
    assert counts["counts"]["train"] == {"drama": 1, "horror": 1}


def test_missing_csv_column_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    source = write_csv(tmp_path / "x.csv", ["text", "label"], [{"text": "Some story here.", "label": "a"}])
    code = main([str(source), "--text-column", "story", "--label-column", "label",
                 "--output-dir", str(tmp_path / "out")])
    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no column 'story'" in error
    assert not (tmp_path / "out" / "train.txt").exists()


def test_split_is_stratified_disjoint_and_independent_of_input_order():
    stories = [Story(genre, f"{genre} story number {i} with some words") for genre, n in
               (("drama", 40), ("horror", 10), ("superhero", 3)) for i in range(n)]
    train, evaluation = split_stories(stories, 0.1, seed=7, min_eval_per_genre=2)
    assert sorted(s.genre for s in evaluation).count("drama") == 4
    assert sorted(s.genre for s in evaluation).count("horror") == 1 + 1  # round(1.0) raised to the minimum of 2
    assert sorted(s.genre for s in evaluation).count("superhero") == 2
    assert not set(evaluation) & set(train) and len(train) + len(evaluation) == len(stories)
    _, shuffled_eval = split_stories(list(reversed(stories)), 0.1, seed=7, min_eval_per_genre=2)
    assert set(shuffled_eval) == set(evaluation)
    _, other_seed = split_stories(stories, 0.1, seed=8, min_eval_per_genre=2)
    assert set(other_seed) != set(evaluation)
