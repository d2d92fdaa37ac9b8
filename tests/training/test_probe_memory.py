"""training.probe_memory: the share of passages that use a name from Memory."""

from __future__ import annotations

from training.probe_memory import STARTERS, probe, uses_any


def test_a_name_counts_only_as_a_whole_word():
    assert uses_any("Then Mara left.", ["Jonah", "Mara"])
    assert not uses_any("Amara left.", ["Mara"]) and not uses_any("mara left", ["Mara"])


def test_probe_runs_every_genre_name_set_and_starter(tiny_checkpoint):
    report = probe(str(tiny_checkpoint), max_new_tokens=4, name_sets=[("Mara", "Jonah", "Elias")])
    from storyterm.engine import ModelSpec, load_model

    genres = load_model(ModelSpec(source=str(tiny_checkpoint), device="cpu", dtype="fp32")).genres
    assert report["passages"] == len(genres) * len(STARTERS)
    assert 0 <= report["memory_name_use"] <= 1 and 0 <= report["baseline_without_memory"] <= 1
    assert report["names"] == ["Mara, Jonah, Elias"]
    assert all(example["memory"] == "Mara, Jonah, Elias" for example in report["examples"])
