"""Per-token probabilities of a generated passage, and "continue from token i with this other token" (a swap).

How they are measured: with ``GenerationRequest.token_probs = K`` the generation asks ``model.generate`` for
``output_scores`` and ``output_logits``. The scores are exactly the distribution the token was drawn from (after
repetition penalty, suppressed tokens, banned words, temperature, top-k, top-p, min-p, typical-p); the logits are
the model's own, before any of it. Nothing else changes in the sampling path, so a seed gives the same passage
with probabilities on or off. With it off (K = 0) nothing is kept and nothing is computed.

A token's ``text`` is the piece of the passage it wrote; the texts of a passage's tokens joined equal its text
(the leading space the engine may strip or add, and the tail sentence trimming cuts, are accounted for).
``top`` lists the K tokens the *model* found likeliest there (raw order), each with both probabilities: a swap may
pick one the sampler had cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch

MAX_TOKEN_PROBS = 20  # the most candidates a generation may report per token


class Candidate(NamedTuple):  # a NamedTuple: a draft's passages hold tens of thousands, built fast
    """A token the model could have written at one position."""

    token_id: int
    text: str
    prob: float  # under the sampler settings (0 when the sampler cut it)
    raw_prob: float  # under the model alone

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "prob": self.prob, "raw_prob": self.raw_prob}


class TokenInfo(NamedTuple):
    """One generated token: what it wrote and how likely it was."""

    token_id: int
    text: str
    prob: float  # under the sampler settings that drew it
    raw_prob: float  # under the model alone
    top: tuple[Candidate, ...] = ()  # the model's likeliest tokens here, likeliest first

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "prob": self.prob, "raw_prob": self.raw_prob,
                "top": [c.to_dict() for c in self.top]}


def validate_token_probs(k: int) -> None:
    from .errors import SettingsError

    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_TOKEN_PROBS:
        raise SettingsError(f"token_probs must be a whole number from 0 to {MAX_TOKEN_PROBS}, got {k!r}")


def row_token_probs(tokenizer: Any, anchor: list[int], row: list[int], raw: list[torch.Tensor],
                    processed: list[torch.Tensor], index: int, k: int) -> list[tuple[int, float, float, list]]:
    """Per generated token of batch row ``index``: (id, prob, raw_prob, [(candidate id, prob, raw_prob)…]).

    ``raw`` / ``processed``: generate's per-step logits / scores (each (rows, vocab)); ``row`` the new ids."""
    import torch

    steps = min(len(row), len(raw))
    if steps == 0:
        return []
    logits = torch.stack([raw[i][index] for i in range(steps)]).float()
    scores = torch.stack([processed[i][index] for i in range(steps)]).float()
    raw_p = torch.softmax(logits, dim=-1)
    proc_p = torch.softmax(scores, dim=-1)  # -inf (cut) scores become 0
    proc_p = torch.nan_to_num(proc_p, nan=0.0)
    ids = torch.tensor(row[:steps], dtype=torch.long, device=logits.device).unsqueeze(1)  # logits may be on a GPU
    chosen_raw = raw_p.gather(1, ids).squeeze(1).tolist()
    chosen_proc = proc_p.gather(1, ids).squeeze(1).tolist()
    tops: list[list] = [[] for _ in range(steps)]
    if k > 0:
        top_raw, top_ids = raw_p.topk(min(k, raw_p.shape[1]), dim=-1)
        top_proc = proc_p.gather(1, top_ids)
        for step, (cids, craw, cproc) in enumerate(zip(top_ids.tolist(), top_raw.tolist(), top_proc.tolist())):
            tops[step] = list(zip(cids, cproc, craw))
    return [(row[i], chosen_proc[i], chosen_raw[i], tops[i]) for i in range(steps)]


class TokenTexts:
    """Token id → the text it adds after a word (decoded once per id, then remembered)."""

    def __init__(self, tokenizer: Any):
        from .passage import DECODE_KWARGS

        self._tokenizer = tokenizer
        self._anchor = [i for i in tokenizer("a", add_special_tokens=False)["input_ids"]][-1:]
        self._before = tokenizer.decode(self._anchor, **DECODE_KWARGS)
        self._cache: dict[int, str] = {}
        self._decode_kwargs = DECODE_KWARGS

    def __call__(self, token_id: int) -> str:
        text = self._cache.get(token_id)
        if text is None:
            text = self._tokenizer.decode(self._anchor + [token_id], **self._decode_kwargs)[len(self._before):]
            self._cache[token_id] = text
        return text


