"""The word guard: known words always pass, made-up lower-case and Title-case words are blocked unless the prompt
has them, other capitals are free; byte-level BPE and SentencePiece vocabularies; never a row with nothing allowed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyterm.engine.word_guard import WordGuard, token_texts
from storyterm.engine.words import capitalised_invented_rate, invented_word_rate, words_in, write_known_words
from tests.conftest import TINY_CORPUS

BASE_WORDS = {"the", "and", "walks", "into", "a", "bar"}
PROMPT_WORDS = {"the", "man", "walks"}  # the prompts' words are allowed too


@pytest.fixture(scope="module")
def byte_level_tokenizer():
    from training.train import train_tokenizer

    return train_tokenizer(TINY_CORPUS * 2, ["drama"], 400, 128)


@pytest.fixture(scope="module")
def sentencepiece_tokenizer():
    """A Metaspace (``▁`` for a space) BPE, the layout of Llama/Mistral tokenizers."""
    import string

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    backend.decoder = decoders.Metaspace(prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=[*string.printable, "é"], show_progress=False)
    backend.train_from_iterator(TINY_CORPUS * 2, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def blocked_steps(guard: WordGuard, tokenizer, prompt: str, continuation: str) -> list[str]:
    """Force ``continuation`` after ``prompt`` token by token; the texts of the tokens the guard would block."""
    prompt_ids, new_ids = encode(tokenizer, prompt), encode(tokenizer, continuation)
    if continuation.isascii():  # (a multi-byte character may be split over tokens that read as U+FFFD)
        assert "".join(guard.texts[i] for i in new_ids) == continuation  # the guard reads the tokens as the text
    ids = list(prompt_ids)
    processor = guard.processor()
    blocked = []
    for token_id in new_ids:
        scores = torch.zeros((1, len(tokenizer)))
        out = processor(torch.tensor([ids]), scores)
        if out[0, token_id] == float("-inf"):
            blocked.append(guard.texts[token_id])
        ids.append(token_id)
    return blocked


TOKENIZERS = ["byte_level_tokenizer", "sentencepiece_tokenizer"]
lower_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzé", min_size=1, max_size=12)


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(lower_words, min_size=1, max_size=5), end=st.sampled_from([".", " and", "!\n", ", the"]))
def test_a_known_word_is_never_blocked(request, tokenizer_name, words, end):
    tokenizer = request.getfixturevalue(tokenizer_name)
    guard = WordGuard(tokenizer, BASE_WORDS | set(words))
    assert blocked_steps(guard, tokenizer, "The man", " " + " ".join(words) + end) == []


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
@pytest.mark.parametrize("title_case", [False, True])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12),
       known=st.lists(lower_words, max_size=5))
def test_a_made_up_word_is_blocked(request, tokenizer_name, title_case, word, known):
    tokenizer = request.getfixturevalue(tokenizer_name)
    known_words = BASE_WORDS | set(known)
    if word in known_words | PROMPT_WORDS:
        return
    guard = WordGuard(tokenizer, known_words)
    if not title_case:
        assert blocked_steps(guard, tokenizer, "The man", f" walks {word}.") != []
        return
    name = word.capitalize()
    assert blocked_steps(guard, tokenizer, "The man", f" walks into {name}.") != []
    assert blocked_steps(guard, tokenizer, "The man walks.", f" {name} walks.") != []  # at a sentence start
    assert blocked_steps(guard, tokenizer, "The man walks.\n", f"{name} walks.") != []  # at a line start


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
def test_a_known_word_in_title_case_is_allowed_and_can_be_completed(request, tokenizer_name):
    tokenizer = request.getfixturevalue(tokenizer_name)
    guard = WordGuard(tokenizer, BASE_WORDS | {"anna", "vega"})  # words.txt is case-folded: "Anna" is "anna"
    assert blocked_steps(guard, tokenizer, "The man walks.", " Anna walks into the Bar. Vega! Walks.\nAnna.") == []
    assert blocked_steps(guard, tokenizer, "The man walks.", " Annab walks.") != []  # glued past the known word
    assert blocked_steps(guard, tokenizer, "The man walks.", " Ann walks.") != []  # ended short of it


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
def test_a_name_only_in_the_prompt_is_allowed_and_can_be_completed(request, tokenizer_name):
    tokenizer = request.getfixturevalue(tokenizer_name)
    guard = WordGuard(tokenizer, BASE_WORDS)
    memory = "Memory: Zorbulax, Tavi.\n\nThe man"
    assert blocked_steps(guard, tokenizer, memory, " walks into Zorbulax and Tavi. Tavi!\nZorbulax.") == []
    assert blocked_steps(guard, tokenizer, memory, " walks into zorbulax.") == []  # the writer's words, any case
    assert blocked_steps(guard, tokenizer, memory, " walks into Zorbulaxes.") != []  # only the prompt's spelling
    assert blocked_steps(guard, tokenizer, memory, " walks into Zorb.") != []
    assert blocked_steps(guard, tokenizer, "The man", " walks into Zorbulax and Tavi.") != []  # not this prompt's


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
def test_words_with_capitals_inside_stay_free(request, tokenizer_name):
    tokenizer = request.getfixturevalue(tokenizer_name)
    guard = WordGuard(tokenizer, BASE_WORDS | {"mcdonald", "never", "is"})
    assert blocked_steps(guard, tokenizer, "The man", " walks into the McQueeny bar. NQZX!") == []
    assert blocked_steps(guard, tokenizer, "The man", " walks into the Mcqueeny bar.") != []  # Title-case: checked
    assert blocked_steps(guard, tokenizer, "The man", " walks into the NevQZX bar.") != []  # no capital after "Nev"
    assert blocked_steps(guard, tokenizer, "The man", " walks iPhone.") != []  # nor after a lower-case letter


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
def test_capitals_never_glue_onto_a_lower_case_word(request, tokenizer_name):
    tokenizer = request.getfixturevalue(tokenizer_name)
    guard = WordGuard(tokenizer, BASE_WORDS)
    assert blocked_steps(guard, tokenizer, "The man", " walks theBigx.") != []     # complete word + capitals
    assert blocked_steps(guard, tokenizer, "The man", " walThe.") != []           # unfinished word + capitals
    assert blocked_steps(guard, tokenizer, "The man theBig", "x walks.") == []     # the writer's own is free


def test_a_word_may_only_end_where_it_is_complete(byte_level_tokenizer):
    guard = WordGuard(byte_level_tokenizer, {"walks", "the"})
    assert guard.state("walk") == "word" and guard.state("walks") == "word"
    period = encode(byte_level_tokenizer, ".")[0]
    assert period not in guard.allowed("walk")
    assert period in guard.allowed("walks") and period in guard.allowed("") and period in guard.allowed("Walks")
    assert period not in guard.allowed("Walk") and period in guard.allowed("McWalk")  # Title-case is checked


def test_the_writers_unfinished_unknown_word_is_free(byte_level_tokenizer):
    guard = WordGuard(byte_level_tokenizer, BASE_WORDS)
    assert guard.state("zorb") == "free"
    assert blocked_steps(guard, byte_level_tokenizer, "The man zorb", "ulates. The") == []


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
@pytest.mark.parametrize("with_prompt", [False, True])
@pytest.mark.parametrize("writers", [True, False])
@pytest.mark.parametrize("word", ["", "the", "walk", "walks", "zorb", "Vega", "Walk", "Walks", "W", "T", "Ma",
                                  "Tav", "Tavi", "tavi", "Zorbulax", "McQ", "NASA"])
def test_the_fast_mask_equals_the_reference_rules(request, tokenizer_name, word, writers, with_prompt):
    tokenizer = request.getfixturevalue(tokenizer_name)
    guard = WordGuard(tokenizer, BASE_WORDS | {"walking", "mark", "tame", "wow"})
    prompt = guard.prompt_words("Memory: Tavi, Zorbulax, Taviel.\n\nThe man") if with_prompt else None
    vocab = len(tokenizer) + 3  # a model's embedding may be wider than the tokenizer
    mask = guard.blocked_mask(word, vocab, torch.device("cpu"), writers, prompt)
    allowed = guard.allowed(word, writers, prompt)
    assert set(torch.nonzero(~mask[: len(tokenizer)]).flatten().tolist()) == allowed
    assert allowed  # something is always allowed here
    # Ids past the tokenizer read like an end token: blocked only where the word may not end.
    key = word.lower()
    known = guard.words | (prompt.words if prompt else set())
    cannot_end = guard.state(word, writers, prompt) == "word" and key not in known
    assert mask[len(tokenizer):].tolist() == [cannot_end] * 3


@pytest.mark.parametrize("text", ["The man walk", "The man. Walk"])
def test_a_row_with_nothing_allowed_is_left_unchanged_never_nan(byte_level_tokenizer, text):
    guard = WordGuard(byte_level_tokenizer, {"walks"})
    ids = encode(byte_level_tokenizer, text)
    allowed = guard.allowed(guard.current_word(ids), prompt=guard.prompt_words_of([ids]))
    assert encode(byte_level_tokenizer, ".")[0] not in allowed  # "walk"/"Walk" may not end
    scores = torch.randn((2, len(byte_level_tokenizer)))
    scores[0, sorted(allowed)] = float("-inf")  # row 0: everything the guard allows is already ruled out
    out = guard.processor()(torch.tensor([ids, ids]), scores.clone())
    assert torch.equal(out[0], scores[0])
    assert not torch.isnan(out).any()
    assert set(torch.nonzero(out[1] > float("-inf")).flatten().tolist()) == allowed


def test_token_texts_read_byte_level_and_sentencepiece_vocabularies(byte_level_tokenizer, sentencepiece_tokenizer):
    for tokenizer in (byte_level_tokenizer, sentencepiece_tokenizer):
        texts = token_texts(tokenizer)
        text = "The ghost screams, and 12 robots run!\nAfter that"
        ids = encode(tokenizer, text)
        assert "".join(texts[i] for i in ids) == text
        assert all(texts[i] is None for i in tokenizer.all_special_ids)
    # Part of a multi-byte character may follow a complete word, or a start no known word goes on from with a
    # non-ASCII letter; after it, the word "caf" + "é" is read from the bytes together.
    guard = WordGuard(byte_level_tokenizer, BASE_WORDS | {"café"})
    partial = [i for i in encode(byte_level_tokenizer, "é") if "\ufffd" in guard.texts[i]]
    assert len(partial) == 2
    assert all(i in guard.allowed("walks") and i in guard.allowed("caf") and i not in guard.allowed("walk")
               for i in partial)
    assert guard.current_word(encode(byte_level_tokenizer, "The café")) == "café"
    assert guard.current_word(encode(byte_level_tokenizer, "The caf") + partial[:1]) is None


def test_the_engine_guards_checkpoints_that_ship_words(tmp_path: Path, tiny_checkpoint: Path):
    from storyterm.engine.generation import GenerationRequest, StoryEngine
    from storyterm.engine.loading import ModelSpec, load_model
    from storyterm.engine.settings import SamplerSettings

    checkpoint = shutil.copytree(tiny_checkpoint, tmp_path / "guarded")
    known = {w.lower() for line in TINY_CORPUS[:4] for w in words_in(line)}
    write_known_words(checkpoint, known)
    plain = StoryEngine(load_model(ModelSpec(str(tiny_checkpoint), device="cpu")))
    guarded = StoryEngine(load_model(ModelSpec(str(checkpoint), device="cpu")))
    assert guarded.word_guard_available and not plain.word_guard_available

    def invented(engine, guard: bool) -> tuple[list[str], list[str]]:
        """(lower-case, Title-case) invented words of a few passages, with two made-up names in Memory."""
        lower, title = [], []
        for seed in range(6):
            settings = SamplerSettings(max_new_tokens=24, seed=seed, temperature=1.5, word_guard=guard)
            request = GenerationRequest("drama", "The man walks", "Zorbulax, Tavi", settings=settings)
            words = words_in(engine.generate(request).text)
            # The last word may be cut by the token limit; every word before it is complete.
            complete = " ".join(words[:-1])
            lower += invented_word_rate([complete], known).invented_words.elements()
            prompt = engine.prompt_text(request)
            title += capitalised_invented_rate([(complete, prompt)], known).invented_words.elements()
        return lower, title

    assert invented(guarded, guard=True) == ([], [])
    unguarded = invented(guarded, guard=False)
    assert unguarded[0] != [] and unguarded[1] != []  # the random model makes words up when unguarded
    assert invented(plain, guard=True)[0] != []  # no words.txt: nothing to guard with


@pytest.mark.parametrize("tokenizer_name", TOKENIZERS)
def test_a_new_sentence_never_glues_onto_the_last_one(request, tokenizer_name):
    tokenizer = request.getfixturevalue(tokenizer_name)
    guard = WordGuard(tokenizer, BASE_WORDS | {"in", "us", "ph", "d", "u", "s", "com", "amazon", "nqzx"})
    assert blocked_steps(guard, tokenizer, "The man", " walks.The bar.") == ["The"]
    assert blocked_steps(guard, tokenizer, "The man", " walks in!A bar.") == ["A"]
    free = blocked_steps(guard, tokenizer, "The man", " walks into us.NQZX bar.")  # a free word's first token too
    assert len(free) == 1 and free[0].startswith("N")
    assert blocked_steps(guard, tokenizer, "The man", " walks. The bar! A bar?\nThe bar.") == []  # with a space
    # abbreviations and addresses keep their dots: one letter, a Title-case pair, a lower-case word after it
    assert blocked_steps(guard, tokenizer, "The man", " walks into the U.S. bar, a Ph.D bar, amazon.com.") == []
    assert blocked_steps(guard, tokenizer, "The man walks.", "The bar.") == []  # the writer's sentence end


def test_the_glued_sentence_rule_keeps_the_guard_off_the_writers_text(byte_level_tokenizer):
    guard = WordGuard(byte_level_tokenizer, BASE_WORDS)
    mask = guard.capital_start_mask(len(byte_level_tokenizer), torch.device("cpu"))
    blocked = {guard.texts[i] for i in torch.nonzero(mask).flatten().tolist()}
    assert "The" in blocked and " The" not in blocked and "the" not in blocked and "." not in blocked
