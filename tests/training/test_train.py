"""Packing and the two training modes, end to end on a few dozen lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from storyterm.engine.prompt import CLASSIC_GENRES, genre_token, training_line
from training.common import Story
from training.data import TokenizedStory, balance_repeats, pack_stories, tokenize_stories
from training.train import main as train_main

PAD = 0
PLOTS = {
    "horror": "A ghost haunts the old house and the family hears screams in the cellar every night.",
    "action": "The soldier fights his way across the bridge while the army chases him with tanks and guns.",
    "drama": "A mother and her daughter meet again after twenty years and try to forgive each other.",
    "sci_fi": "The starship crew lands on a distant planet where the robots have built a city of glass.",
    "thriller": "The detective follows the killer through the rainy city and finds a letter in the hotel.",
    "superhero": "The masked hero uses his powers to stop the villain from destroying the city.",
}


def story(genre: str, body: list[int]) -> TokenizedStory:
    return TokenizedStory(genre, header=[1, 100 + len(genre)], body=body, text_bytes=len(body))


def write_training_lines(path: Path, copies: int = 4) -> Path:
    lines = [training_line(genre, f"{text} Part {i}.") for i in range(copies) for genre, text in PLOTS.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_packing_fills_every_block_and_repeats_the_header_on_continuations():
    stories = [story("drama", list(range(1000, 1030))), story("horror", list(range(2000, 2005))),
               story("action", list(range(3000, 3041)))]
    blocks = pack_stories(stories, block_size=16, pad_id=PAD)
    assert all(len(block) == 16 for block in blocks)
    # Every block starts with a header, and each story's body tokens come back in order, none lost but the tail.
    headers = {tuple(s.header) for s in stories}
    assert all(tuple(block[:2]) in headers for block in blocks)
    seen = [t for block in blocks for t in block if t >= 1000]
    for s in stories:
        mine = [t for t in seen if s.body[0] <= t <= s.body[-1]]
        assert mine == s.body[: len(mine)]
    # A continuation piece of the drama story starts again with the drama header.
    second = blocks[1]
    assert second[:2] == stories[0].header and second[2] == 1000 + 14


def test_packing_pads_only_the_space_a_header_cannot_use():
    blocks = pack_stories([story("drama", list(range(1000, 1013))), story("sci_fi", list(range(2000, 2020)))],
                          block_size=16, pad_id=PAD)
    assert blocks[0] == [1, 105, *range(1000, 1013), PAD]


def test_sentence_starts_come_from_the_tokenizer_offsets():
    from training.train import train_tokenizer

    text = 'The ship lands. "Run!" she cries. Nobody moves... The end'
    tokenizer = train_tokenizer([training_line("sci_fi", text)] * 3, ["sci_fi"], 300, 64)
    [tokenized] = tokenize_stories([Story("sci_fi", text)], tokenizer)
    pieces = [tokenizer.decode(tokenized.body[i:]) for i in tokenized.sentence_starts]
    assert [piece.lstrip()[:6] for piece in pieces] == ['"Run!"', "she cr", "Nobody", "The en"]


def test_a_continuation_rereads_the_cut_sentence_from_its_start():
    body = list(range(1000, 1040))
    sentences = story("drama", body)
    sentences = TokenizedStory("drama", sentences.header, body, 40, sentence_starts=(10, 25, 33))
    blocks = pack_stories([sentences], block_size=16, pad_id=PAD)
    # Block 0 holds body[0:14]; the cut sentence began at 10 (4 back), so block 1 restarts there. Block 1 ends at 24,
    # whose sentence also began at 10 — not after block 1's own start — so block 2 goes on from 24 itself.
    assert blocks[0][2:] == body[0:14]
    assert blocks[1][:2] == sentences.header and blocks[1][2:] == body[10:24]
    assert blocks[2][2:] == body[24:38]


def test_a_continuation_never_rereads_more_than_a_quarter_block_or_goes_backwards():
    body = list(range(1000, 1060))
    # The only sentence start is far behind the first cut (at 14): more than 16 // 4 = 4 tokens back → no re-read.
    far = TokenizedStory("drama", [1, 105], body, 60, sentence_starts=(3,))
    blocks = pack_stories([far], block_size=16, pad_id=PAD)
    assert blocks[1][2:] == body[14:28]
    # A start exactly at the previous piece's beginning would loop forever; it is ignored.
    same = TokenizedStory("drama", [1, 105], body, 60, sentence_starts=(14,))
    blocks = pack_stories([same], block_size=16, pad_id=PAD)
    assert [b[2] for b in blocks] == [1000, 1014, 1028, 1042]


def test_balance_repeats_rare_genres_more_but_never_drops():
    stories = [story("drama", [5])] * 100 + [story("horror", [5])] * 25 + [story("superhero", [5])] * 4
    repeats = balance_repeats(stories, 0.5)
    by_genre = {s.genre: r for s, r in zip(stories, repeats)}
    assert by_genre == {"drama": 1, "horror": 2, "superhero": 5}
    assert balance_repeats(stories, 1.0) == [1] * len(stories)


def _load_and_stream(checkpoint: Path, genre: str) -> str:
    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model

    loaded = load_model(ModelSpec(source=str(checkpoint), device="cpu"))
    assert genre in loaded.genres
    engine = StoryEngine(loaded)
    request = GenerationRequest(genre=genre, story="The night",
                                settings=loaded.generation_defaults.with_changes(max_new_tokens=8, seed=1))
    stream = engine.stream(request)
    pieces = list(stream)
    text = stream.result(timeout=30).texts[0]
    assert text and "".join(pieces).startswith(text)  # the passage as it ended: trimmed to a sentence or word end
    return text


def test_from_scratch_produces_a_complete_checkpoint_the_engine_streams_from(tmp_path: Path):
    data = write_training_lines(tmp_path / "train.txt")
    out = tmp_path / "model"
    code = train_main(["--from-scratch", "--preset", "tiny", "--vocab-size", "400", "--block-size", "48",
                       "--train-file", str(data), "--eval-file", str(data), "--output-dir", str(out),
                       "--max-steps", "4", "--batch-size", "4", "--eval-steps", "2", "--save-steps", "2",
                       "--no-progress", "--epochs", "2"])
    assert code == 0
    for name in ("model.safetensors", "config.json", "tokenizer.json", "generation_config.json", "README.md"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin"))
    # words.txt: every word of the training text, lower-cased and sorted; in the intermediate checkpoints too.
    words = (out / "words.txt").read_text(encoding="utf-8").splitlines()
    assert words == sorted(words) and {"ghost", "haunts", "part", "the"} <= set(words)
    assert all(word == word.lower() for word in words)
    intermediate = sorted((out / "checkpoints").glob("checkpoint-*"))
    assert intermediate and all((folder / "words.txt").read_text(encoding="utf-8").splitlines() == words
                                for folder in intermediate)
    config = json.loads((out / "config.json").read_text())
    assert config["n_positions"] == 48
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["do_sample"] is True and generation["temperature"] == 1.2 and generation["top_p"] == 0.95
    assert generation["top_k"] == 50 and generation["repetition_penalty"] == 1.1
    assert generation["max_new_tokens"] == 100
    assert {generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]} == {0, 1, 2}
    card = (out / "README.md").read_text()
    assert "steps: 4" in card and all(f"**{genre}**" in card for genre in CLASSIC_GENRES)
    assert isinstance(_load_and_stream(out, "horror"), str)


def test_fine_tune_adds_the_prompt_tokens_to_a_base_checkpoint_and_resumes(tmp_path: Path, tiny_checkpoint: Path):
    base = shutil.copytree(tiny_checkpoint, tmp_path / "base")
    # A base model without the storyterm tokens, as gpt2 would be: drop them from its tokenizer files by
    # fine-tuning on a custom genre the base does not know.
    data = tmp_path / "train.txt"
    data.write_text("\n".join(training_line("western", f"The cowboy rides into town number {i}.")
                              for i in range(12)) + "\n", encoding="utf-8")
    out = tmp_path / "tuned"
    args = ["--model-name-or-path", str(base), "--block-size", "32", "--train-file", str(data),
            "--output-dir", str(out), "--batch-size", "2", "--save-steps", "2", "--eval-steps", "0",
            "--no-progress", "--skip-samples", "--epochs", "3"]
    assert train_main([*args, "--max-steps", "2"]) == 0
    assert train_main([*args, "--max-steps", "3", "--resume"]) == 0
    info = json.loads((out / "training_info.json").read_text())
    assert info["steps"] == 3
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert genre_token("western") in json.dumps(tokenizer_config)
    assert info["genres"] == [*CLASSIC_GENRES, "western"]
    assert isinstance(_load_and_stream(out, "western"), str)


def test_line_by_line_reproduces_the_seed_recipe(tmp_path: Path):
    data = write_training_lines(tmp_path / "train.txt", copies=2)
    out = tmp_path / "lbl"
    assert train_main(["--from-scratch", "--preset", "tiny", "--vocab-size", "400", "--block-size", "32",
                       "--line-by-line", "--train-file", str(data), "--output-dir", str(out), "--max-steps", "2",
                       "--batch-size", "4", "--eval-steps", "0", "--no-progress", "--skip-samples"]) == 0
    info = json.loads((out / "training_info.json").read_text())
    assert info["settings"]["line_by_line"] is True
    assert info["settings"]["train_rows"] == 12  # one row per story


def test_an_empty_training_file_is_a_clear_error(tmp_path: Path):
    empty = tmp_path / "empty.txt"
    empty.write_text("no training lines here\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no <BOS> <genre>"):
        train_main(["--from-scratch", "--train-file", str(empty), "--output-dir", str(tmp_path / "x")])
