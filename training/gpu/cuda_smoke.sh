#!/bin/bash
# The app's CUDA path through the CLI: default dtype, fp32, Memory/author's note/ban/stop, greedy without the guard.
# Session 8 on a lent H200 found two bugs with it (token probabilities on the GPU; transformers 5.17's cache name).
cd "$(dirname "$0")/../.."  # the repository root
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} XDG_CONFIG_HOME=/tmp/xdg XDG_STATE_HOME=/tmp/xdg XDG_DATA_HOME=/tmp/xdg
gen() {
    timeout 60 python3 -m storyterm generate -m src/storyterm/models/builtin --device cuda -g horror \
        -p "The old house on the hill" --max-new-tokens 80 --seed 1 --json "$@" > /tmp/smoke.json 2> /tmp/smoke.err
    echo "== $* -> rc=$? $(grep -v Loading /tmp/smoke.err | tail -c 300)"
    python3 -c '
import json
d = json.load(open("/tmp/smoke.json"))
s = d["stats"]
print(d["backend"], {k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}, d["endings"], d["warnings"])
for text in d["texts"]:
    print("  >", text[:200].replace("\n", " "))
print("  tokens:", [(t["text"], round(t["prob"], 3), round(t["raw_prob"], 3)) for t in (d.get("tokens") or [])[:5]])
' 2>&1 | tail -8
}
gen -n 3 --logprobs 3
gen --dtype fp32 -n 2 --logprobs 5 --memory "Anna, Tom" --authors-note "It rains all night." --ban ghost --stop "!"
gen --dtype bf16 --greedy --no-word-guard --max-new-tokens 200
nvidia-smi --query-gpu=memory.used --format=csv,noheader
