"""Genre-contrastive training: a loss that makes the ``<genre>`` header matter.

A small model trained from scratch learns to nearly ignore its header: the story so far predicts the next word far
better than one genre token does (built-in v6: the true header beats the others by 0.00–0.03 nats a token), so
the genre picker barely changes what it writes. This adds the loss of the model used as a generative classifier:
a story's first ``window`` tokens are scored under every genre's header, the summed log-likelihoods are softmaxed
over the genres (a uniform prior) and cross-entropy is taken against the true genre. Its gradient raises the
story's likelihood under its own header and lowers it under the others — exactly what ``training.evaluate``'s genre
accuracy measures. Stories are drawn genre first, then story, so every genre weighs the same (balanced accuracy).
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch

from .data import TokenizedStory


MEMORY_MODES = ("keep", "strip", "skip")


def memory_length(body: Sequence[int], decode: Callable[[list[int]], str], limit: int = 48) -> int:
    """How many leading tokens of ``body`` are a memory header (`` [Anna, Tom]``); 0 when it has none."""
    start = 0
    while start < min(limit, len(body)) and not decode([body[start]]).strip():
        start += 1  # the space between the header and the story may be a token of its own
    if start >= len(body) or not decode([body[start]]).lstrip().startswith("["):
        return 0
    for index in range(start, min(limit, len(body))):
        if "]" in decode([body[index]]):
            return index + 1
    return 0


def contrast_stories(stories: Sequence[TokenizedStory], decode: Callable[[list[int]], str],
                     memory: str = "keep") -> list[TokenizedStory]:
    """The stories the genre loss scores. ``keep``: as trained; ``strip``: a memory header is cut off, so the loss
    scores the story alone (the header must not be learnt at the cost of copying names from Memory); ``skip``:
    stories with a memory header are left out."""
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}, not {memory!r}")
    if memory == "keep":
        return list(stories)
    chosen = []
    for story in stories:
        cut = memory_length(story.body, decode)
        if not cut:
            chosen.append(story)
        elif memory == "strip" and len(story.body) > cut:
            chosen.append(dataclasses.replace(story, body=story.body[cut:], sentence_starts=()))
    return chosen


class GenreContrast:
    """Draws balanced batches of tagged stories and computes the generative-classifier loss on them."""

    def __init__(self, stories: Sequence[TokenizedStory], headers: dict[str, list[int]], *, window: int,
                 batch_size: int, pad_id: int, seed: int = 0):
        if len({len(h) for h in headers.values()}) != 1:
            raise ValueError("every genre header must have the same length")
        self.genres = list(headers)
        self.headers = headers
        self.window = window
        self.batch_size = batch_size
        self.pad_id = pad_id
        self._random = random.Random(seed)
        self._by_genre: dict[str, list[TokenizedStory]] = defaultdict(list)
        for story in stories:
            if story.genre in headers and story.body:
                self._by_genre[story.genre].append(story)
        if len(self._by_genre) < 2:
            raise ValueError("genre-contrastive training needs stories of at least two of the model's genres")

    def draw(self) -> list[TokenizedStory]:
        """``batch_size`` stories: a genre drawn uniformly (among those with stories), then one of its stories."""
        present = sorted(self._by_genre)
        return [self._random.choice(self._by_genre[self._random.choice(present)]) for _ in range(self.batch_size)]

    def batch(self, stories: Sequence[TokenizedStory]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, attention mask, scored-target mask, true genre index): story i under genre j is row i·G + j; every
        row holds the same text tokens after its header, so only the header differs."""
        header_length = len(next(iter(self.headers.values())))
        bodies = [story.body[: self.window] for story in stories]
        length = header_length + max(len(body) for body in bodies)
        rows = len(stories) * len(self.genres)
        ids = torch.full((rows, length), self.pad_id, dtype=torch.long)
        attention = torch.zeros((rows, length), dtype=torch.long)
        scored = torch.zeros((rows, length - 1), dtype=torch.bool)  # target t predicts ids[t + 1]
        for i, body in enumerate(bodies):
            for j, genre in enumerate(self.genres):
                row = i * len(self.genres) + j
                sequence = self.headers[genre] + body
                ids[row, : len(sequence)] = torch.tensor(sequence)
                attention[row, : len(sequence)] = 1
                scored[row, header_length - 1 : len(sequence) - 1] = True
        targets = torch.tensor([self.genres.index(story.genre) for story in stories])
        return ids, attention, scored, targets

    def scores(self, model, stories: Sequence[TokenizedStory]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-likelihood of each story's window under each genre [stories × genres], true genre indices)."""
        ids, attention, scored, targets = self.batch(stories)
        device = next(model.parameters()).device
        ids, attention, scored = ids.to(device), attention.to(device), scored.to(device)
        logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
        token_log_probs = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        log_likelihood = (token_log_probs * scored).sum(dim=-1)
        return log_likelihood.view(len(stories), len(self.genres)), targets.to(device)

    def loss(self, model, stories: Sequence[TokenizedStory] | None = None) -> tuple[torch.Tensor, float]:
        """(cross-entropy of the true genre under the model's own likelihoods, the batch's accuracy)."""
        log_likelihood, targets = self.scores(model, stories if stories is not None else self.draw())
        accuracy = float((log_likelihood.argmax(dim=-1) == targets).float().mean())
        return torch.nn.functional.cross_entropy(log_likelihood, targets), accuracy


def genre_token_ids(headers: dict[str, list[int]]) -> list[int]:
    """The ids that tell the genre headers apart (``<drama>``…), without the ``<BOS>`` they share."""
    shared = set.intersection(*(set(header) for header in headers.values()))
    return sorted({token for header in headers.values() for token in header} - shared)


def train_only_genre_rows(model, token_ids: Sequence[int]) -> int:
    """Freeze the model except the input-embedding rows of ``token_ids`` (prompt tuning of the genre tokens).

    The genre loss moved the whole model and cost Memory names: the circuits that copy a name from the Memory
    bracket changed with it. Here only the genre embeddings move, so whatever else the model does stays as trained.
    A gradient hook zeroes the other rows of the (tied) embedding matrix; with no weight decay Adam then leaves
    them exactly where they were. Returns the number of trainable values."""
    embedding = model.get_input_embeddings().weight
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    embedding.requires_grad_(True)
    keep = torch.zeros(embedding.shape[0], 1, dtype=embedding.dtype, device=embedding.device)
    keep[list(token_ids)] = 1
    embedding.register_hook(lambda grad: grad * keep.to(grad.dtype))
    return len(token_ids) * embedding.shape[1]


def with_genre_contrast(trainer_class, contrast: GenreContrast, weight: float):
    """``trainer_class`` whose training loss adds ``weight`` × the genre-contrastive loss (evaluation loss is the
    language-model loss alone); the running contrast loss and accuracy are logged as ``genre_ce``/``genre_acc``."""

    class GenreContrastTrainer(trainer_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._sums = {"genre_ce": 0.0, "genre_acc": 0.0, "n": 0}

        def compute_loss(self, model, inputs, *args, **kwargs):
            result = super().compute_loss(model, inputs, *args, **kwargs)
            if not model.training:
                return result
            extra, accuracy = contrast.loss(model)
            self._sums["genre_ce"] += float(extra.detach())
            self._sums["genre_acc"] += accuracy
            self._sums["n"] += 1
            if isinstance(result, tuple):
                return (result[0] + weight * extra, *result[1:])
            return result + weight * extra

        def log(self, logs: dict[str, float], *args, **kwargs) -> None:
            if self._sums["n"] and "loss" in logs:
                count = self._sums["n"]
                logs["genre_ce"] = round(self._sums["genre_ce"] / count, 4)
                logs["genre_acc"] = round(self._sums["genre_acc"] / count, 4)
                self._sums.update(genre_ce=0.0, genre_acc=0.0, n=0)
            super().log(logs, *args, **kwargs)

    return GenreContrastTrainer
