"""``storyterm genres`` and ``storyterm models``."""

from __future__ import annotations

from pathlib import Path

from storyterm.engine import loading
from storyterm.engine.genres import DEFAULT_WORD_GENRES
from storyterm.engine.prompt import CLASSIC_GENRES
from tests.cli.run_cli import run


def test_genres_and_models(capsys, monkeypatch, tiny_checkpoint: Path, make_tiny_checkpoint) -> None:
    code, out, _ = run(capsys, "genres", "--model", str(tiny_checkpoint))
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == list(CLASSIC_GENRES)
    code, out, err = run(capsys, "genres", "--model", str(make_tiny_checkpoint(genres=None)))
    assert code == 0 and "in words" in err and "free mode" in err
    assert [line.split()[0] for line in out.splitlines()] == list(DEFAULT_WORD_GENRES)
    monkeypatch.setattr(loading, "BUILTIN_DIR", tiny_checkpoint)
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert out.splitlines()[1].split()[:2] == ["builtin", "builtin"]
    assert "gpt2" in out
