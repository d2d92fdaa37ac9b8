"""Tokenised training data: packing with the genre header repeated per block, or the seed's line-by-line rows.

Packing concatenates stories into full blocks of ``block_size`` tokens (no padding, no story truncated). When a
story does not fit into the rest of a block, its remainder continues in the next block *behind a repeated
``<BOS> <genre>`` header*: every training token is then conditioned on its genre exactly as at inference, where the
engine keeps the header and drops the oldest story tokens once a story outgrows the context window. A continuation
starts at the beginning of the sentence the previous block cut (those few tokens are read twice), so the model
never learns that a header may be followed by half a word.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from storyterm.engine.context import SENTENCE_END
from storyterm.engine.prompt import build_header

from .common import Story


@dataclass(frozen=True)
class TokenizedStory:
    genre: str
    header: list[int]   # <BOS> <genre>
    body: list[int]     # the text and <EOS>
    text_bytes: int
    sentence_starts: tuple[int, ...] = ()   # body indices where a sentence begins (ascending, never 0)

    @property
    def length(self) -> int:
        return len(self.header) + len(self.body)


def tokenize_stories(stories: Sequence[Story], tokenizer) -> list[TokenizedStory]:
    """Tokenise each training line once and split it into header and body.

    The full line is tokenised (not header and text separately) so the ids are exactly those the engine produces
    for the same text; the header is the prefix that tokenises ``build_header(genre)``.
    """
    if not stories:
        return []
    headers: dict[str, list[int]] = {}
    lines = [story.line() for story in stories]
    fast = getattr(tokenizer, "is_fast", False)
    encoded = tokenizer(lines, add_special_tokens=False, return_offsets_mapping=fast)
    offsets = encoded["offset_mapping"] if fast else [None] * len(lines)
    result = []
    for story, line, ids, spans in zip(stories, lines, encoded["input_ids"], offsets, strict=True):
        header = headers.get(story.genre)
        if header is None:
            header = headers[story.genre] = tokenizer(build_header(story.genre), add_special_tokens=False)["input_ids"]
        if ids[: len(header)] != header:
            raise ValueError(f"the tokenizer does not split the header of a {story.genre} story off cleanly")
        body = ids[len(header):]
        starts = sentence_start_tokens(line, spans, len(header), len(body)) if spans is not None else ()
        result.append(TokenizedStory(story.genre, header, body, len(story.text.encode("utf-8")), starts))
    return result


def genre_headers(tokenizer, genres: Sequence[str]) -> dict[str, list[int]]:
    """Each genre's ``<BOS> <genre>`` header ids, exactly as ``tokenize_stories`` splits them off a story."""
    return {genre: tokenize_stories([Story(genre, "x")], tokenizer)[0].header for genre in genres}


def sentence_start_tokens(line: str, spans: Sequence[tuple[int, int]], header_len: int, body_len: int) -> tuple[int, ...]:
    """Body token indices that begin a sentence, from the tokenizer's character offsets.

    A sentence begins at the first token that starts after the end punctuation (with byte-level BPE that token
    carries the space, like "ĠThe").
    """
    token_starts = [start for start, _ in spans]
    found: list[int] = []
    for match in SENTENCE_END.finditer(line):
        index = bisect.bisect_left(token_starts, match.end()) - header_len
        if 0 < index < body_len and (not found or index > found[-1]):
            found.append(index)
    return tuple(found)


def continuation_start(story: TokenizedStory, position: int, previous_start: int, max_reread: int) -> int:
    """Where the next piece of a story that was cut at ``position`` begins: the start of the cut sentence if it is
    after the previous piece's start and no more than ``max_reread`` tokens back, else ``position`` itself."""
    index = bisect.bisect_right(story.sentence_starts, position) - 1
    if index >= 0:
        start = story.sentence_starts[index]
        if start > previous_start and position - start <= max_reread:
            return start
    return position


def balance_repeats(stories: Sequence[TokenizedStory], power: float) -> list[int]:
    """How many times to repeat each story so genre g gets about ``n_g ** power`` shares (1 = as is, 0 = uniform).

    Counts stories per genre; repeats are whole numbers, at least 1 (nothing is ever dropped).
    """
    if power >= 1:
        return [1] * len(stories)
    counts = Counter(s.genre for s in stories)
    largest = max(counts.values())
    # Target n_g' = largest * (n_g / largest) ** power  →  repeat = n_g' / n_g.
    factor = {g: max(1, round((largest * (n / largest) ** power) / n)) for g, n in counts.items()}
    return [factor[s.genre] for s in stories]


def pack_stories(stories: Sequence[TokenizedStory], block_size: int, pad_id: int) -> list[list[int]]:
    """Concatenate stories into blocks of exactly ``block_size`` tokens, repeating the header per continuation.

    When the free end of a block cannot hold a header and one token, it is filled with ``pad_id`` (at most a
    header's length; those positions get no loss). The last, partial block is dropped, as ``run_clm`` does.
    A continuation re-reads the cut sentence from its start (at most a quarter of a block back).
    """
    max_reread = block_size // 4
    blocks: list[list[int]] = []
    current: list[int] = []
    for story in stories:
        header, body = story.header, story.body
        if len(header) + 1 > block_size:
            raise ValueError(f"block size {block_size} cannot hold a header of {len(header)} tokens")
        position = 0
        piece_start = -1
        while position < len(body):
            room = block_size - len(current) - len(header)
            if room < 1:
                blocks.append(current + [pad_id] * (block_size - len(current)))
                current = []
                continue
            if position > 0:
                position = continuation_start(story, position, piece_start, max_reread)
            piece_start = position
            take = min(room, len(body) - position)
            current.extend(header)
            current.extend(body[position : position + take])
            position += take
            if len(current) == block_size:
                blocks.append(current)
                current = []
    return blocks


class BlockDataset(Dataset):
    """Packed blocks: every row is ``block_size`` ids; labels are the ids (the model shifts them), except padding."""

    def __init__(self, blocks: list[list[int]], pad_id: int):
        self.blocks = torch.tensor(blocks, dtype=torch.long) if blocks else torch.empty((0, 0), dtype=torch.long)
        self.pad_id = pad_id

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.blocks[index]
        labels = ids.masked_fill(ids == self.pad_id, -100)
        return {"input_ids": ids, "labels": labels}

    def useful_tokens(self) -> int:
        return int((self.blocks != self.pad_id).sum()) if len(self) else 0


class LineDataset(Dataset):
    """The seed's recipe: one story per row, truncated to ``block_size``; the collator pads each batch."""

    def __init__(self, stories: Sequence[TokenizedStory], block_size: int):
        self.rows = [(s.header + s.body)[:block_size] for s in stories]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.rows[index]}


def build_packed_dataset(
    stories: Sequence[TokenizedStory],
    block_size: int,
    pad_id: int,
    *,
    epochs: int = 1,
    seed: int = 0,
    balance: float = 1.0,
) -> BlockDataset:
    """``epochs`` passes over the (balanced) stories, each shuffled afresh before packing, so block boundaries and
    neighbours differ from pass to pass. The Trainer then makes a single pass over the result."""
    repeats = balance_repeats(stories, balance)
    pool = [story for story, times in zip(stories, repeats, strict=True) for _ in range(times)]
    blocks: list[list[int]] = []
    for epoch in range(max(1, epochs)):
        order = list(pool)
        random.Random(seed * 1000 + epoch).shuffle(order)
        blocks.extend(pack_stories(order, block_size, pad_id))
    return BlockDataset(blocks, pad_id)
