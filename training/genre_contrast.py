"""Genre contrast: a training term that makes the genre header matter.

storyterm's genre token is only useful if text of a genre is more likely after that genre's header than after the
others — the rule ``training.evaluate`` uses to classify a story. A model trained only to continue text learns to
lean on the text itself and nearly ignore the header; on this project's data every held-out plot then comes out
"most likely" under drama, the genre with the most training text.

The contrast term scores the first ``text_tokens`` tokens of each training row under *every* genre header and adds
the cross-entropy of the row's true genre against those scores: the likelihood classifier's own decision rule,
trained directly. Rows are the packed blocks of :mod:`training.data`, which always start with a header; the text
is read up to its story's end token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ContrastResult:
    loss: torch.Tensor      # mean cross-entropy of the true genre over the rows that have one
    correct: int            # rows whose true genre scored best
    rows: int               # rows that were scored


class GenreContrast:
    """Scores row texts under every genre header; see the module docstring."""

    def __init__(self, headers: Sequence[Sequence[int]], eos_id: int, pad_id: int, text_tokens: int = 64):
        lengths = {len(h) for h in headers}
        if len(headers) < 2:
            raise ValueError("genre contrast needs at least two genres")
        if len(lengths) != 1:
            raise ValueError("genre contrast needs headers of one length (the tokenizer splits them differently)")
        if text_tokens < 1:
            raise ValueError("genre contrast needs at least one text token")
        self.headers = torch.tensor([list(h) for h in headers], dtype=torch.long)
        self.header_len = lengths.pop()
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.text_tokens = text_tokens

    def row_genres(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The genre index of each row from its leading header, -1 where the row does not start with one."""
        heads = input_ids[:, None, : self.header_len]                       # (B, 1, H)
        matches = (heads == self.headers.to(input_ids.device)[None]).all(-1)  # (B, G)
        index = matches.float().argmax(-1)
        return torch.where(matches.any(-1), index, torch.full_like(index, -1))

    def text_mask(self, texts: torch.Tensor) -> torch.Tensor:
        """1 for the text up to and including its end token, 0 after it and for padding."""
        is_eos = texts == self.eos_id
        after_end = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
        return (~after_end & (texts != self.pad_id)).long()

    def scores(self, model, texts: torch.Tensor) -> torch.Tensor:
        """Log-likelihood (nats) of each text after each genre header: (rows, genres)."""
        rows, genres = texts.shape[0], self.headers.shape[0]
        headers = self.headers.to(texts.device)
        ids = torch.cat([headers[None].expand(rows, -1, -1), texts[:, None].expand(-1, genres, -1)], dim=-1)
        ids = ids.reshape(rows * genres, -1)
        text_mask = self.text_mask(texts)[:, None].expand(-1, genres, -1).reshape(rows * genres, -1)
        attention = torch.cat([torch.ones_like(ids[:, : self.header_len]), text_mask], dim=-1)
        logits = model(input_ids=ids, attention_mask=attention).logits.float()
        # Position t predicts token t + 1: the text tokens are predicted from the header's last position on.
        predicted = logits[:, self.header_len - 1 : -1]
        token_ll = -F.cross_entropy(predicted.transpose(1, 2), ids[:, self.header_len :], reduction="none")
        return (token_ll * text_mask).sum(-1).reshape(rows, genres)

    def __call__(self, model, input_ids: torch.Tensor) -> ContrastResult | None:
        genres = self.row_genres(input_ids)
        keep = genres >= 0
        if not bool(keep.any()):
            return None
        texts = input_ids[keep, self.header_len : self.header_len + self.text_tokens]
        targets = genres[keep]
        scores = self.scores(model, texts)
        return ContrastResult(
            loss=F.cross_entropy(scores, targets),
            correct=int((scores.argmax(-1) == targets).sum()),
            rows=int(targets.numel()),
        )
