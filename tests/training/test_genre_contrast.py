"""The genre-contrastive loss: its batches, its scores (those of training.evaluate), and that it teaches the header."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from training.common import Story
from training.data import TokenizedStory, genre_headers, tokenize_stories
from training.evaluate import genre_scores
from training.genre_contrast import GenreContrast, genre_token_ids, train_only_genre_rows
from training.train import main as train_main

from .test_train import PLOTS, write_training_lines

HEADERS = {"horror": [1, 10], "action": [1, 11], "drama": [1, 12]}


def story(genre: str | None, body: list[int]) -> TokenizedStory:
    return TokenizedStory(genre, header=[1, 99], body=body, text_bytes=len(body))


def test_a_batch_reads_every_story_under_every_header_and_scores_only_its_text():
    contrast = GenreContrast([story("horror", [5, 6, 7]), story("drama", [8, 9])], HEADERS,
                             window=2, batch_size=2, pad_id=0)
    ids, attention, scored, targets = contrast.batch([story("horror", [5, 6, 7]), story("drama", [8, 9])])
    # Story i under genre j is row i*3 + j; the text is cut to the window and is the same under every header.
    assert ids.tolist() == [[1, 10, 5, 6], [1, 11, 5, 6], [1, 12, 5, 6], [1, 10, 8, 9], [1, 11, 8, 9], [1, 12, 8, 9]]
    assert attention.all()
    # Target t predicts ids[t + 1]: the header's own tokens are never scored, every text token is.
    assert scored.tolist() == [[False, True, True]] * 6
    assert targets.tolist() == [0, 2]


def test_short_stories_are_padded_and_the_padding_is_not_scored():
    contrast = GenreContrast([story("horror", [5, 6, 7]), story("action", [8])], HEADERS,
                             window=8, batch_size=2, pad_id=0)
    ids, attention, scored, _ = contrast.batch([story("horror", [5, 6, 7]), story("action", [8])])
    assert ids[3].tolist() == [1, 10, 8, 0, 0] and attention[3].tolist() == [1, 1, 1, 0, 0]
    assert scored[3].tolist() == [False, True, False, False]


def test_stories_are_drawn_genre_first_so_a_rare_genre_weighs_as_much_as_a_common_one():
    stories = [story("drama", [5])] * 90 + [story("horror", [6])] * 10 + [story(None, [7])] * 50
    contrast = GenreContrast(stories, HEADERS, window=4, batch_size=1000, pad_id=0, seed=3)
    drawn = Counter(s.genre for s in contrast.draw())
    assert set(drawn) == {"drama", "horror"}  # neutral stories have no genre to be told apart by
    assert 400 < drawn["horror"] < 600


def test_it_needs_two_genres_with_stories():
    with pytest.raises(ValueError, match="at least two"):
        GenreContrast([story("drama", [5]), story(None, [6])], HEADERS, window=4, batch_size=2, pad_id=0)


def _tiny(tiny_checkpoint: Path):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(tiny_checkpoint), AutoTokenizer.from_pretrained(tiny_checkpoint)


def test_its_scores_are_the_log_likelihoods_evaluate_classifies_by(tiny_checkpoint: Path):
    model, tokenizer = _tiny(tiny_checkpoint)
    model.eval()
    genres = ["horror", "action", "drama", "sci_fi"]
    headers = genre_headers(tokenizer, genres)
    stories = tokenize_stories([Story("horror", "The ghost screams in the old house at night."),
                                Story("sci_fi", "The starship lands on a planet of glass and robots.")], tokenizer)
    contrast = GenreContrast(stories, headers, window=6, batch_size=2, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        log_likelihood, targets = contrast.scores(model, stories)
    assert targets.tolist() == [0, 3]
    for row, tokenized in enumerate(stories):
        window = 6 + len(headers["horror"])  # evaluate's window holds the header, GenreContrast's only text
        expected = genre_scores(model, tokenized, headers, window=window, pad_id=tokenizer.pad_token_id)
        for column, genre in enumerate(genres):
            assert -float(log_likelihood[row, column]) == pytest.approx(expected[genre] * 6, rel=1e-4)


def _one_word_apart(tiny_checkpoint: Path):
    """(model, headers, stories, contrast): the same sentence under three genres but one word, so only the header
    can tell the model which word comes."""
    model, tokenizer = _tiny(tiny_checkpoint)
    genres = ["horror", "action", "drama"]
    headers = genre_headers(tokenizer, genres)
    stories = tokenize_stories([Story(g, f"In the old house the family finds a {word} at night.")
                                for g, word in zip(genres, ("ghost", "gun", "letter"), strict=True)], tokenizer)
    contrast = GenreContrast(stories, headers, window=32, batch_size=3, pad_id=tokenizer.pad_token_id, seed=1)
    return model, headers, stories, contrast


def test_training_on_it_makes_each_story_likeliest_under_its_own_header(tiny_checkpoint: Path):
    model, headers, stories, contrast = _one_word_apart(tiny_checkpoint)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    first, _ = contrast.loss(model, stories)
    for _ in range(100):
        loss, _ = contrast.loss(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        last, accuracy = contrast.loss(model, stories)
    assert float(last) < float(first) / 4
    assert accuracy == 1.0


def test_train_adds_it_to_the_loss_and_logs_it(tmp_path: Path):
    data = write_training_lines(tmp_path / "train.txt")
    out = tmp_path / "model"
    code = train_main(["--from-scratch", "--preset", "tiny", "--vocab-size", "400", "--block-size", "48",
                       "--train-file", str(data), "--output-dir", str(out), "--max-steps", "2",
                       "--batch-size", "4", "--save-steps", "2", "--logging-steps", "1", "--no-progress",
                       "--skip-samples", "--genre-contrast", "0.5", "--genre-contrast-batch", "3"])
    assert code == 0
    state = json.loads((out / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert logged and all(entry["genre_ce"] > 0 and 0 <= entry["genre_acc"] <= 1 for entry in logged)
    info = json.loads((out / "training_info.json").read_text())
    assert info["settings"]["genre_contrast"] == 0.5


def test_memory_headers_can_be_stripped_from_or_kept_out_of_the_genre_loss(tiny_checkpoint: Path):
    from transformers import AutoTokenizer

    from training.genre_contrast import contrast_stories

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    stories = tokenize_stories([Story("horror", "[Anna, Tom] Anna hears the ghost."),
                                Story("drama", "The family waits at the door.")], tokenizer)
    kept = contrast_stories(stories, tokenizer.decode, "keep")
    assert kept == stories
    stripped = contrast_stories(stories, tokenizer.decode, "strip")
    assert [tokenizer.decode(s.body).strip() for s in stripped] == [
        "Anna hears the ghost. <EOS>", "The family waits at the door. <EOS>"]
    assert stripped[0].genre == "horror" and stripped[0].header == stories[0].header
    assert [s.genre for s in contrast_stories(stories, tokenizer.decode, "skip")] == ["drama"]
    with pytest.raises(ValueError, match="keep, strip, skip"):
        contrast_stories(stories, tokenizer.decode, "drop")


def test_genre_token_ids_are_what_tells_the_headers_apart():
    assert genre_token_ids(HEADERS) == [10, 11, 12]


def test_training_only_the_genre_tokens_moves_their_embeddings_and_nothing_else(tiny_checkpoint: Path):
    model, headers, stories, contrast = _one_word_apart(tiny_checkpoint)
    before = {name: value.detach().clone() for name, value in model.state_dict().items()}
    genre_ids = genre_token_ids(headers)
    assert train_only_genre_rows(model, genre_ids) == len(genre_ids) * model.config.n_embd
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=0.1, weight_decay=0.0)
    model.eval()  # no dropout: a random tiny model hears its header faintly, and the noise would drown it
    with torch.no_grad():
        first, _ = contrast.loss(model, stories)
    for _ in range(60):
        loss, _ = contrast.loss(model, stories)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        last, _ = contrast.loss(model, stories)
    assert float(last) < float(first) - 0.01
    after = model.state_dict()
    embedding_name = next(name for name in before if name.endswith("wte.weight"))
    moved = (after[embedding_name] != before[embedding_name]).any(dim=-1).nonzero().flatten().tolist()
    assert moved == genre_ids
    tied = {name for name, value in after.items() if value.data_ptr() == after[embedding_name].data_ptr()}  # lm_head
    assert all(torch.equal(after[name], value) for name, value in before.items() if name not in tied)


def test_train_can_tune_only_the_genre_tokens(tmp_path: Path):
    from safetensors.torch import load_file

    data = write_training_lines(tmp_path / "train.txt")
    base = tmp_path / "base"
    common = ["--train-file", str(data), "--block-size", "48", "--batch-size", "4", "--no-progress", "--skip-samples",
              "--save-steps", "100"]
    assert train_main(["--from-scratch", "--preset", "tiny", "--vocab-size", "400", "--output-dir", str(base),
                       "--max-steps", "1", *common]) == 0
    tuned = tmp_path / "tuned"
    assert train_main(["--model-name-or-path", str(base), "--output-dir", str(tuned), "--max-steps", "3",
                       "--learning-rate", "1e-2", "--train-only", "genre-tokens", "--genre-contrast", "1",
                       "--genre-contrast-batch", "3", *common]) == 0
    old, new = load_file(base / "model.safetensors"), load_file(tuned / "model.safetensors")
    changed = sorted(name for name in old if not torch.equal(old[name], new[name]))
    assert changed == ["transformer.wte.weight"]
    rows = (old["transformer.wte.weight"] != new["transformer.wte.weight"]).any(dim=-1).nonzero().flatten().tolist()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tuned)
    assert rows == genre_token_ids(genre_headers(tokenizer, list(PLOTS)))
