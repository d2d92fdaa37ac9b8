"""Token probabilities measured beside the decode loop (the GGUF engine's ``StepProbs``): the same numbers as the
torch engine's measurement over the whole passage, measured while the loop goes on, and ready when it ends."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor, SuppressTokensLogitsProcessor

from storyterm.engine.settings import SamplerSettings
from storyterm.engine.step_probs import StepProbs, sampling_warpers
from storyterm.engine.token_probs import row_token_probs

VOCAB = 300
PROMPT = [5, 17, 17, 40, 2]
SUPPRESSED = [0, 1, 299, 1000]  # 1000: past the vocabulary, ignored as transformers ignores it


def passage(steps: int, seed: int) -> tuple[list[torch.Tensor], list[int]]:
    generator = torch.Generator().manual_seed(seed)
    logits = [torch.randn(1, VOCAB, generator=generator) * 3 for _ in range(steps)]
    tokens = [int(torch.randint(2, VOCAB - 1, (1,), generator=generator)) for _ in range(steps)]
    return logits, tokens


def reference(logits, tokens, processors, settings, k):
    """What the torch engine reports: every processor and warper on the whole vocabulary, then ``row_token_probs``."""
    processed = []
    for step, raw in enumerate(logits):
        ids = torch.tensor([PROMPT + tokens[:step]])
        scores = raw
        for processor in processors:
            scores = processor(ids, scores)
        for warper in sampling_warpers(settings):
            scores = warper(None, scores)
        processed.append(scores)
    return row_token_probs(None, [], tokens, logits, processed, 0, k)


def same(ours, theirs) -> None:
    assert [m[0] for m in ours] == [m[0] for m in theirs]
    for (_t, prob, raw, top), (_u, prob2, raw2, top2) in zip(ours, theirs):
        assert prob == pytest.approx(prob2, abs=1e-6) and raw == pytest.approx(raw2, abs=1e-6)
        assert [c[0] for c in top] == [c[0] for c in top2]
        assert [p for c in top for p in c[1:]] == pytest.approx([p for c in top2 for p in c[1:]], abs=1e-6)


@pytest.mark.parametrize("settings", [
    SamplerSettings(),  # temperature 1.2, top-k 50, top-p 0.95
    SamplerSettings(top_k=0, top_p=0.8, min_p=0.05),
    SamplerSettings(top_k=20, top_p=1.0, typical_p=0.7),
    SamplerSettings(top_k=10, min_p=0.2, temperature=0.7),
    SamplerSettings(do_sample=False),
])
def test_the_numbers_are_the_torch_engines(settings) -> None:
    logits, tokens = passage(12, seed=3)
    processors = [RepetitionPenaltyLogitsProcessor(1.3), SuppressTokensLogitsProcessor(SUPPRESSED)]
    probe = StepProbs(PROMPT, processors, sampling_warpers(settings), 5)
    for raw, token in zip(logits, tokens):
        probe.add(raw, None, token)
    ours = probe.measured()
    same(ours, reference(logits, tokens, processors, settings, 5))
    if settings.do_sample and settings.top_k:
        assert any(prob == 0 for m in ours for _c, prob, _r in m[3])  # candidates the sampler cut: 0


def test_recorded_processed_logits_are_used_as_they_are() -> None:
    logits, _tokens = passage(6, seed=4)
    # What a word guard left: nothing under 150, and 200 likeliest.
    processed = [raw.clone().index_fill_(1, torch.arange(0, 150), float("-inf")).index_fill_(1, torch.tensor([200]),
                                                                                              40) for raw in logits]
    probe = StepProbs(PROMPT, [SuppressTokensLogitsProcessor([200])], sampling_warpers(SamplerSettings(top_k=30)), 3)
    for raw, scores in zip(logits, processed):
        probe.add(raw, scores, 200)
    measured = probe.measured()
    assert all(m[1] > 0.5 for m in measured)  # the processors did not run again: 200 was not suppressed
    assert all(c[1] == 0 for m in measured for c in m[3] if c[0] < 150)


def test_steps_are_measured_while_the_loop_goes_on_and_end_tokens_are_not() -> None:
    logits, tokens = passage(8, seed=5)
    probe = StepProbs(PROMPT, [], sampling_warpers(SamplerSettings()), 4, stop_ids=[299])
    for raw, token in zip(logits, tokens):
        probe.add(raw, None, token)
    deadline = time.monotonic() + 30
    while probe.computed < len(tokens) and time.monotonic() < deadline:  # no close() yet: the loop still runs
        time.sleep(0.01)
    assert probe.computed == len(tokens)
    probe.add(torch.zeros(1, VOCAB), None, 299)  # the end token writes no text: nothing to measure
    assert [m[0] for m in probe.measured()] == tokens


def test_a_failing_step_is_raised_when_the_result_is_asked_for_and_the_worker_ends() -> None:
    def broken(_ids, _scores):
        raise ValueError("processor failed")

    probe = StepProbs(PROMPT, [broken], [], 2)
    probe.add(torch.zeros(1, VOCAB), None, 3)
    probe.add(torch.zeros(1, VOCAB), None, 4)
    with pytest.raises(ValueError, match="processor failed"):
        probe.measured()
    closed = StepProbs(PROMPT, [], [], 2)  # a loop that failed only closes it: the worker still ends
    closed.close()
    deadline = time.monotonic() + 30
    while any(t.name == "storyterm-token-probs" and t.is_alive() for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
