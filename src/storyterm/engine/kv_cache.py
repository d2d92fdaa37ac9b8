"""The KV caches a passage is generated with: which kind, how large, and whether the previous passage's cache can be
cut back to the prefix the next prompt shares with it *exactly* (same keys and values as a fresh read).

transformers 5 builds one cache layer per model layer from the config (``layer_types`` or ``sliding_window``):

* full attention (``DynamicLayer``, ``StaticLayer``) keeps every past token: cutting back is always exact;
* sliding-window attention (``DynamicSlidingWindowLayer``: Mistral, Phi-3, Qwen2 with ``use_sliding_window``, the
  sliding layers of Gemma-2/3) keeps only the last ``window - 1`` tokens. Tokens it has dropped cannot be brought
  back, so a cut is exact only while the layer still holds the ``window - 1`` tokens before the cut point. The
  dynamic caches built here record their past (``activate_past_recording``: the layer keeps every token, attention
  still sees only the window) so the previous passage's tokens are still there to cut back to;
* any other layer kind (quantized, linear attention, indexed…) is only ever extended, never cut.

Static caches (preallocated, faster per token on a CPU for long prompts) are built only for models whose layers are
all full attention, and sized to what a passage needs, not to the model's maximum context: attention over a static
cache reads all of it at every step, so a 131 072-position cache made a 17 M-parameter model ~8x slower.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import Cache

# A static cache gets room for this many passages beyond the one it is built for, so the next passages can reuse it
# without a copy into a larger one; its size is rounded up to a multiple of STATIC_CACHE_STEP tokens.
STATIC_CACHE_SPARE_PASSAGES = 2
STATIC_CACHE_STEP = 256


def layer_types(model_config: Any) -> list[str]:
    """The attention type of each layer as transformers' caches see it (``full_attention``, ``sliding_attention``…)."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    types, _kwargs = get_layer_types_and_kwargs(model_config.get_text_config(decoder=True))
    return list(types)


def all_full_attention(model_config: Any) -> bool:
    """True when every layer attends to every past token (no sliding window, no recurrent state)."""
    return all(kind == "full_attention" for kind in layer_types(model_config))


def static_capacity(prompt_tokens: int, max_new_tokens: int, context_window: int) -> int:
    """Tokens a static cache is built for: this passage plus a few more, never more than the window needs."""
    needed = prompt_tokens + max_new_tokens
    roomy = needed + STATIC_CACHE_SPARE_PASSAGES * max_new_tokens
    rounded = -(-roomy // STATIC_CACHE_STEP) * STATIC_CACHE_STEP
    return max(needed, min(rounded, context_window))


def new_cache(model_config: Any, static_capacity: int | None = None) -> Cache:
    """An empty cache: static with room for ``static_capacity`` tokens (full-attention models only), else dynamic,
    with sliding-window layers recording their past so that the cache can later be cut back exactly."""
    from transformers import DynamicCache, StaticCache

    if static_capacity is not None:
        if not all_full_attention(model_config):
            raise ValueError("static caches are built only for models whose layers are all full attention")
        return StaticCache(config=model_config, max_cache_len=static_capacity)
    cache = DynamicCache(config=model_config)
    cache.activate_past_recording()
    return cache


def cached_length(cache: Cache) -> int:
    return int(cache.get_seq_length())


def capacity(cache: Cache) -> int | None:
    """How many tokens the cache can hold in all; None when it grows as needed."""
    limits = [layer.max_cache_len for layer in cache.layers if _is(layer, "StaticLayer")]
    return min(limits) if limits else None


def reuse(cache: Cache, length: int, *, total_tokens: int, grow_to: int, model_config: Any) -> Cache | None:
    """``cache`` cut back to its first ``length`` tokens, ready for a generation of ``total_tokens`` tokens in all
    (prompt + new tokens): the same cache, a copy into a static one of ``grow_to`` tokens when it is too small, or
    None when the cut would not be exact."""
    held = cached_length(cache)
    cache.activate_past_recording()  # generate() may have turned it off (deferred stop checks on mps)
    if not 0 < length <= held or not all(_can_cut(layer, held, length) for layer in cache.layers):
        return None
    if length < held:
        cache.crop(length - held)
    room = capacity(cache)
    if room is not None and room < total_tokens:
        return _copy_into_static(cache, length, max(grow_to, total_tokens), model_config)
    return cache


def _is(layer: Any, class_name: str) -> bool:
    """Exact class match: subclasses (quantized, indexed, linear-attention hybrids) store more than keys and values."""
    return type(layer).__name__ == class_name and type(layer).__module__ == "transformers.cache_utils"


def _can_cut(layer: Any, held: int, length: int) -> bool:
    """Whether ``layer``, holding ``held`` tokens, can be cut back to its first ``length`` exactly."""
    if length == held or _is(layer, "DummyLayer"):
        return True  # nothing to cut / nothing stored (layers that share another layer's keys and values)
    if _is(layer, "DynamicLayer") or _is(layer, "StaticLayer"):
        return True
    if _is(layer, "DynamicSlidingWindowLayer"):
        if not layer.is_initialized:
            return True
        # The window before the cut point must still be stored: recording keeps it, a plain layer has dropped it.
        first_stored = int(layer.cumulative_length) - int(layer.keys.shape[-2])
        return first_stored <= max(0, length - layer.sliding_window + 1)
    return False


def _copy_into_static(cache: Cache, length: int, size: int, model_config: Any) -> Cache | None:
    """A static cache of ``size`` tokens holding the first ``length`` tokens of ``cache`` (a memory copy, far
    cheaper than reading the tokens again)."""
    if not all(_is(layer, "StaticLayer") for layer in cache.layers):
        return None
    bigger = new_cache(model_config, static_capacity=size)
    for old, new in zip(cache.layers, bigger.layers, strict=True):
        if old.is_initialized:
            new.update(old.keys[:, :, :length], old.values[:, :, :length])
    return bigger
