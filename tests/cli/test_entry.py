"""``storyterm``'s dispatch (a subcommand, the editor, a mistyped command) and its errors: one line, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from storyterm import cli
from storyterm.engine.loading import ModelSpec
from tests.cli.run_cli import GREEDY_FLAGS, assert_one_line_error, python_m, run


def test_argparse_errors_exit_2(capsys) -> None:
    code, _, err = run(capsys, "generate", "--top-k", "many")
    assert code == 2
    assert_one_line_error(err, "--top-k")
    code, _, err = run(capsys, "generate", "--prompt", "a", "--title", "b")
    assert code == 2
    assert "not allowed with" in err


def test_debug_shows_the_traceback(capsys) -> None:
    code, _, err = run(capsys, "genres", "--model", "someone/uncached-model", "--debug")
    assert code == 1
    assert "Traceback" in err and "ModelLoadError" in err


def test_no_subcommand_opens_the_tui(monkeypatch, tmp_path: Path) -> None:
    import types

    calls = []
    fake = types.ModuleType("storyterm.tui.app")
    fake.run_app = lambda draft, spec, *, debug=False: calls.append((draft, spec, debug)) or 0
    monkeypatch.setitem(sys.modules, "storyterm.tui.app", fake)
    assert cli.main([str(tmp_path / "story.json"), "--model", "some/dir", "--device", "cpu", "--debug"]) == 0
    assert calls == [(tmp_path / "story.json", ModelSpec("some/dir", device="cpu"), True)]
    assert cli.main(["--dtype", "bf16"]) == 0
    assert calls[-1] == (None, ModelSpec(dtype="bf16"), False)


def test_no_subcommand_without_tui_is_a_one_line_error(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "storyterm.tui.app", None)  # import fails with ImportError
    code, out, err = run(capsys)
    assert code == 1 and out == ""
    assert_one_line_error(err, "cannot start the editor")


def test_a_mistyped_subcommand_is_a_usage_error_with_a_suggestion(capsys, monkeypatch, tmp_path: Path) -> None:
    import types

    monkeypatch.chdir(tmp_path)
    fake = types.ModuleType("storyterm.tui.app")
    fake.run_app = lambda draft, spec, *, debug=False: 0
    monkeypatch.setitem(sys.modules, "storyterm.tui.app", fake)
    code, out, err = run(capsys, "generat")
    assert code == 2 and out == ""
    assert_one_line_error(err, "unknown command 'generat'", "did you mean 'generate'")
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "frobnicate.json" in err
    assert not list(tmp_path.iterdir())
    assert run(capsys, "frobnicate.json")[0] == 0  # a .json path is a new draft


def test_python_m_storyterm_end_to_end(tiny_checkpoint: Path) -> None:
    done = python_m("generate", "--model", str(tiny_checkpoint), "--genre", "horror", "--json", *GREEDY_FLAGS,
                     stdin="The ghost")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["prompt"] == "<BOS> <horror> The ghost"
    bad = python_m("generate", "--model", str(tiny_checkpoint), "--genre", "western", "-p", "x")
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert_one_line_error(bad.stderr, "western", "horror")
    missing = python_m("genres", "--model", str(tiny_checkpoint / "nope"))
    assert missing.returncode == 1
    assert_one_line_error(missing.stderr, "no such model directory")


def test_the_editor_without_a_terminal_refuses_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "storyterm", str(tmp_path / "new.json")], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert_one_line_error(done.stderr, "the editor needs a terminal")
    assert done.stdout == "" and not (tmp_path / "new.json").exists()
