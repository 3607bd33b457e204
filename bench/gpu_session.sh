#!/usr/bin/env bash
# One lent GPU session's checks for docs/BENCHMARKS.md section 5 and docs/GPU_CHECK.md, most wanted first,
# each under its own time limit and all inside BUDGET seconds, so that a short lease still returns the
# first results. Every step appends to OUT_DIR/log.txt and writes its own JSON as it goes.
#
#   bash bench/gpu_session.sh OUT_DIR [BUDGET_S]
#
# Packages the machine lacks (transformers 5.25 and its hub client, DeepSpeed built as a wheel here
# with DS_BUILD_OPS=0, pydantic, hjson) travel as wheels in .whl/ (docs/GPU_CHECK.md says how).
set -u
out=${1:?usage: gpu_session.sh OUT_DIR [BUDGET_S]}
budget=${2:-480}
mkdir -p "$out"
log=$out/log.txt
start=$SECONDS
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

step() { # step NAME LIMIT_S COMMAND...: runs COMMAND for at most LIMIT_S and what is left of BUDGET
	local name=$1 limit=$2 left
	shift 2
	left=$((budget - (SECONDS - start)))
	if ((left < 30)); then
		echo "== $name: skipped, $left s of the budget left" >>"$log"
		return
	fi
	((limit > left)) && limit=$left
	echo "== $name: start at $((SECONDS - start)) s, limit $limit s" >>"$log"
	timeout -k 10 "$limit" "$@" >>"$log" 2>&1
	echo "== $name: exit $? at $((SECONDS - start)) s" >>"$log"
}

if [ -d .whl ]; then
	python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >>"$log" 2>&1 || exit 3
	export PYTHONPATH=/tmp/site:$PWD/src
else
	export PYTHONPATH=$PWD/src
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >>"$log" 2>&1
python3 -c 'import torch, transformers, emogrid.attention; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__, torch.cuda.get_device_name(0))' >>"$log" 2>&1 || exit 4

# 1. emogrid's fused disentangled attention against transformers', eager, at the lengths of the goal.
step eager_vs_sdpa 150 python3 bench/gpu_mfu.py "$out/gpu_mfu_eager.json" --only \
	bf16_L128_b64 bf16_L128_b64_sdpa bf16_L256_b32 bf16_L256_b32_sdpa bf16_L256_b64_sdpa bf16_L128_b128_sdpa
# 2. Which scaled_dot_product_attention kernel takes the fused call's float mask with its gradient.
step sdpa_backend 40 python3 bench/sdpa_backend.py "$out/sdpa_backend.json"
# 3. The ZeRO-2 config changed since the last GPU run (Trainer's optimizer and scheduler): the real CLI path.
step deepspeed 110 python3 bench/gpu_check.py /tmp/gpu_check deepspeed
cp /tmp/gpu_check/gpu_check.json "$out/gpu_check_deepspeed.json" 2>/dev/null
# 4. Compiled, then compiled with CUDA graphs, on the fused attention.
step compile 240 python3 bench/gpu_mfu.py "$out/gpu_mfu_compile.json" --only \
	bf16_L128_b64_sdpa_compile bf16_L128_b64_sdpa_compile_cudagraphs
# 5. training.torch_compile through the training CLI (Inductor; CUDA graphs; under ZeRO-2), beside the
#    same large-shaped cells eager: compare steady_samples_per_second (the second half of the steps).
step cli_compile "$budget" python3 bench/gpu_check.py /tmp/gpu_check_compile \
	large_bf16_b32 large_bf16_b32_fused compile
cp /tmp/gpu_check_compile/gpu_check.json "$out/gpu_check_compile.json" 2>/dev/null
echo "== done at $((SECONDS - start)) s" >>"$log"
