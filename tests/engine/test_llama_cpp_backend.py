"""GGUF models through llama.cpp, behind the engine interface: the same tokens, prompt and greedy passage as the
transformers engine on the same weights; streaming, cancel, alternatives, steering, smart context and refusals."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.gguf  # .ci/run runs these again with llama-cpp-python installed

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'storyterm[gguf]')")

import torch  # noqa: E402

from storyterm.engine.errors import EngineBusyError, SettingsError, UnknownGenreError  # noqa: E402
from storyterm.engine.generation import GenerationRequest, StoryEngine  # noqa: E402
from storyterm.engine.gguf_loading import GGUFModel  # noqa: E402
from storyterm.engine.llama_cpp_backend import LlamaCppEngine  # noqa: E402
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model, open_engine  # noqa: E402
from storyterm.engine.lorebook import Lorebook, LorebookEntry  # noqa: E402
from storyterm.engine.prompt import CLASSIC_GENRES  # noqa: E402
from storyterm.engine.settings import SamplerSettings  # noqa: E402
from tests.conftest import build_tiny_gguf  # noqa: E402

GREEDY = SamplerSettings(max_new_tokens=16, do_sample=False)
SAMPLED = SamplerSettings(max_new_tokens=12, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, seed=11)


@pytest.fixture
def engine(gguf_loaded: LoadedModel) -> LlamaCppEngine:
    created = open_engine(gguf_loaded)
    assert isinstance(created, LlamaCppEngine)
    return created


def test_a_gguf_file_loads_with_what_the_file_says(gguf_loaded: LoadedModel, tiny_gguf: Path) -> None:
    assert isinstance(gguf_loaded.model, GGUFModel)
    assert gguf_loaded.name == tiny_gguf.name and gguf_loaded.path == tiny_gguf
    assert gguf_loaded.context_window == 128  # the file's n_positions, not llama.cpp's rounded-up context
    assert gguf_loaded.dtype == "f32" and gguf_loaded.device.type == "cpu"
    assert gguf_loaded.genres == [] and gguf_loaded.free_mode  # genres in words
    assert not gguf_loaded.has_chat_template


def test_weights_read_into_memory_or_mapped_write_the_same_passage(tiny_gguf: Path, monkeypatch) -> None:
    texts = {}
    for choice in ("0", "1"):  # $STORYTERM_GGUF_MMAP: read into memory, mapped
        monkeypatch.setenv("STORYTERM_GGUF_MMAP", choice)
        loaded = load_model(ModelSpec(str(tiny_gguf)))
        assert loaded.model.in_memory == (choice == "0")
        texts[choice] = open_engine(loaded).generate(GenerationRequest("horror", "Anna opens the door",
                                                                      settings=GREEDY)).text
        loaded.model.llama.close()
    assert texts["0"] == texts["1"] and texts["0"]


def test_tokenizer_matches_the_checkpoint_tokenizer(gguf_loaded: LoadedModel, torch_loaded: LoadedModel) -> None:
    ours, theirs = gguf_loaded.tokenizer, torch_loaded.tokenizer
    for text in ["The ghost screams in the old house.", " A man <EOS> walks\n\ninto a bar", "héllo wörld 🚀"]:
        for split in (True, False):
            ids = ours(text, add_special_tokens=False, split_special_tokens=split)["input_ids"]
            assert ids == theirs(text, add_special_tokens=False, split_special_tokens=split)["input_ids"]
        assert ours.decode(ids) == theirs.decode(ids, clean_up_tokenization_spaces=False)
    assert ours.get_vocab() == theirs.get_vocab()
    assert (ours.bos_token, ours.eos_token, ours.pad_token) == ("<BOS>", "<EOS>", "<PAD>")


def test_greedy_passage_and_prompt_equal_the_torch_engine(engine, torch_loaded: LoadedModel) -> None:
    request = GenerationRequest("horror", "The ghost screams in the old house", memory="Anna is a nurse.",
                                settings=GREEDY, authors_note="Rain.", authors_note_depth=0)
    torch_engine = StoryEngine(torch_loaded)
    assert engine.prompt_text(request) == torch_engine.prompt_text(request)
    assert engine.prompt_text(request).startswith("<BOS> This is a horror story. [Anna is a nurse.]")  # in words
    assert engine.context_usage(request) == torch_engine.context_usage(request)
    ours, theirs = engine.generate(request), torch_engine.generate(request)
    assert ours.texts == theirs.texts and ours.endings == theirs.endings
    assert ours.stats.new_tokens == theirs.stats.new_tokens > 0
    assert ours.stats.tokens_per_second > 0 and ours.stats.context_window == 128


def test_stream_yields_the_passage_piece_by_piece(engine) -> None:
    stream = engine.stream(GenerationRequest(None, "A man walks into a bar", settings=SAMPLED))
    pieces = list(stream)
    result = stream.result()
    assert len(pieces) > 1 and "".join(pieces).strip().startswith(result.text.strip()[:5])
    assert result.seed == 11 and not result.cancelled and stream.done


def test_first_token_follows_the_spacing_rule(engine) -> None:
    # The story ends with a word: the passage never glues onto it (the first-token mask runs in llama.cpp's sampler).
    for seed in range(6):
        settings = SAMPLED.with_changes(seed=seed, temperature=2.0, max_new_tokens=3)
        text = engine.generate(GenerationRequest(None, "The ghost", settings=settings)).text
        assert not text or not text[0].isalnum(), text


def test_cancel_stops_the_passage(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled, steps = threading.Event(), []
    real_step = engine._decode_next

    def held_step(token):  # past 20 tokens (the first piece is out), the tiny model waits for the cancel
        steps.append(token)
        if len(steps) > 20:
            cancelled.wait(30)
        return real_step(token)

    monkeypatch.setattr(engine, "_decode_next", held_step)
    settings = SAMPLED.with_changes(max_new_tokens=100, trim_sentences=False)
    stream = engine.stream(GenerationRequest(None, "The ship", settings=settings))
    first = next(iter(stream))
    stream.cancel()
    cancelled.set()
    result = stream.result(timeout=30)
    assert first and result.cancelled and result.endings == ("stopped",)
    assert result.stats.new_tokens < 100


def test_busy_while_a_passage_runs(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real_eval = engine._llama.eval

    def held_eval(tokens):  # the passage cannot finish before the test has asked for a second one
        gate.wait(30)
        return real_eval(tokens)

    monkeypatch.setattr(engine._llama, "eval", held_eval)
    settings = SAMPLED.with_changes(max_new_tokens=60, trim_sentences=False)
    stream = engine.stream(GenerationRequest(None, "The ship", settings=settings))
    with pytest.raises(EngineBusyError):
        engine.stream(GenerationRequest(None, "Another", settings=settings))
    stream.cancel()
    gate.set()
    stream.result(timeout=30)
    assert not engine.busy


def test_alternatives_differ_and_repeat_with_their_seed(engine) -> None:
    request = GenerationRequest(None, "The detective finds", settings=SAMPLED.with_changes(num_alternatives=3))
    first, again = engine.generate(request), engine.generate(request)
    assert len(first.texts) == 3 == len(first.endings)
    assert len(set(first.texts)) > 1
    assert first.texts == again.texts


def test_banned_words_and_stop_sequences(engine) -> None:
    story = "The ghost screams in the old house"
    plain = engine.generate(GenerationRequest(None, story, settings=GREEDY)).text
    words = [w for w in plain.split() if w.isalpha()]
    assert words, plain
    banned = engine.generate(GenerationRequest(None, story, settings=GREEDY, banned_words=(words[0],))).text
    assert words[0] not in banned.split()
    stop = plain.strip()[2:5]
    stopped = engine.generate(GenerationRequest(None, story, settings=GREEDY, stop_sequences=(stop,)))
    assert stop not in stopped.text and stopped.stats.stop_sequence == stop
    assert stopped.endings == ("stop-sequence",)


def test_smart_context_reuses_the_previous_passage(engine) -> None:
    engine.forget_context()
    story = "She falls in love with the painter who lives across the street"
    first = engine.generate(GenerationRequest(None, story, settings=GREEDY))
    again = engine.generate(GenerationRequest(None, story + first.text, settings=GREEDY))
    assert again.stats.cached_prompt_tokens > 0
    engine.forget_context()
    fresh = engine.generate(GenerationRequest(None, story + first.text, settings=GREEDY))
    assert fresh.stats.cached_prompt_tokens == 0 and fresh.text == again.text


def test_lorebook_and_long_stories_are_trimmed_like_any_model(engine, torch_loaded: LoadedModel) -> None:
    lorebook = Lorebook((LorebookEntry(("Vega",), "Vega is a pilot."),))
    story = " ".join(["Captain Vega pilots the starship through the asteroid field toward Mars."] * 30)
    request = GenerationRequest("sci_fi", story, settings=GREEDY, lorebook=lorebook)
    prepared = engine.prepare(request)
    assert prepared.context_trimmed and len(prepared.input_ids) <= 128 - GREEDY.max_new_tokens
    assert prepared.input_ids == StoryEngine(torch_loaded, smart_context=True).prepare(request).input_ids
    assert "Vega is a pilot." in engine.prompt_text(request)
    assert engine.generate(request).stats.context_trimmed


def test_token_probabilities_match_the_torch_engine(engine, torch_loaded: LoadedModel) -> None:
    greedy = GenerationRequest(None, "The detective finds a letter", settings=GREEDY, token_probs=4)
    (ours,), (theirs,) = engine.generate(greedy).tokens, StoryEngine(torch_loaded).generate(greedy).tokens
    assert [t.token_id for t in ours] == [t.token_id for t in theirs]
    for mine, torch_token in zip(ours, theirs):  # llama.cpp keeps its KV cache in fp16: close, not equal
        assert mine.prob == pytest.approx(torch_token.prob, rel=1e-2)
        assert mine.raw_prob == pytest.approx(torch_token.raw_prob, rel=1e-2)
        assert [c.token_id for c in mine.top] == [c.token_id for c in torch_token.top]
    sampled = GenerationRequest(None, "The detective finds a letter", token_probs=4,
                                settings=SAMPLED.with_changes(temperature=0.7, top_k=20, top_p=0.9))
    result = engine.generate(sampled)
    (tokens,) = result.tokens
    assert tokens is not None and "".join(token.text for token in tokens) == result.text
    assert all(len(t.top) == 4 and 0 < t.prob <= 1 and 0 < t.raw_prob <= 1 for t in tokens)
    logits = torch_loaded.model(torch.tensor([engine.prepare(sampled).input_ids + [t.token_id for t in tokens]])).logits
    start = len(engine.prepare(sampled).input_ids) - 1
    for step, token in enumerate(tokens):  # the model's own probability of each token, as the torch model says
        expected = torch.softmax(logits[0, start + step], -1)[token.token_id].item()
        assert token.raw_prob == pytest.approx(expected, rel=1e-2)


def test_a_token_swap_rewrites_the_passage_from_there(engine) -> None:
    from storyterm.engine.swap import stream_swap
    from storyterm.engine.token_probs import TokenSwap

    request = GenerationRequest(None, "The ship", settings=GREEDY, token_probs=4)
    passage = engine.generate(request)
    (tokens,) = passage.tokens
    candidate = next(c for c in tokens[2].top if c.token_id != tokens[2].token_id)
    swap = TokenSwap(passage.text, tokens, 2, candidate)
    stream = stream_swap(engine, request, swap)
    streamed = "".join(stream)
    result = stream.result()
    assert result.text.startswith(swap.head) and streamed.startswith(swap.head)
    assert "".join(t.text for t in result.tokens[0]) == result.text


def test_refusals_are_one_line(engine) -> None:
    assert not engine.word_guard_available  # this file has no word list: the switch has no effect
    with pytest.raises(UnknownGenreError, match="unknown genre 'elves'"):
        engine.validate(GenerationRequest("elves", "The", settings=GREEDY))
    with pytest.raises(SettingsError, match="no chat template"):
        engine.validate(GenerationRequest(None, "The", settings=GREEDY, instruct=True))


def test_a_storyterm_checkpoint_keeps_its_genre_tokens_and_sampling(tmp_path: Path) -> None:
    import json

    from tests.conftest import build_tiny_checkpoint
    from training.export_gguf import export_gguf

    checkpoint = build_tiny_checkpoint(tmp_path / "checkpoint", CLASSIC_GENRES)
    sampling = {"do_sample": True, "temperature": 0.8, "top_k": 50, "top_p": 0.95, "repetition_penalty": 1.2}
    (checkpoint / "generation_config.json").write_text(json.dumps({**sampling, "max_new_tokens": 100}))
    loaded = load_model(ModelSpec(str(export_gguf(checkpoint, tmp_path / "genres.gguf", "q8_0"))))
    assert loaded.genres == list(CLASSIC_GENRES) and loaded.dtype == "q8_0"
    assert loaded.checkpoint_settings == pytest.approx(sampling)  # the checkpoint's defaults travel in the file
    assert loaded.generation_defaults.top_k == 50 and loaded.generation_defaults.max_new_tokens == 100
    engine = open_engine(loaded)
    request = GenerationRequest("horror", "The ghost", settings=GREEDY)
    assert engine.prompt_text(request) == "<BOS> <horror> The ghost"
    result = engine.generate(request)
    assert "<" not in result.text  # genre, BOS and PAD tokens are never sampled


def test_the_word_list_travels_in_the_file_and_guards_as_on_the_torch_engine(tmp_path: Path) -> None:
    from storyterm.engine.words import GGUF_WORDS_KEY, invented_word_rate, words_in, write_known_words
    from tests.conftest import TINY_CORPUS, build_tiny_checkpoint
    from training.export_gguf import export_gguf

    checkpoint = build_tiny_checkpoint(tmp_path / "checkpoint", genres=None)
    known = {w.lower() for line in TINY_CORPUS[:4] for w in words_in(line)}
    write_known_words(checkpoint, known)
    loaded = load_model(ModelSpec(str(export_gguf(checkpoint, tmp_path / "guarded.gguf"))))
    assert loaded.has_word_list and loaded.known_words() == known
    assert GGUF_WORDS_KEY in loaded.model.metadata
    ours, theirs = open_engine(loaded), StoryEngine(load_model(ModelSpec(str(checkpoint), device="cpu",
                                                                          dtype="fp32")))
    assert ours.word_guard_available and theirs.word_guard_available
    invented = {True: [], False: []}
    for seed in range(6):
        for guard in (True, False):
            settings = SamplerSettings(max_new_tokens=24, seed=seed, temperature=1.5, top_k=0, top_p=1.0,
                                       word_guard=guard, trim_sentences=False)
            text = ours.generate(GenerationRequest(None, "The man walks", settings=settings)).text
            complete = " ".join(words_in(text)[:-1])  # the last word may be cut by the token limit
            invented[guard] += invented_word_rate([complete], known).invented_words.elements()
    assert invented[True] == [] and invented[False] != []  # the random model makes words up when unguarded
    # Greedy, guarded: the same passage as the torch engine on the same weights and word list.
    greedy = SamplerSettings(max_new_tokens=24, do_sample=False, word_guard=True)
    request = GenerationRequest(None, "The man walks", settings=greedy)
    assert ours.generate(request).texts == theirs.generate(request).texts


CHAT_TEMPLATE = ("{% for m in messages %}<BOS>{{ m['role'] }}\n{{ m['content'] }}<EOS>\n{% endfor %}"
                 "{% if add_generation_prompt %}<BOS>assistant\n{% endif %}")


def test_a_chat_template_in_the_file_gives_instruct_mode(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from tests.conftest import build_tiny_checkpoint
    from training.export_gguf import export_gguf

    checkpoint = build_tiny_checkpoint(tmp_path / "chat", genres=None, n_positions=1024)  # the request is long
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(checkpoint)
    loaded = load_model(ModelSpec(str(export_gguf(checkpoint, tmp_path / "chat.gguf"))))
    assert loaded.has_chat_template
    engine = open_engine(loaded)
    request = GenerationRequest("western", "The stranger rode in", memory="Dust everywhere.", settings=GREEDY)
    assert engine.instruct_on(request)  # on by default, as for any chat model
    prompt = engine.prompt_text(request)
    assert prompt == StoryEngine(load_model(ModelSpec(str(checkpoint), device="cpu"))).prompt_text(request)
    assert prompt.startswith("<BOS>user\nWe are co-writing a western story.") and prompt.endswith("<BOS>assistant\n")
    assert "Keep in mind: Dust everywhere." in prompt
    result = engine.generate(request)
    assert result.stats.new_tokens > 0 and not result.cancelled


@pytest.mark.parametrize("trim", [True, False])
def test_an_end_token_drawn_mid_sentence_is_drawn_again(engine, monkeypatch: pytest.MonkeyPatch, trim: bool) -> None:
    """As on the torch engine, with "end at sentence" on the end token waits for a sentence end; the GGUF loop
    asks only when one is drawn (no Python at the other steps), and draws again without it."""
    from storyterm.engine import llama_cpp_sampling

    surfaces = engine._surfaces().surfaces
    word = next(i for i, s in enumerate(surfaces) if s == " the")
    dot, eos = surfaces.index("."), engine._eos_ids[0]
    draws, again = iter([word, eos, eos]), []
    monkeypatch.setattr(llama_cpp_sampling.NativeSampler, "sample", lambda self, ctx: next(draws))

    def resample(self, ctx, token_ids):
        again.append(list(token_ids))
        return dot

    monkeypatch.setattr(llama_cpp_sampling.NativeSampler, "resample_without", resample)
    settings = GREEDY.with_changes(trim_sentences=trim, word_guard=False)
    result = engine.generate(GenerationRequest(None, "After the storm,", settings=settings))
    assert result.text == (" the." if trim else " the") and result.endings == ("end-of-text",)
    assert again == ([list(engine._eos_ids)] if trim else [])


def test_resample_without_draws_the_next_best_token(engine) -> None:
    import llama_cpp
    import numpy as np

    from storyterm.engine.llama_cpp_sampling import NativeSampler

    engine.generate(GenerationRequest(None, "The ship", settings=GREEDY.with_changes(max_new_tokens=1)))
    llama = engine._llama
    row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),)).copy()
    best, second = (int(i) for i in np.argsort(row)[::-1][:2])
    for settings in (GREEDY, SAMPLED.with_changes(top_k=1)):
        sampler = NativeSampler(llama_cpp, llama.n_vocab(), settings, 3)
        try:
            assert sampler.resample_without(llama.ctx, [best]) == second
        finally:
            sampler.close()
