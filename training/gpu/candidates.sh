#!/bin/bash
# Built-in-model candidates trained side by side on one GPU (session 8, a lent H200), evaluated there; the weights
# come back as fp16 files under 16 MB (the lending tool's limit), rebuilt here with unpack_fp16.py.
#   a/b/c: v7 + the genre loss (weights 0.03/0.1/0.05; Memory header stripped/stripped/skipped)
#   d: a 10-layer GPT-2 from scratch with the genre loss; e: v7 + the plain loss (the control: v10)
#   f: a + the plain loss (needs a's weights in build/gpu/base-a)
# Env: NAMES (runs to start), MINUTES (training wall time per run), EPOCHS (packed passes, must outlast MINUTES),
#      OUT (results folder), DATA (build/gpu/data: build/data/v6/*.txt, plus dev-eval.txt = build/data/plots-dev/
#      eval.txt and test-eval.txt = build/data/plots/eval.txt), EXTRA (--bf16 on the GPU).
# Session 8: NAMES="a b c d" MINUTES=5.5 EPOCHS=40 EXTRA=--bf16, then NAMES="e f" MINUTES=1.4 SKIP_EVAL=1 SKIP_SMOKE=1
set -u
cd "$(dirname "$0")/../.."  # the repository root
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
MINUTES=${MINUTES:-6}
EPOCHS=${EPOCHS:-12}
WORK=${WORK:-/tmp/gpu-models}
D=${DATA:-build/gpu/data}
PY=${PY:-python3}
NAMES=${NAMES:-a b c d}      # which runs to start (a local dry run starts fewer)
TIMEOUT=${TIMEOUT:-$(( ${MINUTES%.*} * 60 + 240 ))}
EXTRA=(${EXTRA:-})           # e.g. --bf16 on the GPU
EVAL_ARGS=(${EVAL_ARGS:-})
mkdir -p "$WORK" "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | head -2
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
common=(--block-size 512 --dropout 0.1 --train-file $D/plots-dev.txt $D/wiki.txt $D/netflix.txt $D/movies.txt
        --eval-file $D/dev-eval.txt --balance-genres 0.5 --epochs "$EPOCHS" --no-progress --logging-steps 100
        --eval-steps 500 --save-steps 1000000 --skip-samples --max-minutes "$MINUTES" --genre-contrast-window 128
        --genre-contrast-batch 8 --batch-size 32 "${EXTRA[@]}")
v7=(--model-name-or-path src/storyterm/models/builtin --learning-rate 3e-4 --warmup 50)
run() {
    local name=$1; shift
    [[ " $NAMES " == *" $name "* ]] || return 0
    timeout "$TIMEOUT" $PY -m training.train --output-dir "$WORK/$name" "${common[@]}" "$@" \
        > "$WORK/$name.log" 2>&1
    echo "train $name rc=$? $(grep -o 'saved .*' "$WORK/$name.log" | tail -1)"
}
run a "${v7[@]}" --genre-contrast 0.03 --genre-contrast-memory strip --seed 21 &
run b "${v7[@]}" --genre-contrast 0.1 --genre-contrast-memory strip --seed 22 &
run c "${v7[@]}" --genre-contrast 0.05 --genre-contrast-memory skip --seed 23 &
run d --from-scratch --vocab-size 4096 --n-layer 10 --n-embd 256 --n-head 4 --learning-rate 1e-3 --warmup 200 \
    --genre-contrast 0.05 --genre-contrast-memory strip --seed 24 &
run e "${v7[@]}" --seed 25 &   # the control: the same training without the genre loss
run f --model-name-or-path build/gpu/base-a --learning-rate 1e-4 --warmup 20 --seed 26 &  # a, then the LM alone
wait
[ -n "${SKIP_EVAL:-}" ] || for name in a b c d e f; do
    if [ -f "$WORK/$name/config.json" ]; then
        for split in dev test; do
            $PY -m training.evaluate "$WORK/$name" $D/$split-eval.txt --samples-per-genre 0 --no-progress "${EVAL_ARGS[@]}" \
                --output "$WORK/$name/eval-$split.json" > "$WORK/$name/eval-$split.log" 2>&1 &
        done
    fi
done
wait
$PY - "$WORK" "$OUT" <<'EOF'
import json, sys, pathlib, torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for folder in sorted(p for p in work.iterdir() if (p / "config.json").exists()):
    model = AutoModelForCausalLM.from_pretrained(folder)
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    keys = sorted(state)
    size = sum(v.numel() * 2 for v in state.values())
    parts = [keys] if size < 15_000_000 else [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    for i, part in enumerate(parts):
        save_file({k: state[k] for k in part}, str(out / f"{folder.name}-{i}.safetensors"))
    row = [folder.name, f"{model.num_parameters():,}"]
    for split in ("dev", "test"):
        path = folder / f"eval-{split}.json"
        if path.exists():
            r = json.loads(path.read_text())
            g = r["genre_accuracy"]
            row.append(f"{split}: {r['bits_per_byte']:.3f} b/B, genre {g['accuracy']:.3f} balanced "
                       f"{g['balanced_accuracy']:.3f}")
    print(" | ".join(row))
EOF
tar czf "$OUT/meta.tgz" --exclude='*.safetensors' --exclude=checkpoints -C "$WORK" .
ls -la "$OUT"
for name in $NAMES; do echo "== $name"; grep -E "eval_loss|genre_acc|Error|error|steps|train_runtime" "$WORK/$name.log" | tail -4 | cut -c1-300; done
# The app's CUDA path: the CLI on the GPU (default dtype, word guard, token probabilities), built-in and a new model.
if [ -z "${SKIP_SMOKE:-}" ] && $PY -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    for model in src/storyterm/models/builtin "$WORK/a"; do
        [ -f "$model/config.json" ] || continue
        XDG_CONFIG_HOME=/tmp/xdg XDG_STATE_HOME=/tmp/xdg timeout 120 $PY -m storyterm generate -m "$model" --device cuda \
            -g horror -p "The old house on the hill" --max-new-tokens 80 -n 3 --seed 1 --json --logprobs 3 \
            > /tmp/smoke.json 2> /tmp/smoke.err
        echo "cuda smoke $model rc=$? $(tail -c 300 /tmp/smoke.err)"
        $PY - <<'PYEOF'
import json
d = json.load(open("/tmp/smoke.json"))
print(d["backend"], d["stats"], d["endings"], d["warnings"])
for text in d.get("texts", []):
    print("  >", text[:220].replace("\n", " "))
print("  tokens:", [(t["text"], t["prob"], t["raw_prob"]) for t in d.get("tokens", [])[:6]])
PYEOF
    done
fi
