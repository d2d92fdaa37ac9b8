"""Model-based test of the store: saves, loads and outside changes in random order. Whatever could not be read,
or was changed by another program, is never written over; the backup is always the previous save."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from storyterm.story.atomic_write import backup_path
from storyterm.story.draft import Draft
from storyterm.story.draft_bytes import encode_draft
from storyterm.story.file_errors import DraftFileError
from storyterm.story.store import load_draft, save_draft

GARBAGE = [b"{", b"\xff\xfe", b'{"format_version": 99}', b"[]"]


def draft_bytes(text: str) -> bytes:
    draft = Draft("Model")
    draft.set_text(text)
    return encode_draft(draft)


def replace_from_outside(path: Path, content: bytes) -> None:
    """Another program writes the file (new inode, as editors and sync tools do)."""
    temp = path.with_name("outside.tmp")
    temp.write_bytes(content)
    os.replace(temp, path)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="storyterm-model-"))
        self.path = self.folder / "draft.json"
        self.main: bytes | None = None  # what the draft file must hold
        self.backup: bytes | None = None
        self.refused = False  # a load of the existing file failed (and no load/save succeeded since)
        self.stamp_recorded = False  # this process read or wrote the file at least once
        self.stamp_matches = False  # ... and nobody changed it since

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _readable(self) -> bool:
        return self.main is not None and self.main not in GARBAGE

    @rule(text=st.text(alphabet="xyz", max_size=4), replace_changed=st.booleans())
    def save(self, text: str, replace_changed: bool) -> None:
        draft = Draft("Model")
        draft.set_text(text)
        exists = self.main is not None
        if exists and self.refused:
            expect_error = True
        elif exists and self.stamp_recorded and not self.stamp_matches:
            expect_error = not replace_changed
        elif exists and not self.stamp_recorded:
            expect_error = not self._readable()
            if expect_error:
                self.refused = True
        else:
            expect_error = False
        try:
            save_draft(draft, self.path, replace_changed=replace_changed)
        except DraftFileError as error:
            assert expect_error, f"unexpected refusal: {error}"
            return
        assert not expect_error, "wrote over a file it had to protect"
        if exists:
            self.backup = self.main
        self.main = encode_draft(draft)
        self.refused = False
        self.stamp_recorded = self.stamp_matches = True

    @rule()
    def load(self) -> None:
        try:
            loaded = load_draft(self.path)
        except DraftFileError:
            assert not self._readable()
            if self.main is not None:
                self.refused = True
            return
        assert self._readable()
        assert encode_draft(loaded) == self.main
        self.refused = False
        self.stamp_recorded = self.stamp_matches = True

    @rule(content=st.sampled_from(GARBAGE) | st.builds(draft_bytes, st.text(alphabet="ab", max_size=3)))
    def changed_from_outside(self, content: bytes) -> None:
        replace_from_outside(self.path, content)
        self.main = content
        self.stamp_matches = False

    @rule()
    def deleted_from_outside(self) -> None:
        if self.main is not None:
            os.unlink(self.path)
            self.main = None
            self.stamp_matches = False

    @invariant()
    def files_are_as_expected(self) -> None:
        assert (self.path.read_bytes() if self.path.exists() else None) == self.main
        bak = backup_path(self.path)
        assert (bak.read_bytes() if bak.exists() else None) == self.backup


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=60, stateful_step_count=20, deadline=None)
