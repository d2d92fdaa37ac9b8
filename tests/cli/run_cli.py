"""Running the ``storyterm`` command in a test: in-process with its exit code and output, or as ``python -m``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from storyterm import cli

GREEDY_FLAGS = ["--greedy", "--max-new-tokens", "12"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("storyterm")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def python_m(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "storyterm", *argv], input=stdin, capture_output=True, text=True,
                          timeout=120)
