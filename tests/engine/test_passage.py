"""Passage boundaries: the spacing between story and passage, and passages that end at a sentence end."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from storyterm.engine import passage
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model
from storyterm.engine.passage import finish_passage, plan_start
from storyterm.engine.prompt import opening_text
from storyterm.engine.settings import SamplerSettings
from storyterm.tui.starters import STARTERS
from tests.tiny_sentencepiece import TOKENIZER_CLASSES, build_tiny_sentencepiece_checkpoint

SHORT = SamplerSettings(max_new_tokens=6, seed=3, trim_sentences=False)
ENDS_AT_SENTENCE = re.compile(r"[.!?…][\"'”’)\]]*$")


@pytest.fixture(scope="module", params=["gpt2", *TOKENIZER_CLASSES])
def any_loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The tiny GPT-2 (byte-level BPE) and tiny Llamas with SentencePiece-style tokenizers."""
    from tests.conftest import build_tiny_checkpoint

    path = tmp_path_factory.mktemp(request.param)
    if request.param == "gpt2":
        build_tiny_checkpoint(path)
    else:
        build_tiny_sentencepiece_checkpoint(path, request.param)
    return load_model(ModelSpec(str(path), device="cpu"))


def genre_of(loaded: LoadedModel, genre: str = "horror") -> str | None:
    if not loaded.genres:
        return None
    return genre if genre in loaded.genres else loaded.genres[0]


def script_model(loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, next_id: Callable[[int, int], int]) -> None:
    """Make the model write ``next_id(length so far, last token)`` at every step, whatever the sampling settings."""
    model = loaded.model
    original = model.forward

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        length = kwargs["attention_mask"].shape[-1]
        logits = torch.full_like(out.logits[:, -1, :], -1e4)
        logits[:, next_id(length, int(kwargs["input_ids"][0, -1]))] = 0
        out.logits[:, -1, :] = logits
        return out

    monkeypatch.setattr(model, "forward", forward)


def scripted_passage(engine: StoryEngine, loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch,
                     request: GenerationRequest, first: int) -> tuple[str, object]:
    """The passage of a model that wants ``first`` as its first token, then full stops: (streamed text, result)."""
    dot = next(i for i, s in enumerate(engine._surfaces().surfaces) if s == ".")
    start = len(engine.prepare_passage(request).input_ids)
    script_model(loaded, monkeypatch, lambda length, _last: first if length == start else dot)
    stream = engine.stream(request)
    streamed = "".join(stream)
    result = stream.result()
    monkeypatch.undo()
    return streamed, result


def scripted_text(loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, prompt_ids: list[int], text: str) -> None:
    """The model writes ``text`` (then keeps repeating its last token) after a prompt of ``prompt_ids``."""
    if "▁" in loaded.tokenizer.get_vocab():  # SentencePiece-style: the tokenizer marks the first word start itself
        text = text.lstrip()
    script = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    start = len(prompt_ids)
    script_model(loaded, monkeypatch, lambda length, _last: script[min(length - start, len(script) - 1)])


# -- the spacing rule ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("story", "prompt_story", "kind", "drop"),
    [
        ("", "", passage.STORY_START, True),
        ("  \n", "", passage.STORY_START, True),
        ("A Ghost", "A Ghost", passage.AFTER_WORD, False),
        ("A Ghost ", "A Ghost", passage.AFTER_SPACE, True),
        ("The end.\n\n", "The end.", passage.AFTER_SENTENCE, True),
        ("The end.", "The end.", passage.AFTER_SENTENCE, False),
        ("Who?", "Who?", passage.AFTER_SENTENCE, False),
        ("And then...", "And then...", passage.AFTER_PUNCT, False),
        ("In the mist,", "In the mist,", passage.AFTER_PUNCT, False),
        ('He said, "Go."', 'He said, "Go."', passage.AFTER_PUNCT, False),
        ('He said, "', 'He said, "', passage.FREE, False),
    ],
)
def test_plan_start(story: str, prompt_story: str, kind: str, drop: bool) -> None:
    plan = plan_start(story)
    assert (plan.prompt_story, plan.kind, plan.drop_leading_space) == (prompt_story, kind, drop)


