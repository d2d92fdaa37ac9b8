"""storyterm generate --json --logprobs K: per-token probabilities of the streamed alternative."""

from __future__ import annotations

import json
from pathlib import Path

from storyterm import cli


def test_json_logprobs_lists_tokens_that_join_to_the_text(capsys, tiny_checkpoint: Path) -> None:
    code = cli.main(["generate", "--model", str(tiny_checkpoint), "--genre", "horror", "-p", "The ghost",
                     "--seed", "3", "--max-new-tokens", "12", "--temperature", "1.4", "--json", "--logprobs", "4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    tokens = data["tokens"]
    assert tokens and "".join(t["text"] for t in tokens) == data["texts"][0]
    for token in tokens:
        assert 0 < token["prob"] <= 1 and 0 < token["raw_prob"] <= 1
        top = token["top"]
        assert len(top) == 4 and [c["raw_prob"] for c in top] == sorted((c["raw_prob"] for c in top), reverse=True)
        assert sum(c["raw_prob"] for c in top) <= 1 + 1e-6 and {"text", "prob", "raw_prob"} <= set(top[0])


def test_json_without_logprobs_has_no_tokens(capsys, tiny_checkpoint: Path) -> None:
    code = cli.main(["generate", "--model", str(tiny_checkpoint), "--genre", "horror", "-p", "The", "--greedy",
                     "--max-new-tokens", "5", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "tokens" not in json.loads(out)


def test_logprobs_without_json_or_out_of_range_is_one_line_error(capsys, tiny_checkpoint: Path) -> None:
    for extra in (["--logprobs", "3"], ["--json", "--logprobs", "99"]):
        code = cli.main(["generate", "--model", str(tiny_checkpoint), "--genre", "horror", "-p", "The", *extra])
        err = capsys.readouterr().err
        assert code != 0
        lines = err.strip().splitlines()
        assert len(lines) == 1 and ("--json" in lines[0] or "token_probs" in lines[0]), err
