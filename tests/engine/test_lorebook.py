"""The lorebook: which entries a story calls for (keys in its last characters, case-insensitive, whole words), the
file format and its one-line errors, the exact prompt for memory x hits/misses x author's note, the budget, a story
longer than the window (Hypothesis: the prompt fits, the header is first, the story's tail is last apart from the
note, the lorebook never takes the story's half), the context parts, and smart context when an entry switches on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyterm.engine.errors import SettingsError
from storyterm.engine.generation import GenerationRequest, StoryEngine
from storyterm.engine.loading import LoadedModel, ModelSpec, load_model
from storyterm.engine.lorebook import Lorebook, LorebookEntry, load_lorebook, parse_keys
from storyterm.engine.prompt import build_prompt
from storyterm.engine.prompt_builder import HEADER, LOREBOOK, MEMORY, NOTE, STORY
from storyterm.engine.settings import SamplerSettings

GREEDY = SamplerSettings(max_new_tokens=16, do_sample=False)
STORY_TEXT = "The ghost screams in the old house. She falls in love."
GHOST = LorebookEntry(("ghost", "spirit"), "The ghost is Anna's mother.")
MARS = LorebookEntry(("Mars",), "Mars is red.")
ALWAYS = LorebookEntry((), "Rain all year.", always_on=True)
BOOK = Lorebook((GHOST, MARS, ALWAYS))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    from tests.conftest import build_tiny_checkpoint

    return load_model(ModelSpec(str(build_tiny_checkpoint(tmp_path_factory.mktemp("lore"))), device="cpu"))


def _ids(loaded: LoadedModel, text: str) -> list[int]:
    return loaded.tokenizer(text, add_special_tokens=False)["input_ids"]


# -- which entries the story calls for --------------------------------------------------------------------------------

@pytest.mark.parametrize(("story", "hit"), [
    ("A GHOST walks.", True),
    ("The Ghost's hat.", True),  # an apostrophe ends the word
    ("ghosts everywhere", False),  # a longer word is another word
    ("a holy spirit.", True),
    ("the aghost", False),
    ("", False),
])
def test_keys_match_case_insensitive_whole_words(story: str, hit: bool) -> None:
    assert GHOST.matches(story, 1000) is hit


def test_a_phrase_key_matches_across_any_whitespace() -> None:
    entry = LorebookEntry(("Lord Vane",), "x")
    assert entry.matches("and then lord\n  VANE arrived", 1000)
    assert not entry.matches("lord vanesworth", 1000)


def test_only_the_last_scan_characters_count_and_a_cut_word_does_not() -> None:
    story = "The ghost left. " + "x " * 50
    assert GHOST.matches(story, len(story))
    assert not GHOST.matches(story, 100)
    # "ring" at the scan start is the end of "bring": not a whole word even though the scan cuts it there.
    ring = LorebookEntry(("ring",), "x")
    assert not ring.matches("bring", 4)
    assert ring.matches("a ring", 4)


def test_active_entries_keep_the_lorebook_order_and_skip_empty_texts() -> None:
    book = Lorebook((ALWAYS, MARS, GHOST, LorebookEntry(("ghost",), "   ")))
    assert book.active("Mars and the ghost") == [ALWAYS, MARS, GHOST]
    assert book.active("nothing") == [ALWAYS]


# -- the file format --------------------------------------------------------------------------------------------------

def test_file_round_trip_and_a_bare_list(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    path.write_text(json.dumps(BOOK.to_dict()), encoding="utf-8")
    assert load_lorebook(path) == BOOK
    path.write_text(json.dumps([{"keys": "Anna, the nurse", "text": "Anna is a nurse."}]), encoding="utf-8")
    assert load_lorebook(path) == Lorebook((LorebookEntry(("Anna", "the nurse"), "Anna is a nurse."),))
    assert parse_keys(" Anna ,, the   nurse ,") == ("Anna", "the nurse")


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ('"text"', "must be a JSON object"),
    ('{"entries": {}}', "must be a list"),
    ('{"entries": [], "budget": 3}', "unknown lorebook field 'budget'"),
    ('{"entries": [{"keys": ["a"], "txt": "x"}]}', "entry 1: unknown field 'txt'"),
    ('{"entries": [{"keys": [1], "text": "x"}]}', "entry 1: \\\"keys\\\" must be a list of texts"),
    ('{"entries": [{"keys": ["a"], "text": "x", "always_on": "yes"}]}', "must be true or false"),
    ('{"entries": [{"keys": [], "text": "x"}]}', "has no keys and is not always on"),
    ('{"entries": [], "token_budget": -1}', "token_budget must be from 0"),
    ('{"entries": [], "scan_chars": 1.5}', "scan_chars must be a whole number"),
])
def test_a_bad_file_gives_one_line_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError) as error:
        load_lorebook(path)
    assert message.replace("\\", "") in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read lorebook .*missing.json"):
        load_lorebook(tmp_path / "missing.json")


# -- exact prompts ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("memory", ["", "Anna is a nurse."])
@pytest.mark.parametrize(("story", "entries"), [
    (STORY_TEXT, "[The ghost is Anna's mother.] [Rain all year.]"),  # a hit, a miss, always on
    ("She falls in love.", "[Rain all year.]"),  # misses only
    ("Mars. The ghost screams.", "[The ghost is Anna's mother.] [Mars is red.] [Rain all year.]"),  # book order
])
@pytest.mark.parametrize(("depth", "place"), [(None, "none"), (0, "end"), (1, "before last")])
def test_exact_prompt_for_memory_lorebook_and_note(loaded: LoadedModel, memory: str, story: str, entries: str,
                                                   depth: int | None, place: str) -> None:
    engine = StoryEngine(loaded)
    note = {} if depth is None else {"authors_note": "tense", "authors_note_depth": depth}
    request = GenerationRequest("drama", story, memory=memory, settings=GREEDY, lorebook=BOOK, **note)
    if place == "end":
        story = story + " [tense]"
    elif place == "before last":
        head, _, last = story.rpartition(". ")
        story = f"{head}. [tense] {last}" if head else f"[tense] {story}"
    expected = build_prompt("drama", f"{entries} {story}", memory)
    assert engine.prompt_text(request) == expected
    prepared = engine.prepare(request)
    assert prepared.input_ids == _ids(loaded, expected)
    assert not prepared.context_trimmed and prepared.left_out == () and prepared.warnings == ()
    assert prepared.lorebook_tokens == len(_ids(loaded, " " + entries))


def test_no_lorebook_and_a_lorebook_without_hits_give_the_same_prompt(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    plain = engine.prepare(GenerationRequest("drama", "She falls in love.", settings=GREEDY))
    missed = engine.prepare(GenerationRequest("drama", "She falls in love.", settings=GREEDY,
                                              lorebook=Lorebook((GHOST, MARS))))
    assert plain == missed


def test_parts_are_marked_in_order_and_add_up_to_the_prompt(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    prepared = engine.prepare(GenerationRequest("drama", STORY_TEXT, memory="Anna.", settings=GREEDY, lorebook=BOOK,
                                                authors_note="tense", authors_note_depth=1))
    kinds = [(part.kind, part.label) for part in prepared.parts]
    assert kinds == [(HEADER, "header"), (MEMORY, "memory"), (LOREBOOK, "ghost"), (LOREBOOK, "Rain all year."),
                     (STORY, "story"), (NOTE, "author's note"), (STORY, "story after the note")]
    assert [token for part in prepared.parts for token in part.token_ids] == prepared.input_ids
    decode = loaded.tokenizer.decode
    assert decode(prepared.parts[2].token_ids) == " [The ghost is Anna's mother.]"


def test_entries_beyond_the_budget_are_left_out_and_later_shorter_ones_go_in(loaded: LoadedModel) -> None:
    long = LorebookEntry(("ghost",), "The ghost is the mother of Anna and walks the old house every night.")
    short = LorebookEntry(("house",), "Old.")
    short_ids = _ids(loaded, " [Old.]")
    book = Lorebook((long, short), token_budget=len(short_ids) + 2)
    engine = StoryEngine(loaded)
    prepared = engine.prepare(GenerationRequest("drama", STORY_TEXT, settings=GREEDY, lorebook=book))
    assert engine.prompt_text(GenerationRequest("drama", STORY_TEXT, settings=GREEDY, lorebook=book)) == \
        build_prompt("drama", "[Old.] " + STORY_TEXT)
    assert len(prepared.left_out) == 1 and "'ghost'" in prepared.left_out[0] and "budget" in prepared.left_out[0]
    assert Lorebook((long, short), token_budget=0).active(STORY_TEXT) == [long, short]
    zero = engine.prepare(GenerationRequest("drama", STORY_TEXT, settings=GREEDY,
                                            lorebook=Lorebook((long, short), token_budget=0)))
    assert zero.lorebook_tokens == 0 and len(zero.left_out) == 2


def test_a_long_story_keeps_at_least_half_the_room_against_a_long_lorebook(loaded: LoadedModel) -> None:
    window = loaded.context_window
    entries = tuple(LorebookEntry(("ghost",), f"Fact {i} about the ghost and the house.") for i in range(20))
    story = " ".join(["The ghost screams in the old house."] * 60)
    engine = StoryEngine(loaded, smart_context=False)
    prepared = engine.prepare(GenerationRequest("drama", story, settings=GREEDY,
                                                lorebook=Lorebook(entries, token_budget=10_000)))
    room = window - GREEDY.max_new_tokens - prepared.header_tokens
    assert prepared.context_trimmed and len(prepared.input_ids) == window - GREEDY.max_new_tokens
    assert 0 < prepared.lorebook_tokens <= room // 2 <= prepared.story_tokens
    assert prepared.left_out[0].startswith("story: its oldest") and any("budget" in line for line in prepared.left_out)


def test_a_short_story_lets_the_lorebook_use_its_budget(loaded: LoadedModel) -> None:
    entries = tuple(LorebookEntry(("ghost",), f"Fact {i} about the ghost.") for i in range(6))
    prepared = StoryEngine(loaded).prepare(GenerationRequest("drama", "The ghost.", settings=GREEDY,
                                                             lorebook=Lorebook(entries, token_budget=10_000)))
    room = loaded.context_window - GREEDY.max_new_tokens - prepared.header_tokens
    assert prepared.lorebook_tokens > room // 2 and not prepared.context_trimmed


@pytest.mark.parametrize("smart_context", [False, True])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sentence_count=st.integers(0, 80),
    hits=st.lists(st.booleans(), min_size=0, max_size=6),
    entry_words=st.integers(1, 15),
    budget=st.integers(0, 200),
    memory_words=st.integers(0, 12),
    depth=st.one_of(st.none(), st.integers(0, 4)),
    max_new=st.integers(1, 60),
)
def test_prompt_always_fits_header_first_story_tail_last(loaded: LoadedModel, smart_context: bool,
                                                          sentence_count: int, hits: list[bool], entry_words: int,
                                                          budget: int, memory_words: int, depth: int | None,
                                                          max_new: int) -> None:
    window = loaded.context_window
    story = " ".join(f"The ghost {i} screams." for i in range(sentence_count))
    entries = tuple(LorebookEntry(("ghost" if hit else "Mars",), " ".join(["fact"] * entry_words) + f" {n}.")
                    for n, hit in enumerate(hits))
    note = {} if depth is None else {"authors_note": "tense", "authors_note_depth": depth}
    memory = " ".join(["Anna"] * memory_words)
    request = GenerationRequest("horror", story, memory=memory, settings=GREEDY.with_changes(max_new_tokens=max_new),
                                lorebook=Lorebook(entries, token_budget=budget), **note)
    prepared = StoryEngine(loaded, smart_context=smart_context).prepare(request)
    ids = prepared.input_ids
    assert len(ids) <= window - max_new
    assert ids[:2] == _ids(loaded, build_prompt("horror"))[:2]  # <BOS> <genre> first, always
    assert [token for part in prepared.parts for token in part.token_ids] == ids
    assert prepared.lorebook_tokens <= budget
    room = window - max_new - prepared.header_tokens - prepared.note_tokens
    if prepared.context_trimmed:
        assert prepared.lorebook_tokens <= max(room // 2, 0) + 1
    # The prompt ends with the story's tail (the note may sit among its last sentences).
    without_note = [token for part in prepared.parts if part.kind == STORY for token in part.token_ids]
    if story and without_note and depth is None:
        whole = _ids(loaded, " " + story)
        assert ids[len(ids) - len(without_note):] == without_note == whole[len(whole) - len(without_note):]
    if not any(hits) and budget >= 0:
        assert prepared.lorebook_tokens == 0


# -- validation and smart context -------------------------------------------------------------------------------------

def test_a_bad_lorebook_in_a_request_is_refused_with_one_line(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    bad = Lorebook((LorebookEntry((), "never read"),))
    with pytest.raises(SettingsError, match="no keys and is not always on"):
        engine.stream(GenerationRequest("drama", STORY_TEXT, settings=GREEDY, lorebook=bad))
    assert not engine.busy


def test_an_entry_switching_on_rereads_the_story_but_reuses_the_header(loaded: LoadedModel) -> None:
    engine = StoryEngine(loaded)
    story = "She falls in love. The painter smiles."
    first = engine.generate(GenerationRequest("drama", story, memory="Anna.", settings=GREEDY, lorebook=BOOK))
    same = engine.generate(GenerationRequest("drama", story, memory="Anna.", settings=GREEDY, lorebook=BOOK))
    assert same.stats.cached_prompt_tokens == first.stats.prompt_tokens - 1  # all but the last token reused
    before = engine.prepare(GenerationRequest("drama", story, memory="Anna.", settings=GREEDY, lorebook=BOOK))
    switched = GenerationRequest("drama", story + " The ghost screams.", memory="Anna.", settings=GREEDY,
                                 lorebook=BOOK)
    after = engine.prepare(switched)
    shared = next(i for i, (a, b) in enumerate(zip(before.input_ids, after.input_ids)) if a != b)
    header_and_memory = len(_ids(loaded, build_prompt("drama", "", "Anna.")))
    # The new entry sits right after the memory: what follows it (the other entry, the story) is read again.
    assert header_and_memory <= shared < header_and_memory + 3
    assert engine.generate(switched).stats.cached_prompt_tokens == shared


def test_instruct_mode_carries_the_entries_with_the_memory(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests import model_zoo

    qwen = load_model(ModelSpec(str(model_zoo.qwen_chat(tmp_path_factory.mktemp("zoo") / "qwen"))))
    engine = StoryEngine(qwen)
    story = "The ghost screams in the old house."
    with_book = GenerationRequest(None, story, memory="Anna.", settings=GREEDY, lorebook=BOOK, instruct=True)
    prepared = engine.prepare(with_book)
    text = engine.prompt_text(with_book)
    assert "[The ghost is Anna's mother.]" in text and "[Rain all year.]" in text and "Mars is red" not in text
    assert text.index("[Anna.]") < text.index("[The ghost is Anna's mother.]") < text.rindex(story)
    assert prepared.lorebook_tokens == 0  # inside the request, which is one part
    assert [token for part in prepared.parts for token in part.token_ids] == prepared.input_ids
    plain = engine.prompt_text(GenerationRequest(None, story, memory="Anna.", settings=GREEDY, instruct=True))
    assert "ghost is Anna's mother" not in plain
    long = GenerationRequest(None, "The ghost screams in the old house. " * 80, memory="Anna.", settings=GREEDY,
                             lorebook=Lorebook((GHOST, ALWAYS), token_budget=1000), instruct=True)
    prepared = engine.prepare(long)
    assert prepared.context_trimmed and len(prepared.input_ids) <= qwen.context_window - GREEDY.max_new_tokens
    assert "[The ghost is Anna's mother.]" in engine.prompt_text(long)
