"""The built-in model's data recipe: four sources, deduplicated across sources, held-out plots kept out of every
training file, neutral header for stories outside the six genres, memory headers with character names."""

from __future__ import annotations

import csv
from pathlib import Path

from storyterm.engine.prompt import build_header, training_line
from training.builtin_data import (
    RECIPE_DIR,
    character_names,
    dedup_key,
    deduplicate_across,
    movies_labels,
    new_names,
    prepare_builtin_data,
    renamed,
    with_memory,
)
from training.common import Story, read_stories

PLOTS = [
    ("drama", "Anna leaves her village for the city. In the city Anna finds work in a bakery and falls in love."),
    ("horror", "A family moves into a house where the cellar screams at night. The father goes down alone."),
    ("action", "Two rival drivers race across the desert for a stolen truck full of gold and guns."),
    ("thriller", "A detective follows a trail of letters to a killer who writes only on rainy days."),
]


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def make_data_dir(root: Path, eval_plot: str) -> Path:
    plots = [training_line(g, f"{t} Version {i}.") for i, (g, t) in enumerate(PLOTS * 3)]
    (root / "genre_plots").mkdir(parents=True)
    (root / "genre_plots" / "6_genre_eval_data.txt").write_text("\n".join(plots) + "\n", encoding="utf-8")
    write_csv(root / "wiki_movie_plots" / "wiki_movie_plots_1901_1935.csv", [
        {"Title": "Copy", "Genre": "drama", "Plot": eval_plot},                       # a held-out plot again
        {"Title": "Laughs", "Genre": "comedy", "Plot": "Two friends open a bakery and nothing goes right at all."},
        {"Title": "West", "Genre": "western", "Plot": "A sheriff rides into town. Nobody in town trusts him."},
    ])
    write_csv(root / "netflix" / "netflix_titles.csv", [
        {"title": "Dup", "listed_in": "Comedies", "description": "Two friends open a bakery and nothing goes right at all."},
        {"title": "Scary", "listed_in": "Horror Movies", "description": "A ghost haunts a lonely lighthouse keeper."},
    ])
    write_csv(root / "movies_metadata" / "movies_metadata_sample.csv", [
        {"title": "Space", "genres": "[{'id': 878, 'name': 'Science Fiction'}]",
         "overview": "Astronauts find a signal on a frozen moon and follow it."},
    ])
    return root


def test_held_out_plots_stay_out_of_every_training_file_and_duplicates_go(tmp_path: Path):
    work = tmp_path / "work"
    # First prepare once to learn which plots the split holds out, then put one of them into the Wikipedia CSV.
    data = make_data_dir(tmp_path / "data", eval_plot="placeholder text that is long enough")
    prepare_builtin_data(data, work)
    held_out = read_stories([work / "plots" / "eval.txt"])
    assert held_out
    data2 = make_data_dir(tmp_path / "data2", eval_plot=held_out[0].text)
    summary = prepare_builtin_data(data2, tmp_path / "work2")
    training = read_stories(sorted((tmp_path / "work2" / RECIPE_DIR).glob("*.txt")))
    held_keys = {dedup_key(s.text) for s in held_out}
    assert not any(dedup_key(_strip_memory(s.text)) in held_keys for s in training)
    assert summary[RECIPE_DIR]["dropped"] == {"wiki: a held-out story": 1, "netflix: duplicate": 1}
    texts = [_strip_memory(s.text) for s in training]
    assert len(texts) == len({dedup_key(t) for t in texts})
    # Keyed by their ends: a memory header may rename a story's first, capitalised word.
    genres = {s.text[-20:]: s.genre for s in training}
    assert genres["g goes right at all."] is None             # comedy: neutral header
    assert genres[" in town trusts him."] is None            # western: neutral header
    assert genres[" moon and follow it."] == "sci_fi"        # The Movies Dataset's genre list
    assert genres["y lighthouse keeper."] == "horror"


def _strip_memory(text: str) -> str:
    return text.split("] ", 1)[1] if text.startswith("[") else text


