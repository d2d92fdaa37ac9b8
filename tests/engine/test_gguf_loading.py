"""GGUF files refused with one line when they cannot be loaded: no llama.cpp backend installed, a --dtype the file
does not have, no such file. These run without llama-cpp-python."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from storyterm.engine.errors import ModelLoadError
from storyterm.engine.gguf_loading import INSTALL_HINT, is_gguf, reads_into_memory
from storyterm.engine.loading import ModelSpec, list_models, load_model

pytestmark = pytest.mark.gguf  # .ci/run runs these again with llama-cpp-python installed


@pytest.fixture
def some_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "story-1b.Q8_0.gguf"
    path.write_bytes(b"GGUF")  # never read: each refusal comes first
    return path


def test_gguf_sources_are_recognised() -> None:
    assert is_gguf("models/Story-1B.Q4_K_M.GGUF") and is_gguf(Path("x.gguf"))
    assert not is_gguf("builtin") and not is_gguf("user/model-gguf")


def test_without_llama_cpp_one_line_says_what_to_install(monkeypatch, some_gguf: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp raises ImportError
    with pytest.raises(ModelLoadError) as caught:
        load_model(ModelSpec(str(some_gguf)))
    assert str(caught.value) == INSTALL_HINT
    assert "pip install 'storyterm[gguf]'" in INSTALL_HINT and "\n" not in INSTALL_HINT


def test_a_dtype_other_than_auto_is_refused(some_gguf: Path) -> None:
    with pytest.raises(ModelLoadError, match="--dtype int8 does not apply to a GGUF file"):
        load_model(ModelSpec(str(some_gguf), dtype="int8"))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such GGUF file: .*nothing.gguf"):
        load_model(ModelSpec(str(tmp_path / "nothing.gguf")))


def test_a_file_that_is_not_gguf_is_refused_with_the_choices(tmp_path: Path) -> None:
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\0")
    with pytest.raises(ModelLoadError, match="a checkpoint directory, a .gguf file"):
        load_model(ModelSpec(str(other)))


def test_gguf_files_in_the_hub_cache_are_listed(monkeypatch, tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / "models--someone--Story-1B-GGUF" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "story-1b.Q8_0.gguf").write_bytes(b"GGUF" + b"\0" * 1000)
    (snapshot / "README.md").write_text("a model card")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    listed = [info for info in list_models() if info.kind == "gguf, hub cache"]
    assert [info.source for info in listed] == [str(snapshot / "story-1b.Q8_0.gguf")]
    monkeypatch.setattr("storyterm.engine.gguf_loading.llama_cpp_installed", lambda: False)
    (missing,) = [info for info in list_models() if info.kind == "gguf, hub cache"]
    assert not missing.installed and "pip install 'storyterm[gguf]'" in missing.detail


def test_sampling_defaults_in_the_file_are_read_like_generation_config() -> None:
    from storyterm.engine.gguf_loading import sampling_values

    values = sampling_values({"general.sampling.temp": "0.800000", "general.sampling.top_k": "50",
                              "general.sampling.penalty_repeat": "1.200000", "general.sampling.top_p": "7"})
    assert values == {"do_sample": True, "temperature": 0.8, "top_k": 50, "repetition_penalty": 1.2}  # top_p 7: bad
    assert sampling_values({"general.sampling.temp": "0.0"}) == {"do_sample": False}  # llama.cpp's greedy
    assert sampling_values({}) == {}


def test_weights_are_mapped_unless_reading_them_is_asked_for_and_they_fit() -> None:
    gib = 2**30
    assert not reads_into_memory(1 * gib, 8 * gib) and not reads_into_memory(1 * gib, 8 * gib, "1")  # mapped
    assert reads_into_memory(4 * gib, 8 * gib, "0")  # asked for, and at most half of what is available
    assert not reads_into_memory(5 * gib, 8 * gib, "0") and not reads_into_memory(1, None, "0")
