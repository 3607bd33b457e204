"""Which scaled_dot_product_attention kernels take emogrid's fused DeBERTa attention call, and how fast.

    python bench/sdpa_backend.py OUT.json [--batch 64] [--length 128] [--precision bf16] [--steps 20]

`emogrid.attention.sdpa_forward` passes the content-to-position and position-to-content scores as a
float additive mask of shape [batch, heads, L, L] that needs a gradient. Flash attention takes no such
mask; the memory-efficient and cuDNN kernels may; the math kernel always does. This runs forward and
backward of exactly that call (DeBERTa-v3-large's 16 heads of 64, dropout 0.1) once per backend, and
once with torch's own choice, whose CUDA kernel names a profiler records. Each figure is the median
(min-max) of `--steps` timed calls after three untimed ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402

HEADS, HEAD_DIM = 16, 64


def inputs(batch: int, length: int, dtype, device) -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(0)
    shape = (batch, HEADS, length, HEAD_DIM)
    tensors = [torch.randn(shape, generator=g, device=device, dtype=dtype) for _ in range(3)]
    tensors.append(torch.randn((batch, HEADS, length, length), generator=g, device=device, dtype=dtype))
    return [t.requires_grad_() for t in tensors]


def call(q, k, v, bias) -> None:
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=bias, dropout_p=0.1, scale=1 / (3 * HEAD_DIM) ** 0.5
    )
    out.sum().backward()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(tensors, steps: int) -> list[float]:
    device = tensors[0].device
    for _ in range(3):
        call(*tensors)
    sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        call(*tensors)
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def default_kernels(tensors) -> list[str]:
    """CUDA kernels of one call under torch's own backend choice, most time first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        call(*tensors)
        torch.cuda.synchronize()
    events = sorted(prof.key_averages(), key=lambda e: e.device_time_total, reverse=True)
    return [e.key[:120] for e in events if e.device_time_total > 0][:8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--precision", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda", help="cpu only checks that the script runs")
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float16
    device = torch.device(args.device)
    tensors = inputs(args.batch, args.length, dtype, device)
    result = {"machine": machine(), "args": vars(args), "backends": {}}
    choices = {"default": None} | {
        b.name: b
        for b in (
            SDPBackend.CUDNN_ATTENTION,
            SDPBackend.EFFICIENT_ATTENTION,
            SDPBackend.FLASH_ATTENTION,
            SDPBackend.MATH,
        )
    }
    for name, backend in choices.items():
        try:
            if backend is None:
                times = timed(tensors, args.steps)
            else:
                with sdpa_kernel(backend):
                    times = timed(tensors, args.steps)
            row = {
                "ms_median": round(1000 * statistics.median(times), 3),
                "ms_min_max": [round(1000 * min(times), 3), round(1000 * max(times), 3)],
            }
        except Exception as error:  # a backend that refuses the call is a result too
            row = {"error": repr(error)[:600]}
        result["backends"][name] = row
        print(name, json.dumps(row), flush=True)
    try:
        result["default_kernels"] = default_kernels(tensors) if device.type == "cuda" else None
    except Exception as error:
        result["default_kernels"] = repr(error)[:600]
    print(json.dumps(result["default_kernels"]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
