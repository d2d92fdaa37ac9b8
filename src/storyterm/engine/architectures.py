"""Which checkpoints storyterm can write with: decoder-only causal language models, and nothing else.

transformers will load a BERT checkpoint as ``BertLMHeadModel`` and let it "generate" word salad, so the config is
checked first (``is_encoder_decoder``, ``is_decoder``, ``architectures``, ``model_type``) and anything else is refused
with one line in storyterm's words.
"""

from __future__ import annotations

from typing import Any

from .errors import ModelLoadError

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "WithLMHead", "ForConditionalGeneration", "Decoder")
_EXAMPLES = "storyterm writes with decoder-only causal language models (GPT-2, Llama, Qwen, Mistral, Phi, Gemma…)"


def refusal_reason(config: Any) -> str | None:
    """Why ``config`` is not a decoder-only causal LM, or None when it is one."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = str(getattr(config, "model_type", "") or "?")
    architectures = [str(a) for a in (getattr(config, "architectures", None) or [])]
    is_decoder = bool(getattr(config, "is_decoder", False))
    if getattr(config, "is_encoder_decoder", False):
        return f"an encoder-decoder model ({model_type}), made for translation and summaries, not for continuing text"
    masked = any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in architectures)
    causal = any(a.endswith(_CAUSAL_SUFFIXES) for a in architectures)
    if (masked and not causal) or (model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not is_decoder):
        return f"a masked language model ({model_type}), which fills in blanks instead of continuing text"
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return f"not a text-generating language model (model type {model_type})"
    if architectures and not causal:
        return f"not a text-generating language model ({', '.join(architectures)})"
    return None


def check_causal_lm(config: Any, name: str) -> None:
    """ModelLoadError with one line when ``config`` is not a decoder-only causal LM."""
    reason = refusal_reason(config)
    if reason is not None:
        raise ModelLoadError(f"{name} is {reason}; {_EXAMPLES}")
