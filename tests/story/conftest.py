"""Fixtures for the story tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest


@pytest.fixture
def other_window() -> Callable[[Path, Path], AbstractContextManager[int]]:
    """Another running storyterm (a real process holding a session marker) with ``draft`` open; yields its pid
    and kills it on exit."""

    @contextmanager
    def hold(draft: Path, sessions: Path) -> Iterator[int]:
        script = textwrap.dedent(f"""
            import time
            from pathlib import Path
            from storyterm.story.session import Session
            Session.start(Path({str(draft)!r}), Path({str(sessions)!r}))
            print("ready", flush=True)
            time.sleep(120)
        """)
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            yield process.pid
        finally:
            process.kill()
            process.wait()

    return hold
