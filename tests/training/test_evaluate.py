"""evaluate: windows, perplexity and bits per byte, genre accuracy, samples through the engine."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from storyterm.engine.prompt import training_line
from storyterm.engine.words import words_in
from training.data import TokenizedStory
from training.evaluate import evaluate, main as evaluate_main, story_windows
from training.train import main as train_main

LINES = [
    ("horror", "The ghost screams in the old house and the family runs into the night."),
    ("action", "The soldier fights across the bridge while the tanks roll in."),
    ("drama", "She falls in love with the painter who lives across the street."),
    ("sci_fi", "Captain Vega pilots the starship through the asteroid field toward Mars."),
    ("thriller", "The detective finds a letter hidden under the floor of the hotel room."),
    ("superhero", "Batman and Superman fight the army of robots above Gotham city."),
]


def test_windows_keep_the_header_and_score_every_body_token_once():
    header, body = [1, 7], list(range(100, 137))
    windows = story_windows(TokenizedStory("drama", header, body, 37), window=12)
    scored = []
    for w in windows:
        assert w.ids[:2] == header and len(w.ids) <= 12
        scored += w.ids[w.score_from:]
    assert scored == body
    # Later windows carry earlier story tokens as context, as the engine's trimmed prompt does.
    assert windows[1].score_from > len(header)


def test_trained_model_has_lower_perplexity_than_untrained_on_its_training_lines(tmp_path: Path, tiny_checkpoint):
    base = shutil.copytree(tiny_checkpoint, tmp_path / "base")
    data = tmp_path / "train.txt"
    data.write_text("\n".join(training_line(g, t) for g, t in LINES * 3) + "\n", encoding="utf-8")
    tuned = tmp_path / "tuned"
    assert train_main(["--model-name-or-path", str(base), "--train-file", str(data), "--output-dir", str(tuned),
                       "--block-size", "64", "--batch-size", "4", "--max-steps", "20", "--learning-rate", "5e-3",
                       "--warmup", "0", "--epochs", "8", "--eval-steps", "0", "--save-steps", "1000",
                       "--no-progress", "--skip-samples"]) == 0
    before = evaluate(base, [data], samples_per_genre=0, progress=False, device="cpu")
    after = evaluate(tuned, [data], samples_per_genre=1, max_new_tokens=6, progress=False, device="cpu")
    assert after["perplexity"] < before["perplexity"] / 2
    assert after["bits_per_byte"] < before["bits_per_byte"]
    for report in (before, after):
        assert math.isclose(report["bits_per_byte"],
                            report["loss"] * report["tokens"] / math.log(2) / report["bytes"])
        assert report["bytes"] == sum(len(t.encode()) for _, t in LINES * 3)
        accuracy = report["genre_accuracy"]
        assert sum(sum(row.values()) for row in accuracy["confusion"].values()) == len(LINES) * 3
        assert 0 <= accuracy["balanced_accuracy"] <= 1
    assert set(after["samples"]) == {g for g, _ in LINES} and all(len(v) == 1 for v in after["samples"].values())
    # The samples' invented-word rate against the checkpoint's words.txt (written by training.train).
    invented = after["invented_words"]
    from storyterm.engine.words import invented_word_rate, read_known_words

    expected = invented_word_rate([t for v in after["samples"].values() for t in v], read_known_words(tuned))
    assert invented["invented_word_rate"] == expected.rate and invented["checked_words"] == expected.checked
    assert invented["invented_words"] == dict(expected.invented_words)
    assert "invented_words" not in before  # no samples, no rate

    assert evaluate_main([str(tuned), str(data), "--samples-per-genre", "0", "--no-progress",
                          "--update-model-card"]) == 0
    card = (tuned / "README.md").read_text()
    assert "## Evaluation" in card and '"bits_per_byte"' in card
    info = json.loads((tuned / "training_info.json").read_text())
    assert info["evaluation"]["stories"] == len(LINES) * 3
    assert info["samples"] == {}                       # trained with --skip-samples; none drawn here either

    assert evaluate_main([str(tuned), str(data), "--samples-per-genre", "1", "--no-progress", "--seed", "5",
                          "--update-model-card"]) == 0
    info = json.loads((tuned / "training_info.json").read_text())
    assert set(info["samples"]) == {g for g, _ in LINES}
    assert info["evaluation"]["samples_invented_word_rate"] >= 0
    card = (tuned / "README.md").read_text()
    assert all(f"**{genre}**: {text}" in card for genre, text in info["samples"].items())


def test_cli_prints_json_and_writes_the_output_file(tmp_path: Path, tiny_checkpoint, capsys):
    data = tmp_path / "eval.txt"
    data.write_text("\n".join(training_line(g, t) for g, t in LINES) + "\n<BOS> <romance> unknown genre <EOS>\n",
                    encoding="utf-8")
    out = tmp_path / "report.json"
    assert evaluate_main([str(tiny_checkpoint), str(data), "--samples-per-genre", "0", "--no-progress",
                          "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["stories"] == len(LINES) and printed["skipped_unknown_genres"] == ["romance"]
    # One story per genre: it is misclassified exactly when some other header explains it better than its own.
    accuracy = printed["genre_accuracy"]
    for genre, gaps in accuracy["header_gap_nats_per_token"].items():
        assert gaps[genre] == 0 and set(gaps) == {g for g, _ in LINES}
        predicted = next(iter(accuracy["confusion"][genre]))
        assert (predicted != genre) == (min(gaps.values()) < 0)
        assert gaps[predicted] == min(gaps.values())


def test_a_missing_checkpoint_is_a_one_line_error(tmp_path: Path, capsys):
    data = tmp_path / "eval.txt"
    data.write_text(training_line("drama", "text") + "\n", encoding="utf-8")
    assert evaluate_main([str(tmp_path / "nope"), str(data)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_metrics_describe_the_trained_weights_unless_another_dtype_is_asked(tmp_path: Path, tiny_checkpoint,
                                                                           monkeypatch, capsys):
    from storyterm.engine import fast_paths

    monkeypatch.setattr(fast_paths, "AUTO_INT8_MIN_PARAMETERS", 0)  # the engine's auto would quantize this model
    data = tmp_path / "eval.txt"
    data.write_text("\n".join(training_line(g, t) for g, t in LINES) + "\n", encoding="utf-8")
    reports = {}
    for dtype in (None, "int8"):
        extra = ["--dtype", dtype] if dtype else []
        assert evaluate_main([str(tiny_checkpoint), str(data), "--samples-per-genre", "0", "--no-progress",
                              *extra]) == 0
        reports[dtype] = json.loads(capsys.readouterr().out)
    assert reports[None]["dtype"] == "fp32" and reports["int8"]["dtype"] == "int8"
    assert reports[None]["parameters"] > reports["int8"]["parameters"]  # quantized weights are not parameters


def test_known_words_file_gives_the_invented_word_rate_of_the_samples(tmp_path: Path, tiny_checkpoint, capsys):
    data = tmp_path / "eval.txt"
    data.write_text("\n".join(training_line(g, t) for g, t in LINES) + "\n", encoding="utf-8")
    known = tmp_path / "known.txt"
    known.write_text("the\n", encoding="utf-8")
    args = [str(tiny_checkpoint), str(data), "--samples-per-genre", "2", "--max-new-tokens", "12", "--no-progress",
            "--max-stories", "1"]
    assert evaluate_main(args) == 0
    assert json.loads(capsys.readouterr().out)["invented_words"] is None  # the tiny checkpoint has no words.txt
    assert evaluate_main([*args, "--known-words", str(known)]) == 0
    report = json.loads(capsys.readouterr().out)
    invented = report["invented_words"]
    assert invented["known_words"] == 1
    lower = [w for texts in report["samples"].values() for t in texts for w in words_in(t) if w.islower()]
    assert invented["checked_words"] == len(lower)
    assert invented["invented_words_count"] == sum(w != "the" for w in lower)
    with pytest.raises(SystemExit, match="cannot read --known-words"):
        evaluate_main([*args, "--known-words", str(tmp_path / "missing.txt")])
