from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from storyterm.engine import loading
from storyterm.engine.devices import dtype_name, resolve_device, resolve_dtype
from storyterm.engine.errors import DeviceError, ModelLoadError
from storyterm.engine.loading import ModelSpec, list_models, load_model
from storyterm.engine.prompt import CLASSIC_GENRES
from storyterm.engine.settings import DEFAULT_SETTINGS


def test_local_directory_loads_with_six_genres(tiny_checkpoint: Path) -> None:
    messages: list[str] = []
    loaded = load_model(ModelSpec(str(tiny_checkpoint), device="cpu"), on_progress=messages.append)
    assert loaded.genres == list(CLASSIC_GENRES)
    assert loaded.context_window == 128
    assert loaded.device == torch.device("cpu")
    assert loaded.dtype == torch.float32
    assert loaded.name == tiny_checkpoint.name
    assert loaded.generation_defaults == DEFAULT_SETTINGS
    assert not loaded.model.training
    assert messages and messages[-1] == "Model ready."


def test_checkpoint_without_genre_tokens_is_free_mode(make_tiny_checkpoint) -> None:
    loaded = load_model(ModelSpec(str(make_tiny_checkpoint(genres=None))))
    assert loaded.genres == []
    assert loaded.free_mode


def test_custom_genres_keep_their_training_order(make_tiny_checkpoint) -> None:
    path = make_tiny_checkpoint(genres=["romance", "western", "noir_2"])
    assert load_model(ModelSpec(str(path))).genres == ["romance", "western", "noir_2"]


def test_sampling_defaults_come_from_generation_config(make_tiny_checkpoint) -> None:
    path = make_tiny_checkpoint()
    config_file = path / "generation_config.json"
    data = json.loads(config_file.read_text())
    data.update(do_sample=True, temperature=0.7, top_p=0.8, max_new_tokens=2048)
    config_file.write_text(json.dumps(data))
    defaults = load_model(ModelSpec(str(path))).generation_defaults
    # Passage length stays writing-sized whatever the file says (a chat model's 2048 is not a passage).
    assert (defaults.temperature, defaults.top_p, defaults.max_new_tokens) == (0.7, 0.8, DEFAULT_SETTINGS.max_new_tokens)
    assert defaults.top_k == DEFAULT_SETTINGS.top_k


def test_bf16_on_cpu_when_asked(tiny_checkpoint: Path) -> None:
    loaded = load_model(ModelSpec(str(tiny_checkpoint), dtype="bf16"))
    assert loaded.dtype == torch.bfloat16
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def test_missing_builtin_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(loading, "BUILTIN_DIR", tmp_path / "builtin")
    with pytest.raises(ModelLoadError, match="built-in model is not installed"):
        load_model(ModelSpec("builtin"))


def test_builtin_loads_from_the_package_directory(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path) -> None:
    monkeypatch.setattr(loading, "BUILTIN_DIR", tiny_checkpoint)
    loaded = load_model(ModelSpec())
    assert loaded.name == "builtin"
    assert loaded.genres == list(CLASSIC_GENRES)


def test_hub_id_not_cached_offline_is_one_clear_line() -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_model(ModelSpec("someone/not-a-cached-model"))
    message = str(caught.value)
    assert "not in the local Hugging Face cache" in message
    assert "builtin" in message and "local checkpoint directory" in message
    assert "\n" not in message


def test_hub_id_found_in_local_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoint: Path) -> None:
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_checkpoint, snapshot)
    (cache / "models--someone--tiny" / "refs").mkdir()
    (cache / "models--someone--tiny" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    loaded = load_model(ModelSpec("someone/tiny"))
    assert loaded.name == "someone/tiny"
    assert loaded.genres == list(CLASSIC_GENRES)
    encoder = cache / "models--someone--encoder" / "snapshots" / "feed"
    encoder.mkdir(parents=True)
    (encoder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    sources = [info.source for info in list_models()]
    assert sources[0] == "builtin"
    assert "someone/tiny" in sources and "someone/encoder" not in sources


def test_missing_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_model(ModelSpec(str(tmp_path / "nope")))


def test_directory_without_config_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(ModelSpec(str(tmp_path)))


def test_pickle_only_checkpoint_is_refused_unless_allowed(make_tiny_checkpoint) -> None:
    from transformers import AutoModelForCausalLM

    path = make_tiny_checkpoint()
    model = AutoModelForCausalLM.from_pretrained(path)
    (path / "model.safetensors").unlink()
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(ModelSpec(str(path)))
    loaded = load_model(ModelSpec(str(path), allow_pickle=True))
    assert loaded.genres == list(CLASSIC_GENRES)


def test_non_causal_lm_is_refused(tmp_path: Path, tiny_checkpoint: Path) -> None:
    path = tmp_path / "encoder"
    shutil.copytree(tiny_checkpoint, path)
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="vit", architectures=["ViTModel"])
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError):
        load_model(ModelSpec(str(path)))


def test_device_and_dtype_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("fp16", torch.device("cpu")) == torch.float16
    assert dtype_name(torch.bfloat16) == "bf16"
    with pytest.raises(DeviceError, match="no usable CUDA"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="no usable CUDA"):
        resolve_device("cuda:1")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(DeviceError, match="unknown dtype"):
        resolve_dtype("int3", torch.device("cpu"))


def test_auto_device_prefers_cuda_then_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    from storyterm.engine import devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert resolve_device("auto").type == "mps"
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert resolve_device("auto").type == "cpu"


def test_cuda_without_gpu_fails_before_loading(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError):
        load_model(ModelSpec(str(tiny_checkpoint), device="cuda"))


def test_hub_id_not_cached_and_hub_unreachable_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens, refused at once
    assert not loading.hub_offline()
    assert not loading.hub_reachable(timeout=1)
    with pytest.raises(ModelLoadError, match="hub cannot be reached"):
        load_model(ModelSpec("someone/not-cached"))


def test_a_transformers_release_older_than_the_engine_needs_is_refused_in_one_line(
        monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path) -> None:
    import transformers

    monkeypatch.setattr(transformers, "__version__", "5.17.0")
    with pytest.raises(ModelLoadError) as caught:
        load_model(ModelSpec(str(tiny_checkpoint), device="cpu"))
    message = str(caught.value)
    assert "\n" not in message and "transformers >= 5.24" in message and "5.17.0" in message
    for accepted in ("5.24.0", "5.30.1", "5.24.0.dev0"):
        loading.check_transformers_version(accepted)
