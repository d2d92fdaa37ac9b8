# storyterm's GGUF backend vs llama-bench on the same q8_0 files, interleaved, 1 thread each, 64 new tokens.
B=/work/build/src/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-bench
cd /work/main
for round in 1 2 3; do
  for m in /tmp/speed/sbs/gpt2-124m-q8_0.gguf /tmp/speed/sbs/llama-0.5b-q8_0.gguf; do
    name=$(basename $m)
    lb=$($B -m $m -p 0 -n 64 -t 1 -r 1 -o csv 2>/dev/null | tail -1 | python3 -c "import sys,csv; r=next(csv.reader(sys.stdin)); print([x for x in r if x][-2])")
    st=$(HF_HUB_OFFLINE=1 XDG_CONFIG_HOME=/tmp/lead/c3 .venv/bin/python -m storyterm generate --model $m --prompt "The night ferry left without its captain." --genre drama --max-new-tokens 64 --seed $round --json 2>/dev/null | tail -1 | python3 -c "import sys,json; d=json.load(sys.stdin); s=d['stats']; print(round((s['new_tokens']-1)/(s['elapsed_s']-s['time_to_first_token_s']),1), 'decode;', round(s['tokens_per_second'],1), 'overall;', s['new_tokens'], 'tokens')")
    echo "round $round $name llama-bench=$lb storyterm=$st"
  done
done
