"""Fuzzing the loader: random bytes and mutated valid drafts give DraftFileError or a valid draft, never a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyterm.engine.settings import DEFAULT_SETTINGS
from storyterm.story.draft import Draft
from storyterm.story.draft_bytes import encode_draft, parse_draft
from storyterm.story.file_errors import DraftFileError


def valid_draft() -> Draft:
    draft = Draft("Fuzz", "horror", memory="Ann")
    draft.set_text("The door")
    draft.add_alternative(" opened.", genre="horror", settings=DEFAULT_SETTINGS, seed=1, model="builtin")
    draft.accept()
    draft.add_alternative(" Nobody.", genre="horror", settings=DEFAULT_SETTINGS, seed=2, model="builtin")
    draft.add_alternative(" Silence.", genre="horror", settings={"temperature": 0.5}, seed=None, model="x",
                          stopped=True)
    return draft


VALID = encode_draft(valid_draft())
VALID_DATA = json.loads(VALID)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def load_or_documented_error(data: bytes) -> None:
    """The only allowed outcomes: a DraftFileError with one line, or a draft that saves and loads again."""
    try:
        draft = parse_draft(data, Path("fuzz.json"))
    except DraftFileError as error:
        assert "\n" not in str(error) and str(error).startswith("fuzz.json: ")
        return
    again = parse_draft(encode_draft(draft))
    assert again.to_dict() == draft.to_dict()


# STORYTERM_FUZZ_EXAMPLES=5000 for a long run; the default keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("STORYTERM_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    load_or_documented_error(data)


@FUZZ
@given(st.data())
def test_byte_mutations_of_a_valid_file(data: st.DataObject) -> None:
    content = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(content) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip":
            content[position] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "delete":
            del content[position : position + data.draw(st.integers(1, 20))]
        elif action == "insert":
            content[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del content[position:]
        if not content:
            break
    load_or_documented_error(bytes(content))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


ALL_PATHS = [p for p in _paths(VALID_DATA) if p]


@FUZZ
@given(st.data())
def test_structural_mutations_of_a_valid_draft(data: st.DataObject) -> None:
    document = json.loads(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(ALL_PATHS))
        parent = document
        try:
            for key in path[:-1]:
                parent = parent[key]
            if data.draw(st.booleans()):
                parent[path[-1]] = data.draw(json_values)
            elif isinstance(parent, (dict, list)):
                del parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    load_or_documented_error(json.dumps(document).encode("utf-8"))


def test_the_valid_file_itself_loads() -> None:
    loaded = parse_draft(VALID)
    assert loaded.text == "The door opened."
    assert [p.text for p in loaded.alternatives()] == [" Nobody.", " Silence."]
    assert encode_draft(loaded) == VALID
