"""The genre-contrast training term: which rows it scores, that it scores what the evaluation classifies by, and
that training on it makes the genre header decide."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from storyterm.engine.prompt import build_header
from training.common import Story
from training.data import tokenize_stories
from training.evaluate import genre_scores
from training.genre_contrast import GenreContrast
from training.train import make_trainer_class

GENRES = ["horror", "drama", "sci_fi"]
TEXTS = {
    "horror": "The ghost screams in the old house and the family runs into the night.",
    "drama": "She falls in love with the painter who lives across the street.",
    "sci_fi": "Captain Vega pilots the starship through the asteroid field toward Mars.",
}


def load(checkpoint: Path):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(checkpoint), AutoTokenizer.from_pretrained(checkpoint)


def contrast_for(tokenizer, genres=GENRES, text_tokens: int = 64) -> GenreContrast:
    headers = [tokenizer(build_header(g), add_special_tokens=False)["input_ids"] for g in genres]
    return GenreContrast(headers, tokenizer.eos_token_id, tokenizer.pad_token_id, text_tokens)


def rows(tokenizer, genres=GENRES, width: int = 40) -> torch.Tensor:
    """One packed-style row per genre: header, story, end token, then the next story's start, cut to ``width``."""
    stories = tokenize_stories([Story(g, TEXTS[g]) for g in genres], tokenizer)
    filler = tokenize_stories([Story("drama", TEXTS["drama"])], tokenizer)[0]
    result = [(s.header + s.body + filler.header + filler.body)[:width] for s in stories]
    return torch.tensor(result)


def test_rows_are_labelled_by_their_leading_header(tiny_checkpoint: Path):
    _, tokenizer = load(tiny_checkpoint)
    contrast = contrast_for(tokenizer)
    batch = rows(tokenizer)
    headless = batch[:1, 3:].clone()
    headless = torch.cat([headless, batch[:1, :3]], dim=1)  # the header is inside the row, not leading it
    assert contrast.row_genres(batch).tolist() == [0, 1, 2]
    assert contrast.row_genres(headless).tolist() == [-1]


def test_a_text_is_scored_up_to_and_including_its_end_token(tiny_checkpoint: Path):
    _, tokenizer = load(tiny_checkpoint)
    contrast = contrast_for(tokenizer)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    texts = torch.tensor([[50, 51, eos, 52, 53], [50, 51, 52, pad, pad]])
    assert contrast.text_mask(texts).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]


def test_scores_are_the_likelihoods_the_evaluation_classifies_by(tiny_checkpoint: Path):
    model, tokenizer = load(tiny_checkpoint)
    contrast = contrast_for(tokenizer, genres=list(tokenizer_genres(tokenizer)))
    story = tokenize_stories([Story("horror", TEXTS["horror"])], tokenizer)[0]
    headers = {g: tokenize_stories([Story(g, "x")], tokenizer)[0].header for g in tokenizer_genres(tokenizer)}
    expected = genre_scores(model, story, headers, window=128, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        # The row continues into a next story; the score must stop at this story's end token.
        row = torch.tensor([story.header + story.body + story.header + story.body[:5]])
        got = contrast.scores(model, row[:, contrast.header_len :])[0]
    assert got.tolist() == pytest.approx([-expected[g] for g in headers], rel=1e-4)


def tokenizer_genres(tokenizer) -> list[str]:
    from storyterm.engine.prompt import genres_from_special_tokens

    return genres_from_special_tokens(tokenizer.all_special_tokens)


def test_training_on_the_contrast_makes_each_text_most_likely_under_its_own_genre(tiny_checkpoint: Path):
    torch.manual_seed(0)
    model, tokenizer = load(tiny_checkpoint)
    contrast = contrast_for(tokenizer)
    batch = rows(tokenizer)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = contrast(model, batch)
    for _ in range(40):
        result = contrast(model, batch)
        optimizer.zero_grad()
        result.loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        last = contrast(model, batch)
    assert last.loss < first.loss / 4
    assert last.correct == last.rows == 3


def test_rows_without_a_header_give_no_term(tiny_checkpoint: Path):
    model, tokenizer = load(tiny_checkpoint)
    contrast = contrast_for(tokenizer)
    assert contrast(model, rows(tokenizer)[:, 3:]) is None


def test_unusable_settings_are_refused():
    with pytest.raises(ValueError, match="two genres"):
        GenreContrast([[0, 5]], eos_id=1, pad_id=2)
    with pytest.raises(ValueError, match="one length"):
        GenreContrast([[0, 5], [0, 9, 6]], eos_id=1, pad_id=2)
    with pytest.raises(ValueError, match="text token"):
        GenreContrast([[0, 5], [0, 6]], eos_id=1, pad_id=2, text_tokens=0)


def test_the_trainer_adds_the_weighted_term_in_training_and_evaluates_plain_loss(tiny_checkpoint: Path,
                                                                                  tmp_path: Path):
    from transformers import TrainingArguments

    model, tokenizer = load(tiny_checkpoint)
    contrast = contrast_for(tokenizer)
    batch = rows(tokenizer)
    inputs = {"input_ids": batch, "labels": batch.clone()}
    trainer_class = make_trainer_class(None, contrast, contrast_weight=0.5)
    trainer = trainer_class(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                                report_to="none"))
    model.eval()  # no dropout, so the two computations see the same network
    with torch.no_grad():
        plain = model(**inputs).loss
        term = contrast(model, batch).loss
        assert float(trainer.compute_loss(model, dict(inputs))) == pytest.approx(float(plain), rel=1e-5)
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        combined = trainer.compute_loss(model, dict(inputs))
    assert float(combined) == pytest.approx(float(plain + 0.5 * term), rel=1e-4)
