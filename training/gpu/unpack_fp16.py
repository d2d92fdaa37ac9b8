"""Rebuild fp32 checkpoints from candidates.sh's fp16 weights and meta.tgz: unpack_fp16.py RESULTS_DIR DEST_DIR."""

import sys
import tarfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

results, dest = Path(sys.argv[1]), Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
with tarfile.open(results / "meta.tgz") as tar:
    tar.extractall(dest, filter="data")
for folder in sorted(p for p in dest.iterdir() if (p / "config.json").exists()):
    parts = sorted(results.glob(f"{folder.name}-*.safetensors"))
    if not parts:
        print(f"{folder.name}: no weights came back")
        continue
    state = {}
    for part in parts:
        state.update({k: v.float() for k, v in load_file(str(part)).items()})
    config = AutoConfig.from_pretrained(folder)
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    if (folder / "generation_config.json").exists():  # keep the trained sampling defaults
        model.generation_config = GenerationConfig.from_pretrained(folder)
    model = model.eval()
    model.save_pretrained(folder)
    print(f"{folder.name}: {model.num_parameters():,} parameters from {len(parts)} file(s) -> {folder}")
