"""Crash safety: a child process saving in a loop is SIGKILLed at random moments; the draft on disk always loads
and is either the version before or a newer one (never a mix, never missing)."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from storyterm.story.atomic_write import backup_path
from storyterm.story.draft import Draft
from storyterm.story.store import load_draft, save_draft

ROUNDS = 25


def expected_text(version: int) -> str:
    # Sizes vary from 20 kB to ~600 kB so that kills land before, during and after writes.
    return f"v{version} " + "lorem ipsum " * (((version * 7919) % 50_000) + 2_000)


def save_forever(path: Path, first_version: int) -> None:
    draft = Draft("v0")
    version = first_version
    while True:
        draft.title = f"v{version}"
        draft.set_text(expected_text(version))
        save_draft(draft, path)
        version += 1


def version_of(draft: Draft) -> int:
    version = int(draft.title[1:])
    assert draft.text == expected_text(version), "file content mixes two versions"
    return version


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")
def test_sigkill_during_saves_never_breaks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "crash.json"
    rng = random.Random(1234)
    last_seen = -1
    saved_rounds = 0
    for round_number in range(ROUNDS):
        pid = os.fork()
        if pid == 0:  # child: save until killed, never return into pytest
            try:
                save_forever(path, first_version=round_number * 1_000_000)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.12))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), "the saving child died on its own"
        if not path.exists():
            assert last_seen == -1  # only before the very first save finished
            continue
        version = version_of(load_draft(path))
        assert version >= last_seen
        if version > last_seen:
            saved_rounds += 1
        last_seen = version
        if backup_path(path).exists():
            assert version_of(load_draft(backup_path(path))) <= version
    assert saved_rounds >= ROUNDS // 3  # the kills really interrupted a saving process many times
    # Leftover temp files from killed saves are hidden (dot-names) and never taken for the draft.
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} <= {"crash.json", "crash.json.bak"}


def write_and_accept_forever(path: Path, report_fd: int) -> None:
    """A writer session as the TUI drives it: type, generate, accept, autosave after each accept."""
    from storyterm.engine.settings import DEFAULT_SETTINGS
    from storyterm.story.autosave import Autosaver

    draft = load_draft(path)
    autosaver = Autosaver(draft, path)
    count = sum(1 for p in draft.passages if p.accepted)
    while True:
        draft.set_text(draft.text + " and then")
        autosaver.note_edit()
        for take in range(2):
            draft.add_alternative(f" [take {count}.{take}]" + " words" * 500, genre=None, settings=DEFAULT_SETTINGS,
                                  seed=take, model="m")
        draft.accept()
        autosaver.save_now()
        count += 1
        os.write(report_fd, f"{count}\n".encode())  # reported only once the save returned


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")
def test_sigkill_never_loses_an_accepted_passage(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    save_draft(Draft("Accepts"), path)
    rng = random.Random(99)
    best = 0
    for _ in range(12):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                write_and_accept_forever(path, write_fd)
            finally:
                os._exit(1)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as reports:
            # Kill once the child confirmed a new save (so every round makes progress however loaded the machine
            # is), at a random moment of a later accept + save.
            confirmed = best + 1
            reported = int(reports.readline())
            while reported < confirmed:
                reported = int(reports.readline())
            time.sleep(rng.uniform(0, 0.05))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            lines = reports.read().decode().split()
        confirmed = int(lines[-1]) if lines else reported
        draft = load_draft(path)
        accepted = [p for p in draft.passages if p.accepted]
        assert len(accepted) >= confirmed
        for passage in accepted:  # every accepted take is in the story, the alternative beside it in the tree
            assert passage.text in draft.text
            siblings = [p for p in draft.passages if p.context_digest == passage.context_digest]
            assert len(siblings) == 2
        best = max(best, confirmed)
    assert best >= 12  # every round got through at least one accept + save before its kill
