"""transformers' DeBERTa-v3 attention against emogrid's fused one (emogrid.attention), side by side.

    python bench/deberta_attention.py [--device cpu|cuda] [--layers 2] [--batch 8] [--length 128] \
        [--precision fp32|bf16] [--repeats 5] [--steps 3] [--threads 1] --out OUT.json

An encoder of DeBERTa-v3-large's layer shape (1024 wide, 16 heads, 4096 intermediate, 256 position
buckets; `--layers` of them, a small vocabulary) runs a forward and backward pass on random token ids,
once with transformers' `DisentangledSelfAttention` and once with the same weights switched to
emogrid's scaled-dot-product-attention version. Each repeat runs both, in alternating order, for
`--steps` timed steps after one untimed one; the figure is the median step time over repeats and the
speed-up eager / sdpa is paired within each repeat. The script first checks that both give the same
hidden states.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import machine, spread  # noqa: E402
from gpu_mfu import DEBERTA_V3_LARGE  # noqa: E402

from emogrid.attention import use_sdpa_attention  # noqa: E402


def build_pair(layers: int, device: torch.device):
    from transformers import DebertaV2Config, DebertaV2Model

    torch.manual_seed(0)
    config = DebertaV2Config(**(DEBERTA_V3_LARGE | {"num_hidden_layers": layers, "vocab_size": 1000}))
    eager = DebertaV2Model(config).to(device).train()
    fused = copy.deepcopy(eager)
    use_sdpa_attention(fused)
    return eager, fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    eager, fused = build_pair(args.layers, device)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 1000, (args.batch, args.length), generator=generator).to(device)
    mask = torch.ones_like(ids)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32

    def forward(model):
        with torch.autocast(device.type, dtype=dtype, enabled=args.precision != "fp32"):
            return model(input_ids=ids, attention_mask=mask).last_hidden_state

    eager.eval(), fused.eval()
    with torch.no_grad():
        difference = float((forward(eager).float() - forward(fused).float()).abs().max())
    eager.train(), fused.train()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step(model) -> float:
        sync()
        start = time.perf_counter()
        forward(model).float().pow(2).mean().backward()
        sync()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times = {"eager": [], "sdpa": []}
    models = {"eager": eager, "sdpa": fused}
    for name in models:
        step(models[name])  # untimed: allocator and kernel warm-up
    for repeat in range(args.repeats):
        order = ["eager", "sdpa"] if repeat % 2 == 0 else ["sdpa", "eager"]
        for name in order:
            times[name].append(sorted(step(models[name]) for _ in range(args.steps))[args.steps // 2])
    speedups = [a / b for a, b in zip(times["eager"], times["sdpa"], strict=True)]
    result = {
        "machine": machine(),
        "settings": vars(args),
        "max_abs_difference_eval": difference,
        "step_s": {name: spread(values, 4) for name, values in times.items()},
        "speedup_eager_over_sdpa": spread(speedups),
        "per_repeat_s": times,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
