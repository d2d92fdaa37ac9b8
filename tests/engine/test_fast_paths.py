"""Fast CPU paths: Conv1D → Linear, int8 dynamic quantization, bf16, the ``dtype auto`` rule, long drafts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from storyterm.engine import fast_paths
from storyterm.engine.context import SMART_CONTEXT_SLACK
from storyterm.engine.devices import DTYPE_CHOICES, dtype_name, resolve_dtype
from storyterm.engine.errors import DeviceError, ModelLoadError
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import ModelSpec, load_model
from storyterm.engine.prompt import training_line
from storyterm.engine.settings import DEFAULT_SETTINGS

GREEDY = DEFAULT_SETTINGS.with_changes(do_sample=False, max_new_tokens=12, repetition_penalty=1.0)
HELD_OUT = [
    training_line("drama", "The painter across the street falls in love with the detective from the hotel."),
    training_line("horror", "A letter in the old house tells the family why the ghost screams every night."),
    training_line("sci_fi", "Machines pilot the starship to Mars while the crew sleeps underground."),
]


def perplexity(loaded, lines: list[str]) -> float:
    """Token-level perplexity of ``lines`` (the training format, special tokens included)."""
    total_loss, total_tokens = 0.0, 0
    for line in lines:
        ids = torch.tensor([loaded.tokenizer(line, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            loss = loaded.model(input_ids=ids, labels=ids).loss.float().item()
        total_loss += loss * (ids.shape[1] - 1)
        total_tokens += ids.shape[1] - 1
    return math.exp(total_loss / total_tokens)


def is_int8_linear(module: torch.nn.Module) -> bool:
    return module._get_name() == "DynamicQuantizedLinear"


def greedy_text(loaded, story: str = "The ghost") -> str:
    return StoryEngine(loaded).generate(GenerationRequest("horror", story, settings=GREEDY)).text


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Loading an int8 model sets torch's process-wide thread count; give other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fp32_model(tiny_checkpoint: Path):
    return load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="fp32"))


# -- Conv1D → Linear and int8 -------------------------------------------------------------------------------------


def test_conv1d_to_linear_keeps_the_logits(tiny_checkpoint: Path) -> None:
    from transformers.pytorch_utils import Conv1D

    model = load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="fp32")).model
    ids = torch.tensor([[0, 5, 40, 41, 42, 43]])
    with torch.inference_mode():
        before = model(ids).logits
    replaced = fast_paths.conv1d_to_linear(model)
    assert replaced == 2 * 4  # c_attn, c_proj, c_fc, c_proj in each of 2 layers
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    with torch.inference_mode():
        after = model(ids).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_int8_load_quantizes_every_linear_and_keeps_the_greedy_text(tiny_checkpoint: Path, fp32_model) -> None:
    messages: list[str] = []
    loaded = load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="int8"), on_progress=messages.append)
    assert loaded.dtype == torch.qint8
    assert dtype_name(loaded.dtype) == "int8"
    assert "Quantizing weights to int8…" in messages
    quantized = [name for name, m in loaded.model.named_modules() if is_int8_linear(m)]
    assert len(quantized) == 2 * 4 + 1  # the blocks' projections and the lm_head
    assert not any(isinstance(m, torch.nn.Linear) for m in loaded.model.modules())
    text = greedy_text(loaded)
    assert text.strip()
    assert text == greedy_text(fp32_model)


def test_int8_can_keep_the_output_projection_in_fp32(tiny_checkpoint: Path) -> None:
    model = load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="fp32")).model
    fast_paths.quantize_int8(model, include_lm_head=False)
    assert isinstance(model.lm_head, torch.nn.Linear)
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied: no second copy
    assert is_int8_linear(model.transformer.h[0].mlp.c_fc)


@pytest.mark.parametrize("dtype", ["int8", "bf16"])
def test_fast_path_perplexity_within_three_percent_of_fp32(tiny_checkpoint: Path, fp32_model, dtype: str) -> None:
    loaded = load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype=dtype))
    reference = perplexity(fp32_model, HELD_OUT)
    assert perplexity(loaded, HELD_OUT) <= reference * 1.03
    assert len(greedy_text(loaded)) > 0


def test_int8_refuses_a_model_that_is_not_fp32(tiny_checkpoint: Path) -> None:
    model = load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="bf16")).model
    with pytest.raises(ValueError, match="fp32"):
        fast_paths.quantize_int8(model)


# -- dtype selection -------------------------------------------------------------------------------------------------


def test_int8_is_a_dtype_choice() -> None:
    assert "int8" in DTYPE_CHOICES
    assert resolve_dtype("int8", torch.device("cpu")) == torch.qint8
    assert resolve_dtype(" INT8 ", torch.device("cpu")) == torch.qint8


def test_auto_on_cpu_is_int8_only_for_models_big_enough_to_gain() -> None:
    cpu = torch.device("cpu")
    threshold = fast_paths.AUTO_INT8_MIN_PARAMETERS
    assert resolve_dtype("auto", cpu) == torch.float32  # size not known yet
    assert resolve_dtype("auto", cpu, threshold - 1) == torch.float32
    assert resolve_dtype("auto", cpu, threshold) == torch.qint8
    assert resolve_dtype("auto", cpu, 124_000_000) == torch.qint8
    for explicit, expected in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        assert resolve_dtype(explicit, cpu, 124_000_000) == expected


def test_without_a_quantized_engine_auto_stays_fp32_and_int8_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_paths, "_QUANTIZED_ENGINES", ("an-engine-this-torch-lacks",))
    assert resolve_dtype("auto", torch.device("cpu"), 124_000_000) == torch.float32
    with pytest.raises(DeviceError, match="quantized CPU engine"):
        resolve_dtype("int8", torch.device("cpu"))


def test_gpu_auto_is_bf16_or_fp16_and_int8_is_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", cuda, 124_000_000) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", cuda, 124_000_000) == torch.float16
    assert resolve_dtype("auto", torch.device("mps"), 124_000_000) == torch.float16
    for device in (cuda, torch.device("cuda:1"), torch.device("mps")):
        with pytest.raises(DeviceError, match="CPU only"):
            resolve_dtype("int8", device)


def test_load_with_auto_picks_int8_by_parameter_count(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = load_model(ModelSpec(str(tiny_checkpoint), device="cpu"))
    assert small.dtype == torch.float32
    monkeypatch.setattr(fast_paths, "AUTO_INT8_MIN_PARAMETERS", small.model.num_parameters())
    big = load_model(ModelSpec(str(tiny_checkpoint), device="cpu"))
    assert big.dtype == torch.qint8
    assert is_int8_linear(big.model.lm_head)


def test_int8_uses_half_the_cores_and_other_dtypes_get_torch_default_back(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [fast_paths.int8_thread_count(n) for n in (1, 2, 3, 8)] == [1, 1, 1, 4]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    default = torch.get_num_threads()
    monkeypatch.setattr(fast_paths, "_torch_default_threads", None)
    monkeypatch.setattr(fast_paths, "int8_thread_count", lambda cpu_count=None: default + 1)
    assert fast_paths.apply_cpu_threads(torch.qint8) == default + 1
    assert torch.get_num_threads() == default + 1
    assert fast_paths.apply_cpu_threads(torch.float32) == default
    assert torch.get_num_threads() == default
    # A small model decodes on few threads in any dtype; a large fp32 one gets torch's default.
    assert fast_paths.apply_cpu_threads(torch.float32, fast_paths.FEW_THREADS_MAX_PARAMETERS - 1) == default + 1
    assert fast_paths.apply_cpu_threads(torch.float32, fast_paths.FEW_THREADS_MAX_PARAMETERS) == default
    assert torch.get_num_threads() == default


def test_a_thread_count_chosen_by_the_user_is_kept(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(2)
    assert fast_paths.apply_cpu_threads(torch.qint8) is None
    load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="int8"))
    assert torch.get_num_threads() == 2


def test_quantization_failure_is_a_one_line_load_error(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(model, **kwargs):
        raise RuntimeError("no kernel for this layer\nsecond line")

    monkeypatch.setattr("storyterm.engine.loading.quantize_int8", broken)
    with pytest.raises(ModelLoadError, match=r"cannot quantize .*: no kernel for this layer; use --dtype fp32$"):
        load_model(ModelSpec(str(tiny_checkpoint), device="cpu", dtype="int8"))


# -- long drafts ------------------------------------------------------------------------------------------------------

WORDS = st.sampled_from(["ghost", "house", "the", "night", "Mars", "a", "42", "it's", "!", "...", "<EOS>", "<horror>"])
SPACES = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", " \n", "\t"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(pieces=[("ghost", "  "), ("it's", "\n\n"), ("<EOS>", " \n")] * 150, memory="Vega")
@given(pieces=st.lists(st.tuples(WORDS, SPACES), min_size=1, max_size=900), memory=st.sampled_from(["", "Vega"]))
def test_long_story_tail_encoding_equals_whole_encoding(fp32_model, pieces, memory) -> None:
    """Only the story's tail is tokenized when it fills the window; the ids must be those of the whole story."""
    engine = StoryEngine(fp32_model, smart_context=False)
    story = "".join(word + space for word, space in pieces).rstrip()
    settings_ = GREEDY.with_changes(max_new_tokens=28)
    prepared = engine.prepare(GenerationRequest("drama", story, memory=memory, settings=settings_))
    budget = fp32_model.context_window - settings_.max_new_tokens
    header = engine.prepare(GenerationRequest("drama", "", memory=memory, settings=settings_)).input_ids
    whole = engine._encode_writer_text(" " + story) if story else []
    assert prepared.input_ids[: prepared.header_tokens] == header[: prepared.header_tokens]
    expected_story = whole[max(0, len(whole) - (budget - prepared.header_tokens)):]
    assert prepared.input_ids[prepared.header_tokens:] == expected_story
    assert prepared.context_trimmed == (len(header) + len(whole) > budget)