def token_spans(tokenizer: Any, anchor: list[int], ids: list[int]) -> tuple[str, list[int]]:
    """The decoded continuation and, per token, the offset where its text ends in it (monotonic; a token that
    only starts a multi-byte character ends where the previous one did, the next one carries the character)."""
    from .passage import DECODE_KWARGS

    if not ids:
        return "", []
    before = tokenizer.decode(anchor, **DECODE_KWARGS) if anchor else ""
    prefixes = tokenizer.batch_decode([list(anchor) + ids[: i + 1] for i in range(len(ids))], **DECODE_KWARGS)
    full = prefixes[-1][len(before):]
    ends, last = [], 0
    for prefix in prefixes:
        piece = prefix[len(before):]
        if full.startswith(piece) and not piece.endswith("\ufffd"):
            last = max(last, len(piece))
        ends.append(last)
    ends[-1] = len(full)
    return full, ends


def align_tokens(decoded: str, ends: list[int], final_text: str, lead: str,
                 measured: list[tuple[int, float, float, list]], texts: TokenTexts, healed: str = ""
                 ) -> tuple[TokenInfo, ...] | None:
    """TokenInfos whose texts join to ``final_text`` (= ``lead`` + a slice of ``decoded``), or None if the text
    is not such a slice (nothing is reported rather than something wrong). ``healed``: the story's own text that
    ``decoded`` begins with (token healing, ``passage.HEALED``): not the passage's, and the first token's
    candidates are those that begin with it, without it."""
    skip = len(healed) if healed and decoded.startswith(healed) else 0
    if skip:
        decoded, ends = decoded[skip:], [max(0, end - skip) for end in ends]
    core = final_text[len(lead):] if lead and final_text.startswith(lead) else final_text
    lead = final_text[: len(final_text) - len(core)]
    start = 0 if decoded.startswith(core) else len(decoded) - len(decoded.lstrip())
    if decoded[start : start + len(core)] != core:
        return None
    stop = start + len(core)
    tokens: list[TokenInfo] = []
    begin = 0
    for step, (end, (token_id, prob, raw_prob, top)) in enumerate(zip(ends, measured)):
        a, b = max(begin, start), min(end, stop)
        begin = end
        if b <= a and (end <= start or a >= stop):
            continue  # stripped leading space, the healed token written again as it was, or the trimmed tail
        text = decoded[a:b] if b > a else ""
        if not tokens:
            text = lead + text
        named = [(cid, texts(cid), cp, cr) for cid, cp, cr in top]
        if skip and step == 0:  # what else could have followed the story's own text
            named = [(cid, said[skip:], cp, cr) for cid, said, cp, cr in named if said.startswith(healed)]
        candidates = tuple(Candidate(cid, said, round(cp, 6), round(cr, 6)) for cid, said, cp, cr in named)
        tokens.append(TokenInfo(token_id, text, round(prob, 6), round(raw_prob, 6), candidates))
    if "".join(t.text for t in tokens) != final_text:
        return None
    return tuple(tokens)


@dataclass(frozen=True)
class TokenSwap:
    """Continue passage ``text`` from token ``index`` with ``replacement`` instead of the token written there."""

    text: str  # the passage as it stands
    tokens: tuple[TokenInfo, ...]  # its tokens (their texts join to ``text``)
    index: int
    replacement: Candidate

    def __post_init__(self) -> None:
        from .errors import StorytermError

        if not 0 <= self.index < len(self.tokens):
            raise StorytermError(f"no token {self.index} in this passage (it has {len(self.tokens)})")
        if "".join(t.text for t in self.tokens) != self.text:
            raise StorytermError("the passage was edited since it was generated: its tokens no longer match")

    @property
    def prefix(self) -> str:
        """The passage before the swapped token, unchanged."""
        return "".join(t.text for t in self.tokens[: self.index])

    @property
    def head(self) -> str:
        """The new passage's start: the kept prefix and the replacement."""
        return self.prefix + self.replacement.text

    def head_tokens(self) -> tuple[TokenInfo, ...]:
        """The kept tokens, then the replacement with the probabilities it had at that spot."""
        old = self.tokens[self.index]
        swapped = TokenInfo(self.replacement.token_id, self.replacement.text, self.replacement.prob,
                            self.replacement.raw_prob, old.top)
        return (*self.tokens[: self.index], swapped)


def tokens_at(tokens: tuple[TokenInfo, ...], offset: int) -> int | None:
    """The index of the token whose text covers character ``offset`` of the passage (None past its end)."""
    position = 0
    for index, token in enumerate(tokens):
        position += len(token.text)
        if offset < position:
            return index
    return None


def token_starts(tokens: tuple[TokenInfo, ...]) -> list[int]:
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token.text)
    return starts
