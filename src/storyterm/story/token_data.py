"""A passage's tokens as stored in the draft file: compact lists of small whole numbers.

    {"ends": [4, 9, …],            # where each token's text ends in the passage text (so texts cost nothing)
     "p": [9512, 120, …],          # each token's probability under its sampler settings, in 1/10000
     "raw": [8011, 97, …],         # … and under the model alone
     "words": [" the", ",", …],    # the candidates' texts, each once per passage
     "top": [[w, p, raw, w, p, raw, …], …]}   # per token: candidates as (index into words, p, raw) triples,
                                              # p and raw in 1/1000 (a candidate under 0.1 % is no candidate)

Token ids are not kept: a draft outlives the model that wrote it, and the texts are what the writer sees. Data that
does not fit the passage's text (a hand edit) reads as "no token data", never as an error.
"""

from __future__ import annotations

from typing import Any

from storyterm.engine.token_probs import Candidate, TokenInfo

SCALE = 10_000  # a token's own probabilities are kept to 0.01 % (unlikely tokens must still show as unlikely)
TOP_SCALE = 1_000  # its candidates' to 0.1 %: the file stays small


def _scaled(p: float, scale: int = SCALE) -> int:
    return max(0, min(scale, round(p * scale)))


def encode_tokens(tokens: tuple[TokenInfo, ...] | list[TokenInfo]) -> dict[str, Any]:
    ends, probs, raws, words, tops = [], [], [], [], []
    word_index: dict[str, int] = {}
    position = 0
    for token in tokens:
        position += len(token.text)
        ends.append(position)
        probs.append(_scaled(token.prob))
        raws.append(_scaled(token.raw_prob))
        flat: list[int] = []
        for candidate in token.top:
            index = word_index.setdefault(candidate.text, len(words))
            if index == len(words):
                words.append(candidate.text)
            flat += [index, _scaled(candidate.prob, TOP_SCALE), _scaled(candidate.raw_prob, TOP_SCALE)]
        tops.append(flat)
    return {"ends": ends, "p": probs, "raw": raws, "words": words, "top": tops}


def _ints(value: Any, length: int | None = None) -> list[int] | None:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        return None
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        return None
    return value


def decode_tokens(data: Any, text: str) -> tuple[TokenInfo, ...] | None:
    """The TokenInfos stored for a passage of ``text`` (token ids are -1: unknown), or None."""
    if not isinstance(data, dict):
        return None
    ends = _ints(data.get("ends"))
    if ends is None or (ends and ends[-1] != len(text)) or any(b < a for a, b in zip(ends, ends[1:])):
        return None
    probs, raws = _ints(data.get("p"), len(ends)), _ints(data.get("raw"), len(ends))
    words, tops = data.get("words"), data.get("top")
    if probs is None or raws is None or not isinstance(words, list) or not isinstance(tops, list):
        return None
    if len(tops) != len(ends) or not all(isinstance(w, str) for w in words):
        return None
    tokens, start = [], 0
    for end, p, raw, flat in zip(ends, probs, raws, tops):
        if not isinstance(flat, list) or len(flat) % 3 or not all(type(v) is int and v >= 0 for v in flat):
            return None
        if any(flat[i] >= len(words) for i in range(0, len(flat), 3)):
            return None
        top = tuple(Candidate(-1, words[flat[i]], flat[i + 1] / TOP_SCALE, flat[i + 2] / TOP_SCALE)
                    for i in range(0, len(flat), 3))
        tokens.append(TokenInfo(-1, text[start:end], p / SCALE, raw / SCALE, top))
        start = end
    return tuple(tokens)