def test_opening_text_ends_with_one_space() -> None:
    assert opening_text("A Ghost") == "A Ghost "
    assert opening_text(" In the mist,  ") == "In the mist, "
    assert opening_text("  ") == ""


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def test_no_glued_word_after_any_starter(any_loaded: LoadedModel) -> None:
    """Every starter of every genre, as the editor inserts it and as typed: the passage starts a new word."""
    engine = StoryEngine(any_loaded)
    glued = []
    for genre, starters in STARTERS.items():
        for starter in starters:
            for story in (opening_text(starter), starter):
                request = GenerationRequest(genre_of(any_loaded, genre), story, settings=SHORT)
                text = engine.generate(request).text
                assert text.strip(), (story, text)
                if _words(story + text)[: len(_words(story))] != _words(story):
                    glued.append(story + text)
                if story.endswith(" "):
                    assert not text[0].isspace(), (story, text)
    assert glued == []


def test_a_blank_line_starts_a_new_paragraph(any_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StoryEngine(any_loaded)
    story = "The ghost screams in the old house.\n\n"
    for seed in range(6):
        text = engine.generate(GenerationRequest(genre_of(any_loaded), story,
                                                 settings=SHORT.with_changes(seed=seed))).text
        assert re.match(r"[\w\"'“‘(\[]", text), text
    # Even a model that wants to open with punctuation (". At the summer…") starts with a word.
    dots = [i for i, s in enumerate(engine._token_surfaces.surfaces) if s.strip() in {".", ","}]
    bias = torch.zeros(any_loaded.model.lm_head.out_features)
    bias[dots] = 50.0
    monkeypatch.setattr(any_loaded.model.lm_head, "bias", torch.nn.Parameter(bias, requires_grad=False))
    text = engine.generate(GenerationRequest(genre_of(any_loaded), story, settings=SHORT)).text
    assert re.match(r"[\w\"'“‘(\[]", text), text


def test_a_new_sentence_or_story_starts_with_a_capital_or_a_quotation(any_loaded: LoadedModel,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in model opened one passage in ten after a full stop with a lower-case fragment ("The ships.
    verse, Whoopi…"), and one new story in six ("urging to the police"); even a model that wants nothing else
    starts the sentence properly, the space kept."""
    engine = StoryEngine(any_loaded)
    engine.generate(GenerationRequest(genre_of(any_loaded), "", settings=SHORT))  # builds the token surfaces
    surfaces = engine._token_surfaces.surfaces
    lower = [i for i, s in enumerate(surfaces) if s.strip()[:1].islower() or s.strip()[:1].isdigit()]
    bias = torch.zeros(any_loaded.model.lm_head.out_features)
    bias[lower] = 50.0
    monkeypatch.setattr(any_loaded.model.lm_head, "bias", torch.nn.Parameter(bias, requires_grad=False))
    for story in ("The ghost screams.", "Who is there?", "The end.\n\n", ""):
        for seed in range(3):
            request = GenerationRequest(genre_of(any_loaded), story, settings=SHORT.with_changes(seed=seed))
            text = engine.generate(request).text
            assert re.match(r"\s*[\"'“‘(]*[A-Z]", text), (story, text)
            assert text[0].isspace() != (story == "" or story.endswith("\n")), (story, text)
    # After an ellipsis or a comma the sentence goes on in lower case.
    text = engine.generate(GenerationRequest(genre_of(any_loaded), "And then...", settings=SHORT)).text
    assert re.match(r"\s[a-z]", text), text


def test_an_empty_story_never_opens_with_a_memory_style_bracket(any_loaded: LoadedModel,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in model, trained with ``[Anna, Tom]`` after the header, sometimes opened a new story with an
    invented one ("[Grail] In this…"); at the start of a story a bracket is never the writer's."""
    engine = StoryEngine(any_loaded)
    engine.generate(GenerationRequest(genre_of(any_loaded), "", settings=SHORT))  # builds the token surfaces
    brackets = [i for i, s in enumerate(engine._token_surfaces.surfaces) if s.strip().startswith("[")]
    if not brackets:
        pytest.skip("this tiny tokenizer has no token with a bracket")
    bias = torch.zeros(any_loaded.model.lm_head.out_features)
    bias[brackets] = 50.0
    monkeypatch.setattr(any_loaded.model.lm_head, "bias", torch.nn.Parameter(bias, requires_grad=False))
    for seed in range(3):
        text = engine.generate(GenerationRequest(genre_of(any_loaded), "", settings=SHORT.with_changes(seed=seed))).text
        assert text.strip() and not text.lstrip().startswith("["), text
    # Later in a story a bracket stays allowed where a word may start.
    word_mask = engine._token_surfaces.allowed_mask(passage.WORD)
    assert any(bool(word_mask[i]) for i in brackets if engine._token_surfaces.surfaces[i].startswith("["))


def test_sentencepiece_passages_keep_their_space_and_the_prompt_has_no_stray_marker(any_loaded: LoadedModel) -> None:
    engine = StoryEngine(any_loaded)
    story = "The ghost screams"
    prepared = engine.prepare(GenerationRequest(genre_of(any_loaded), story, settings=SHORT))
    tokens = any_loaded.tokenizer.convert_ids_to_tokens(prepared.input_ids[prepared.header_tokens:])
    assert "▁" not in tokens and "Ġ" not in tokens
    assert any_loaded.tokenizer.decode(prepared.input_ids, skip_special_tokens=True).strip().endswith(story)
    stream = engine.stream(GenerationRequest(genre_of(any_loaded), story, settings=SHORT))
    streamed = "".join(stream)
    text = stream.result().text
    assert text[0] in " ,.;:!?'\"", text  # a new word (with its space) or punctuation, never glued
    assert streamed.rstrip() == text


def test_a_trailing_space_never_dead_ends_the_story(any_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that writes three words, a space and EOS — and ends at once after a space — as in the issue: the story
    then ended with a space, and every later passage used to be empty ("The model produced no text")."""
    tokenizer = any_loaded.tokenizer
    eos = tokenizer.eos_token_id
    space = tokenizer.convert_tokens_to_ids("Ġ" if "Ġ" in tokenizer.get_vocab() else "▁")
    engine = StoryEngine(any_loaded)
    story = "The ghost screams. "
    engine.generate(GenerationRequest(genre_of(any_loaded), story, settings=SHORT))  # builds the token surfaces
    word = next(i for i, s in enumerate(engine._token_surfaces.surfaces) if re.fullmatch(r" [a-z]{3,}", s))
    passages = []
    for _ in range(5):
        request = GenerationRequest(genre_of(any_loaded), story, settings=SHORT.with_changes(max_new_tokens=10))
        start = len(engine.prepare(request).input_ids)
        script_model(any_loaded, monkeypatch,
                     lambda length, last: eos if last == space else (space if length - start >= 3 else word))
        result = engine.generate(request)
        monkeypatch.undo()
        assert result.endings == ("end-of-text",)
        passages.append(result.text)
        story += result.text
    assert all(p.strip() for p in passages), passages
    assert not story.endswith(" ")


def test_eos_is_never_the_first_token_so_no_alternative_is_empty(any_loaded: LoadedModel,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bias = torch.zeros(any_loaded.model.lm_head.out_features)
    bias[any_loaded.tokenizer.eos_token_id] = 1e4
    monkeypatch.setattr(any_loaded.model.lm_head, "bias", torch.nn.Parameter(bias, requires_grad=False))
    engine = StoryEngine(any_loaded)
    for story in ("", "The ghost", "The ghost. ", "The end.\n\n"):
        result = engine.generate(GenerationRequest(genre_of(any_loaded), story,
                                                   settings=SHORT.with_changes(num_alternatives=3)))
        assert len(result.texts) == 3
        assert all(text.strip() for text in result.texts), (story, result.texts)
        assert result.endings == ("end-of-text",) * 3


# -- ending at a sentence -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "trim", "expected", "ending"),
    [
        ("He runs. She falls in", True, "He runs.", passage.TRIMMED),
        ('He runs. "Stop!" She', True, 'He runs. "Stop!"', passage.TRIMMED),
        ("He runs.  ", True, "He runs.", passage.SENTENCE),
        ("He runs into the nig", True, "He runs into the", passage.WORD),
        ("Nightfall", True, "Nightfall", passage.WORD),
        ("He runs. She falls in", False, "He runs. She falls in", passage.LENGTH),
    ],
)
def test_finish_passage(text: str, trim: bool, expected: str, ending: str) -> None:
    assert finish_passage(text, ended_by_model=False, cancelled=False, trim=trim) == (expected, ending)


def test_finish_passage_keeps_what_the_model_or_the_writer_ended() -> None:
    assert finish_passage("He runs. She ", ended_by_model=True, cancelled=False, trim=True) == (
        "He runs. She", passage.END_OF_TEXT)
    assert finish_passage("He runs. Sh", ended_by_model=False, cancelled=True, trim=True) == (
        "He runs. Sh", passage.STOPPED)


SCRIPT = ' The ghost runs into the night. She falls in love with the painter. "Run," he says.'


@pytest.mark.parametrize(
    ("max_new_tokens", "trim", "expected_end", "ending"),
    [
        # The limit falls inside the second sentence; the grace finishes it.
        (None, True, "painter.", passage.SENTENCE),
        # The limit falls inside the third sentence, too long for the grace: cut back to the second's end.
        (-1, True, "painter.", passage.TRIMMED),
    ],
)
def test_a_length_cut_finishes_or_trims_to_a_sentence(any_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch,
                                                      max_new_tokens, trim, expected_end, ending) -> None:
    tokenizer = any_loaded.tokenizer
    engine = StoryEngine(any_loaded)
    story = "Night falls"
    ids = tokenizer(SCRIPT, add_special_tokens=False)["input_ids"]
    first_end = len(tokenizer(SCRIPT[: SCRIPT.index("night.") + 6], add_special_tokens=False)["input_ids"])
    second_end = len(tokenizer(SCRIPT[: SCRIPT.index("painter.") + 8], add_special_tokens=False)["input_ids"])
    if max_new_tokens is None:
        limit = second_end - 2  # two tokens short of the second sentence end: the grace finishes it
    else:
        # Inside the third sentence, which needs more than the (shrunk) grace: cut back to the second's end.
        limit = len(tokenizer(SCRIPT[: SCRIPT.index("Run,") + 4], add_special_tokens=False)["input_ids"])
        monkeypatch.setattr(passage, "GRACE_MIN_TOKENS", 1)
        monkeypatch.setattr(passage, "GRACE_SHARE", 0.01)
    assert first_end < limit < len(ids)
    prompt = engine.prepare(GenerationRequest(genre_of(any_loaded), story, settings=SHORT)).input_ids
    scripted_text(any_loaded, monkeypatch, prompt, SCRIPT + " And then")
    settings = SHORT.with_changes(max_new_tokens=limit, trim_sentences=trim, do_sample=False)
    result = engine.generate(GenerationRequest(genre_of(any_loaded), story, settings=settings))
    assert result.text.endswith(expected_end), result.text
    assert result.endings[0] == ending
    assert result.trimmed == (ending == passage.TRIMMED)
    assert (story + result.text).startswith("Night falls The ghost runs")


def test_a_closing_quote_is_kept_and_trimming_off_keeps_the_cut(any_loaded: LoadedModel,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    engine = StoryEngine(any_loaded)
    story = "Night falls"
    text = ' "Run," he says. "Now!" She turns and the ghost runs into the night and the house'
    prompt = engine.prepare(GenerationRequest(genre_of(any_loaded), story, settings=SHORT)).input_ids
    scripted_text(any_loaded, monkeypatch, prompt, text)
    limit = len(any_loaded.tokenizer(' "Run," he says. "No', add_special_tokens=False)["input_ids"])
    greedy = SHORT.with_changes(max_new_tokens=limit, do_sample=False, trim_sentences=True)
    result = engine.generate(GenerationRequest(genre_of(any_loaded), story, settings=greedy))
    assert result.text == ' "Run," he says. "Now!"'
    assert result.endings == (passage.SENTENCE,)
    untrimmed = engine.generate(GenerationRequest(genre_of(any_loaded), story,
                                                  settings=greedy.with_changes(trim_sentences=False)))
    assert result.text.startswith(untrimmed.text.rstrip()[:10])
    assert untrimmed.endings == (passage.LENGTH,)
    assert untrimmed.stats.new_tokens == limit


def test_sampled_length_cuts_end_at_a_sentence_or_a_whole_word(any_loaded: LoadedModel) -> None:
    engine = StoryEngine(any_loaded)
    settings = SamplerSettings(max_new_tokens=20, temperature=1.0)
    results = [engine.generate(GenerationRequest(genre_of(any_loaded), "The ghost screams.",
                                                 settings=settings.with_changes(seed=seed))) for seed in range(8)]
    for result in results:
        ending, text = result.endings[0], result.text
        assert text.strip()
        if ending in (passage.SENTENCE, passage.TRIMMED):
            assert ENDS_AT_SENTENCE.search(text), text
        else:
            assert ending in (passage.WORD, passage.END_OF_TEXT), ending
        assert result.stats.new_tokens <= engine.passage_token_limit(settings)


@pytest.mark.parametrize("trim", [True, False])
def test_the_model_ends_a_passage_only_at_a_sentence_end(any_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch,
                                                         trim: bool) -> None:
    """The built-in model ended 1 passage in 84 mid-sentence ("After a robbery gone wrong, the"): with "end at
    sentence" on, its end token waits for a sentence end; off, the model's end is kept as it is."""
    engine = StoryEngine(any_loaded)
    surfaces = engine._surfaces().surfaces
    word = next(i for i, s in enumerate(surfaces) if re.fullmatch(r" [a-z]{2,}", s))
    dot = surfaces.index(".")
    eos = any_loaded.tokenizer.eos_token_id
    story = "After the storm,"
    start = len(engine.prepare_passage(GenerationRequest(genre_of(any_loaded), story)).input_ids)
    model = any_loaded.model
    original = model.forward

    def forward(*args, **kwargs):  # a word, then the end token at once; a full stop is its second choice
        out = original(*args, **kwargs)
        logits = torch.full_like(out.logits[:, -1, :], -1e4)
        if kwargs["attention_mask"].shape[-1] == start:
            logits[:, word] = 0
        else:
            logits[:, eos], logits[:, dot] = 0, -1
        out.logits[:, -1, :] = logits
        return out

    monkeypatch.setattr(model, "forward", forward)
    settings = SamplerSettings(max_new_tokens=8, do_sample=False, trim_sentences=trim, repetition_penalty=1.0)
    result = engine.generate(GenerationRequest(genre_of(any_loaded), story, settings=settings))
    assert result.text == surfaces[word] + ("." if trim else "")
    assert result.endings == ("end-of-text",)


def test_the_end_rule_reads_rows_alike_one_by_one_and_as_a_batch() -> None:
    ends, tails = torch.zeros(10, dtype=torch.bool), torch.zeros(10, dtype=torch.bool)
    ends[3], tails[4] = True, True  # 3: ". ", 4: a closing quote
    rule = passage.EndAtSentenceEnd(2, ends, tails, frozenset({3}), frozenset({4}), [0])
    rows = torch.tensor([[1, 2, 5, 3], [1, 2, 3, 4], [1, 2, 5, 4], [1, 2, 6, 7]])
    allowed = [True, True, False, False]
    assert (rule(rows, torch.zeros(4, 10))[:, 0] == 0).tolist() == allowed  # alternatives: one batch
    assert [bool(rule(row[None], torch.zeros(1, 10))[0, 0] == 0) for row in rows] == allowed
    assert [rule.allows_end(row.tolist()) for row in rows] == allowed
    assert rule(rows[:, :2], torch.zeros(4, 10)).eq(0).all()  # the first new token is FirstTokenMask's
