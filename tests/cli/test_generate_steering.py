"""CLI flags for banned words and stop sequences (and later the author's note)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyterm import cli
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import ModelSpec, load_model
from storyterm.engine.settings import SamplerSettings

GREEDY_FLAGS = ["--greedy", "--max-new-tokens", "16", "--no-trim"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ban_and_stop_reach_the_engine_and_the_json(capsys, tiny_checkpoint: Path) -> None:
    engine = StoryEngine(load_model(ModelSpec(str(tiny_checkpoint), device="cpu")))
    settings = SamplerSettings(max_new_tokens=16, do_sample=False, trim_sentences=False)
    full = engine.generate(GenerationRequest("drama", "She opens the door", settings=settings)).text
    stop = full[6:9]
    expected = engine.generate(GenerationRequest("drama", "She opens the door", settings=settings,
                                                 banned_words=("ghost", "bar"), stop_sequences=(stop, "\n"))).text
    assert expected == full[: full.find(stop)].rstrip()
    code, out, err = _run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p",
                          "She opens the door", *GREEDY_FLAGS, "--ban", "ghost", "--ban", "bar",
                          "--stop", stop, "--stop", "\\n", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["texts"] == [expected]
    assert data["banned_words"] == ["ghost", "bar"]
    assert data["stop_sequences"] == [stop, "\n"]
    assert data["stats"]["stop_sequence"] == stop
    code, out, err = _run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p",
                          "She opens the door", *GREEDY_FLAGS, "--stop", stop)
    assert code == 0, err
    assert out == "She opens the door" + expected + "\n"


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--ban", ""], "a banned word must be some text"),
    (["--stop", ""], "a stop sequence must be some text"),
])
def test_bad_ban_and_stop_are_one_line_usage_errors(capsys, tiny_checkpoint: Path, flags, fragment) -> None:
    code, out, err = _run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", "The",
                          *GREEDY_FLAGS, *flags)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in err
    assert out == ""


def test_authors_note_flags_reach_the_prompt(capsys, tiny_checkpoint: Path) -> None:
    from storyterm.engine.prompt import build_prompt

    story = "A man walks into a bar. The ghost screams. She falls in love."
    code, out, err = _run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", story,
                          *GREEDY_FLAGS, "--authors-note", "Style: tense", "--authors-note-depth", "2",
                          "--memory", "Anna.", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["prompt"] == build_prompt("drama", "A man walks into a bar. [Style: tense] The ghost screams. "
                                                   "She falls in love.", "Anna.")
    assert data["authors_note"] == "Style: tense" and data["authors_note_depth"] == 2
    assert data["warnings"] == []
    engine = StoryEngine(load_model(ModelSpec(str(tiny_checkpoint), device="cpu")))
    expected = engine.generate(GenerationRequest("drama", story, memory="Anna.", authors_note="Style: tense",
                                                 authors_note_depth=2,
                                                 settings=SamplerSettings(max_new_tokens=16, do_sample=False,
                                                                           trim_sentences=False)))
    assert data["texts"] == expected.texts


def test_too_long_authors_note_warns_in_one_line(capsys, tiny_checkpoint: Path) -> None:
    code, out, err = _run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", "The end.",
                          *GREEDY_FLAGS, "--authors-note", "tense " * 60)
    assert code == 0
    assert err.count("\n") == 1 and err.startswith("storyterm: warning: the author's note")
    assert out.startswith("The end.")


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--authors-note-depth", "-1"], "depth must be a whole number of sentences from 0 to 100"),
    (["--authors-note-depth", "x"], "--authors-note-depth"),
    (["--authors-note", "x" * 1001], "at most 1000 characters"),
])
def test_bad_authors_note_flags_are_one_line_usage_errors(capsys, tiny_checkpoint: Path, flags, fragment) -> None:
    code, out, err = _run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", "The",
                          *GREEDY_FLAGS, *flags)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in err


def test_lorebook_file_reaches_the_prompt_and_json_shows_the_parts(capsys, tiny_checkpoint: Path,
                                                                   tmp_path: Path) -> None:
    from storyterm.engine.prompt import build_prompt

    book = tmp_path / "world.json"
    book.write_text(json.dumps({"entries": [
        {"keys": ["ghost"], "text": "The ghost is Anna's mother."},
        {"keys": ["Mars"], "text": "Mars is red."},
    ]}), encoding="utf-8")
    story = "A man walks into a bar. The ghost screams."
    code, out, err = _run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", story,
                          *GREEDY_FLAGS, "--lorebook", str(book), "--memory", "Anna.", "--authors-note", "tense",
                          "--authors-note-depth", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["prompt"] == build_prompt(
        "drama", "[The ghost is Anna's mother.] A man walks into a bar. [tense] The ghost screams.", "Anna.")
    assert [(part["part"], part["label"], part["text"]) for part in data["context"]] == [
        ("header", "header", "<BOS> <drama>"), ("memory", "memory", " [Anna.]"),
        ("lorebook", "ghost", " [The ghost is Anna's mother.]"), ("story", "story", " A man walks into a bar."),
        ("note", "author's note", " [tense]"), ("story", "story after the note", " The ghost screams."),
    ]
    assert sum(part["tokens"] for part in data["context"]) == data["stats"]["prompt_tokens"]
    assert data["left_out"] == [] and len(data["lorebook"]["entries"]) == 2


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "--lorebook: cannot read lorebook"),
    ("{oops", "is not valid JSON"),
    ('{"entries": [{"keys": ["a"], "txt": "x"}]}', "entry 1: unknown field 'txt'"),
])
def test_a_bad_lorebook_file_is_a_one_line_usage_error(capsys, tiny_checkpoint: Path, tmp_path: Path,
                                                       content: str | None, fragment: str) -> None:
    path = tmp_path / "book.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, err = _run(capsys, "generate", "--model", str(tiny_checkpoint), "-g", "drama", "-p", "The",
                          *GREEDY_FLAGS, "--lorebook", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in err and out == ""
