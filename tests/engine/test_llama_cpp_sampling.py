"""The GGUF engine's lean decode loop: llama.cpp's native sampler chain (suppressed tokens, the repetition penalty
that spares the header, Memory and lorebook, the sampling knobs, seeds) and the Python processors that run only on
the steps where they can act, compared with the torch engine on the same weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.gguf

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'storyterm[gguf]')")

import torch  # noqa: E402

from storyterm.engine.generation import GenerationRequest, StoryEngine  # noqa: E402
from storyterm.engine.llama_cpp_sampling import FIRST_TOKEN_STEPS, StepHooks, split_banned  # noqa: E402
from storyterm.engine.loading import ModelSpec, load_model, open_engine  # noqa: E402
from storyterm.engine.lorebook import Lorebook, LorebookEntry  # noqa: E402
from storyterm.engine.prompt import CLASSIC_GENRES  # noqa: E402
from storyterm.engine.settings import SamplerSettings  # noqa: E402
from storyterm.engine.word_guard import CheckpointWordGuard  # noqa: E402
from storyterm.engine.words import checkpoint_words_reader  # noqa: E402
from tests.conftest import build_tiny_gguf  # noqa: E402

GREEDY = SamplerSettings(max_new_tokens=24, do_sample=False, trim_sentences=False)
HOT = SamplerSettings(max_new_tokens=30, do_sample=True, temperature=3.0, top_k=0, top_p=1.0, seed=1,
                      trim_sentences=False)
STORIES = ("The ghost screams in the old house", "Anna opens the door and", "The detective finds a letter")


@pytest.fixture(scope="module")
def genre_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gguf(tmp_path_factory.mktemp("genre-gguf"), CLASSIC_GENRES)


def test_native_penalty_spares_memory_and_lorebook_like_the_torch_engine(gguf_loaded, torch_loaded) -> None:
    ours, theirs = open_engine(gguf_loaded), StoryEngine(torch_loaded)
    lorebook = Lorebook((LorebookEntry(("ghost",), "The ghost is Anna's sister."),))
    changed = 0
    for story in STORIES:
        for penalty in (1.0, 1.6):
            settings = GREEDY.with_changes(repetition_penalty=penalty)
            for memory, book in (("Anna is a nurse. The house is old.", Lorebook()), ("", lorebook), ("", Lorebook())):
                request = GenerationRequest("horror", story, memory=memory, settings=settings, lorebook=book)
                assert ours.generate(request).texts == theirs.generate(request).texts, (story, penalty, memory)
        plain = GenerationRequest(None, story, memory="Anna is a nurse.", settings=GREEDY)
        penalised = GenerationRequest(None, story, memory="Anna is a nurse.",
                                      settings=GREEDY.with_changes(repetition_penalty=1.6))
        changed += ours.generate(plain).text != ours.generate(penalised).text
    assert changed  # the penalty acts on these prompts, so the equality above is about it


def test_suppressed_tokens_are_never_sampled(genre_gguf: Path) -> None:
    engine = open_engine(load_model(ModelSpec(str(genre_gguf))))
    suppressed = set(engine.suppressed_token_ids)
    assert len(suppressed) >= len(CLASSIC_GENRES)  # genres, BOS, PAD
    seen: set[int] = set()
    for seed in range(6):
        result = engine.generate(GenerationRequest("horror", "The ghost", settings=HOT.with_changes(seed=seed),
                                                   token_probs=1))
        (tokens,) = result.tokens
        seen |= {token.token_id for token in tokens}
        assert not suppressed & {t.token_id for t in tokens}
        assert all(c.token_id not in suppressed for t in tokens for c in t.top)
    assert len(seen) > 30  # a hot sampler: the suppressed ids would have come up


def test_seeded_runs_repeat_with_or_without_the_cached_prompt(gguf_loaded) -> None:
    engine = open_engine(gguf_loaded)
    settings = SamplerSettings(max_new_tokens=20, seed=5, repetition_penalty=1.3, top_k=20, top_p=0.9,
                               temperature=0.9, min_p=0.02)
    request = GenerationRequest(None, "The ship sails at night", memory="Vega is the pilot.", settings=settings)
    first = engine.generate(request)
    again = engine.generate(request)  # the prompt now comes from llama.cpp's KV cache
    engine.forget_context()
    fresh = engine.generate(request)
    assert again.stats.cached_prompt_tokens > 0 and fresh.stats.cached_prompt_tokens == 0
    assert first.texts == again.texts == fresh.texts
    other = engine.generate(GenerationRequest(None, "The ship sails at night", memory="Vega is the pilot.",
                                              settings=settings.with_changes(seed=6)))
    assert other.text != first.text


def test_sampled_token_probabilities_describe_the_native_draw(gguf_loaded) -> None:
    engine = open_engine(gguf_loaded)
    settings = SamplerSettings(max_new_tokens=16, seed=3, repetition_penalty=1.5, top_k=5, top_p=1.0,
                               trim_sentences=False)
    result = engine.generate(GenerationRequest(None, "The detective finds", memory="Anna.", settings=settings,
                                               token_probs=5))
    (tokens,) = result.tokens
    assert tokens
    # Each drawn token is one of the 5 the processors (run in Python afterwards) kept: the native chain penalised
    # the same ids, else it would have drawn tokens the recomputed distribution gives 0.
    assert all(token.prob > 0 for token in tokens)
    assert any(token.token_id not in {c.token_id for c in token.top} for token in tokens)  # the penalty acted


def test_a_word_list_runs_the_word_guard_like_the_torch_engine(gguf_loaded, torch_loaded, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(torch_loaded.path, checkpoint)
    (checkpoint / "words.txt").write_text("the\nghost\nhouse\nold\nscreams\nin\nanna\n", encoding="utf-8")
    ours = open_engine(gguf_loaded)
    # what a loaded word list gives
    ours._word_guard = CheckpointWordGuard(gguf_loaded.tokenizer, checkpoint_words_reader(checkpoint))
    theirs = StoryEngine(load_model(ModelSpec(str(checkpoint), device="cpu", dtype="fp32")))
    assert ours.word_guard_available and theirs.word_guard_available
    guarded = GREEDY.with_changes(repetition_penalty=1.3)
    request = GenerationRequest(None, "The ghost screams in the old house", memory="Anna.", settings=guarded)
    assert ours.generate(request).texts == theirs.generate(request).texts
    off = GenerationRequest(None, "The ghost screams in the old house", memory="Anna.",
                            settings=guarded.with_changes(word_guard=False))
    assert ours.generate(off).texts == theirs.generate(off).texts


def test_banned_words_of_several_tokens_only_run_when_their_start_is_written(gguf_loaded) -> None:
    engine = open_engine(gguf_loaded)
    sequences = engine._banned_words.bad_words_ids(["screams"])
    single, multi = split_banned(sequences, engine._eos_ids)
    assert multi and all(len(s) > 1 for s in multi)
    hooks = StepHooks(multi_banned=multi, eos_ids=engine._eos_ids)
    start = multi[0][:-1]
    assert hooks.active(5, [1, 2, *start]) != [] and hooks.active(5, [1, 2, 3]) == []
    scores = hooks.active(5, [1, *start])[0](torch.tensor([[1, *start]]), torch.zeros(1, len(engine.loaded.tokenizer)))
    assert scores[0, multi[0][-1]] == float("-inf")
    story = "The ghost screams in the old house. The ghost"
    plain = engine.generate(GenerationRequest(None, story, settings=GREEDY)).text
    banned_word = next(w for w in plain.split() if w.isalpha() and len(w) > 1)
    assert split_banned(engine._banned_words.bad_words_ids([banned_word]), engine._eos_ids)[1]  # spelt in pieces too
    banned = engine.generate(GenerationRequest(None, story, settings=GREEDY, banned_words=(banned_word,))).text
    assert banned_word.lower() not in banned.lower()


def test_split_banned_and_the_first_token_steps() -> None:
    assert split_banned([[5], [7, 8], [2]], eos_ids=[2]) == ([5], [[7, 8]])
    mask = object()
    hooks = StepHooks(first=[mask])
    assert [hooks.active(step, [1]) for step in range(FIRST_TOKEN_STEPS + 1)] == [[mask], [mask], []]
    every = StepHooks(every_step=[mask], first=[object()])
    assert every.full_python and every.active(40, [1]) == [mask]
