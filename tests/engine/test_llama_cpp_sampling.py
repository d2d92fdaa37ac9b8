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
from storyterm.engine.llama_cpp_sampling import (  # noqa: E402
    FIRST_TOKEN_STEPS,
    NativeSampler,
    RepetitionPenalty,
    StepHooks,
    TopKCandidates,
    split_banned,
)
from storyterm.engine.loading import ModelSpec, load_model, open_engine  # noqa: E402
from storyterm.engine.lorebook import Lorebook, LorebookEntry  # noqa: E402
from storyterm.engine.prompt import CLASSIC_GENRES  # noqa: E402
from storyterm.engine.settings import SamplerSettings  # noqa: E402
from storyterm.engine.checkpoint_word_guard import CheckpointWordGuard  # noqa: E402
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


def _whole_row_draw(lib, settings: SamplerSettings, seed: int, banned: list[int], n_vocab: int):
    """What llama_sampler_sample does with the whole row: every id in a candidate array, through the chain of the
    -inf bias, top-k, temperature, top-p and the seeded draw (or greedy)."""
    import ctypes

    import numpy as np

    params = lib.llama_sampler_chain_default_params()
    chain = lib.llama_sampler_chain_init(params)
    biases = (lib.llama_logit_bias * len(banned))()
    for slot, token in zip(biases, banned):
        slot.token, slot.bias = token, float("-inf")
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_logit_bias(n_vocab, len(banned), biases))
    if not settings.do_sample:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
    else:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(settings.top_k))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(settings.temperature))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(settings.top_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed))
    kind = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])

    def draw(row) -> int:
        data = np.zeros(n_vocab, dtype=kind)
        data["id"], data["logit"] = np.arange(n_vocab), row
        array = lib.llama_token_data_array(data=data.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)),
                                           size=n_vocab, selected=-1, sorted=False)
        lib.llama_sampler_apply(chain, ctypes.byref(array))
        return int(data["id"][array.selected])

    return draw, lambda: lib.llama_sampler_free(chain)


@pytest.mark.parametrize("n_vocab", [50257, 151936, 4096 * 3 + 17])
@pytest.mark.parametrize("do_sample", [True, False])
def test_top_k_candidates_and_argmax_draw_what_the_whole_row_draws(n_vocab: int, do_sample: bool) -> None:
    """The numpy shortcuts (a top-k superset handed to the same chain; greedy as argmax) against llama.cpp's chain
    on every id, with the penalty and suppressed ids, over many rows and one seed: the same tokens, draw by draw."""
    import llama_cpp
    import numpy as np

    settings = SamplerSettings(do_sample=do_sample, top_k=50, temperature=1.2, top_p=0.95, repetition_penalty=1.3)
    assert TopKCandidates.applies(n_vocab, settings.top_k)
    rng = np.random.default_rng(n_vocab)
    banned, history = [3, 7, int(rng.integers(n_vocab))], [int(i) for i in rng.integers(0, n_vocab, 40)]
    ours = NativeSampler(llama_cpp, n_vocab, settings, 11, banned_ids=banned, penalty_history=history)
    reference_penalty = RepetitionPenalty(1.3, history)
    theirs, free = _whole_row_draw(llama_cpp, settings, 11, banned, n_vocab)
    try:
        drawn = []
        for _ in range(60):
            row = (rng.standard_normal(n_vocab) * 4).astype(np.float32)
            row[banned[0]] = row.max() + 5  # a suppressed id with the largest logit is still never drawn
            reference = row.copy()
            reference_penalty.apply(reference)
            token = ours.sample_row(row)
            assert token is not None and token == theirs(reference)
            reference_penalty.extend((token,))
            ours._penalty.extend((token,))
            drawn.append(token)
        assert not set(drawn) & set(banned)
        assert len(set(drawn)) > (10 if do_sample else 1)
    finally:
        ours.close()
        free()


def test_top_k_candidates_leave_rows_they_cannot_filter_to_llama_cpp() -> None:
    import llama_cpp
    import numpy as np

    assert not TopKCandidates.applies(50257, 0) and not TopKCandidates.applies(512, 50)
    assert not TopKCandidates.applies(50257, 1000)
    sampler = NativeSampler(llama_cpp, 50257, SamplerSettings(top_k=50), 1)
    try:
        assert sampler.sample_row(np.full(50257, np.nan, dtype=np.float32)) is None  # the whole row, in llama.cpp
    finally:
        sampler.close()
