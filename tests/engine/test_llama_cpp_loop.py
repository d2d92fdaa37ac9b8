"""The GGUF decode loop's cheap parts (issue 17): the repetition penalty on llama.cpp's logits row, the live text
decoded on the reading thread, and the token ids written for the processors only when they ask."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, RepetitionPenaltyLogitsProcessor, TextIteratorStreamer

from storyterm.engine.llama_cpp_backend import ConsumerDecodingStreamer, TokenIds
from storyterm.engine.llama_cpp_sampling import RepetitionPenalty
from storyterm.engine.passage import DECODE_KWARGS


@pytest.mark.parametrize("penalty", [1.1, 1.6, 0.8])
def test_the_penalty_is_transformers_own_on_the_logits_row(penalty: float) -> None:
    generator = np.random.default_rng(0)
    logits = generator.normal(0, 4, 300).astype(np.float32)
    logits[[3, 9]] = 0.0
    logits[12] = -np.inf  # a masked id stays masked
    history = [5, 3, 5, 12, 200, 9, 5, 17]
    new = [17, 40, 40, 41]
    expected = torch.from_numpy(logits.copy())[None]
    expected = RepetitionPenaltyLogitsProcessor(penalty)(torch.tensor([history + new]), expected)[0].numpy()

    ours = RepetitionPenalty(penalty, history)
    for token in new:
        ours.extend((token,))
    row = logits.copy()
    ours.apply(row)
    assert np.array_equal(row, expected)  # bit for bit: each id once, float32 as torch computes it
    untouched = np.setdiff1d(np.arange(300), history + new)
    assert np.array_equal(row[untouched], logits[untouched])


class _ThreadRecordingTokenizer:
    """A real tokenizer that notes which threads decode."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.decoding_threads: set[str] = set()

    def decode(self, *args, **kwargs):
        self.decoding_threads.add(threading.current_thread().name)
        return self._tokenizer.decode(*args, **kwargs)


def test_the_live_text_is_decoded_by_its_reader_and_equals_textiteratorstreamer(tiny_checkpoint) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    prompt = tokenizer.encode("The ghost screams")
    story = tokenizer.encode(" in the old house.\nAnna opens the door and the wind comes in")
    reference = TextIteratorStreamer(tokenizer, skip_prompt=True, **DECODE_KWARGS)
    reference.put(np.array([prompt]))
    for token in story:
        reference.put(np.array([token]))
    reference.end()
    expected = [piece for piece in reference if piece]

    recording = _ThreadRecordingTokenizer(tokenizer)
    streamer = ConsumerDecodingStreamer(recording)
    recording.decoding_threads.clear()

    def produce() -> None:
        streamer.put(np.array([prompt]))
        for token in story:
            streamer.put(np.array([token]))
        streamer.end()
        streamer.close()  # after end: nothing more

    producer = threading.Thread(target=produce, name="producer")
    producer.start()
    pieces = [piece for piece in streamer if piece]
    producer.join()
    assert pieces == expected and "".join(pieces).startswith(" in the old house.\n")
    assert recording.decoding_threads == {threading.current_thread().name}
    assert streamer.first_token_at is not None


def test_closing_the_live_text_without_an_end_unblocks_the_reader(tiny_checkpoint) -> None:
    streamer = ConsumerDecodingStreamer(AutoTokenizer.from_pretrained(tiny_checkpoint))
    streamer.put(np.array([[5, 6]]))
    streamer.put(np.array([7]))
    streamer.close()  # the generation died before end()
    streamer.end()
    list(streamer)  # returns instead of waiting for ever


def test_token_ids_are_written_for_the_processors_only_up_to_what_they_read() -> None:
    ids = TokenIds([4, 5, 6], limit=10)
    ids.tokens += [7, 8]
    assert ids.view(4).tolist() == [[4, 5, 6, 7]]
    early = ids.view(5)
    ids.tokens.append(9)
    assert early.tolist() == [[4, 5, 6, 7, 8]] and ids.view(6).tolist() == [[4, 5, 6, 7, 8, 9]]
    assert ids.view(6).dtype == torch.long