def test_dedup_key_matches_the_same_plot_cleaned_two_ways():
    assert dedup_key("Anna leaves, her village!") == dedup_key("anna  leaves her village")
    assert dedup_key("Anna leaves") != dedup_key("Anna stays")


def test_movies_genre_cells_are_python_literals():
    assert movies_labels("[{'id': 18, 'name': 'Drama'}, {'id': 27, 'name': 'Horror'}]") == "Drama,Horror"
    assert movies_labels("not a list") == ""


def test_character_names_are_capitalised_words_never_seen_in_lower_case():
    text = "Anna meets Tom. The Police arrive. Anna runs and Tom follows Anna. " * 10
    common = {"the", "police", "meets", "runs", "and", "follows", "arrive"}
    assert character_names(text, common) == ["Anna", "Tom"]


def test_memory_header_uses_the_engines_memory_layout():
    story = Story("drama", "Anna meets Tom. Anna runs and Tom follows.")
    [with_names] = with_memory([story], {"meets", "runs"}, seed=0, share=1.0)
    memory, _, rest = with_names.text.partition("] ")
    assert rest == story.text
    assert sorted(memory.lstrip("[").split(", ")) == ["Anna", "Tom"]
    assert with_names.line().startswith(build_header("drama", memory.lstrip("[")))
    assert with_memory([story], {"meets"}, seed=0, share=0.0) == [story]


def test_renaming_changes_whole_names_and_possessives_only():
    text = "Anna meets Tom. Tom's dog bites Annabel, and Anna laughs at Tomas."
    assert renamed(text, ["Anna", "Tom"], ["Brami", "Lisen"]) == (
        "Brami meets Lisen. Lisen's dog bites Annabel, and Brami laughs at Tomas.")
    # One pass: a new name that is also an old one is not renamed twice.
    assert renamed("Anna and Tom", ["Anna", "Tom"], ["Tom", "Anna"]) == "Tom and Anna"


def test_new_names_are_distinct_and_never_a_word_of_the_story():
    import random

    avoid = {"Anna", "Tom", "Rain"}
    names = new_names(50, ["Anna", "Tom", "Rain", "Corwin"], avoid, random.Random(3))
    assert len(set(names)) == 50
    assert not avoid & set(names)
    assert "Corwin" in names  # the pool is drawn from, made-up names fill the rest
    assert all(name[0].isupper() and name[1:].islower() and name.isalpha() for name in names)


def test_renamed_memory_stories_name_the_same_characters_in_header_and_text():
    story = Story("drama", "Anna meets Tom. Anna runs and Tom follows. The rain falls.")
    common = {"meets", "runs", "and", "follows", "the", "rain", "falls"}
    [with_names] = with_memory([story], common, seed=1, share=1.0, rename_share=1.0, name_pool=["Corwin", "Ilse"])
    memory, _, text = with_names.text.partition("] ")
    header_names = memory.lstrip("[").split(", ")
    assert len(header_names) == 2 and not {"Anna", "Tom"} & set(header_names)
    assert "Anna" not in text and "Tom" not in text
    assert sorted(text.count(name) for name in header_names) == [2, 2]
    assert text.endswith("follows. The rain falls.")
    [kept] = with_memory([story], common, seed=1, share=1.0, rename_share=0.0)
    assert sorted(kept.text.partition("] ")[0].lstrip("[").split(", ")) == ["Anna", "Tom"]


def test_the_model_card_names_the_sources_and_licences(tmp_path: Path):
    from training.model_card import sources_section

    data = make_data_dir(tmp_path / "data", eval_plot="placeholder text that is long enough")
    prepare_builtin_data(data, tmp_path / "work")
    section = "\n".join(sources_section(sorted((tmp_path / "work" / RECIPE_DIR).glob("*.txt"))))
    assert section.startswith("## Sources and licences")
    assert section.count("## Sources and licences") == 1      # one folder, named once
    assert "CC BY-SA 4.0" in section and "CC0" in section
    assert sources_section([tmp_path / "elsewhere" / "train.txt"]) == []