def test_generation_with_a_very_long_draft_keeps_producing_text(fp32_model, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StoryEngine(fp32_model, generate_overrides={"min_new_tokens": GREEDY.max_new_tokens})
    story = " ".join(["The ghost screams in the old house and the family runs into the night."] * 400)
    calls: list[str] = []
    tokenizer = fp32_model.tokenizer
    original = type(tokenizer).__call__

    def counting_call(self, text, *args, **kwargs):
        calls.append(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", counting_call)
    result = engine.generate(GenerationRequest("horror", story, settings=GREEDY))
    monkeypatch.undo()
    assert result.stats.context_trimmed
    budget = fp32_model.context_window - GREEDY.max_new_tokens
    # Smart context leaves up to a third of the story's share free after a jump, and starts at a sentence.
    assert budget * (1 - SMART_CONTEXT_SLACK) // 2 <= result.stats.prompt_tokens <= budget * (1 - SMART_CONTEXT_SLACK)
    assert GREEDY.max_new_tokens <= result.stats.new_tokens <= engine.passage_token_limit(GREEDY)
    assert result.text.strip()
    assert max(len(text) for text in calls) < len(story) // 10  # only the tail was tokenized


def test_long_prompts_on_cpu_use_a_static_cache_with_the_same_text(
    fp32_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storyterm.engine import generation

    used: list[str | None] = []
    original = type(fp32_model.model).generate

    def spying_generate(self, *args, **kwargs):
        used.append(kwargs["generation_config"].cache_implementation)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(fp32_model.model), "generate", spying_generate)
    story = "The ghost screams in the old house and the family runs into the night. " * 20
    sampled = GREEDY.with_changes(do_sample=True, seed=3, num_alternatives=2)
    request = GenerationRequest("horror", story, settings=sampled)
    dynamic = StoryEngine(fp32_model).generate(request)
    monkeypatch.setattr(generation, "STATIC_CACHE_MIN_PROMPT_TOKENS", 50)
    static = StoryEngine(fp32_model).generate(request)
    forced_dynamic = StoryEngine(fp32_model, generate_overrides={"cache_implementation": None}).generate(request)
    assert used == [None, "static", None]
    assert static.texts == dynamic.texts == forced_dynamic.texts
    assert static.text.strip()
