"""Top-p over the tokens top-k kept, instead of over the whole vocabulary (issue 17).

``generate`` applies temperature, top-k and then top-p. Its ``TopPLogitsWarper`` sorts the whole vocabulary at
every step (50 257 entries for GPT-2) although top-k has already set all but ``top_k`` of them to ``-inf``: on the
2-core development machine that sort cost more than a third of an int8 124M decoding step
(``benchmarks/profile_decode.py``). ``SparseTopPLogitsWarper`` sorts only the ``top_k`` survivors and keeps the
same tokens (up to float rounding at the exact top-p boundary, and the order among tied scores).

``move_warpers`` takes temperature, top-k and top-p out of a GenerationConfig and returns them as processors for
the end of the engine's own list: ``generate`` runs custom processors right before its own sampling warpers, so
the order (penalties and masks, then temperature, top-k, top-p, then min-p and typical-p) is unchanged.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from transformers import LogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

if TYPE_CHECKING:
    import torch
    from transformers import GenerationConfig


class SparseTopPLogitsWarper(LogitsProcessor):
    """``TopPLogitsWarper`` for scores that top-k has already cut to at most ``top_k`` finite entries a row.

    A row with more finite entries (top-k kept every token tied with the k-th) goes through the full sort."""

    def __init__(self, top_p: float, top_k: int, min_tokens_to_keep: int = 1):
        self.full = TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=min_tokens_to_keep)
        self.top_p = float(top_p)
        self.top_k = int(top_k)
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        k = min(self.top_k, scores.shape[-1])
        if bool((torch.isfinite(scores).sum(dim=-1) > k).any()):
            return self.full(input_ids, scores)
        values, indices = torch.topk(scores, k, dim=-1)  # descending; every other entry is -inf already
        ascending, order = values.flip(-1), indices.flip(-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - self.top_p)
        remove[..., -self.min_tokens_to_keep:] = False
        return scores.scatter(-1, order, ascending.masked_fill(remove, self.full.filter_value))


def move_warpers(config: GenerationConfig) -> tuple[GenerationConfig, list[Any]]:
    """``(config, warpers)``: with sampling, top-k and top-p all on, a copy of ``config`` without temperature,
    top-k and top-p, and those three as processors (top-p sparse); otherwise ``config`` unchanged and ``[]``.

    The copy sets them to their "off" values rather than None: ``generate`` fills None from the checkpoint."""
    top_k, top_p = config.top_k or 0, config.top_p if config.top_p is not None else 1.0
    if not config.do_sample or top_k <= 0 or top_p >= 1.0 or (config.num_beams or 1) > 1:
        return config, []
    warpers: list[Any] = []
    temperature = config.temperature if config.temperature is not None else 1.0
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    warpers += [TopKLogitsWarper(top_k=top_k), SparseTopPLogitsWarper(top_p=top_p, top_k=top_k)]
    moved = copy.deepcopy(config)
    moved.temperature, moved.top_k, moved.top_p = 1.0, 0, 1.0
    return moved, warpers
